//! A challenge as both the engine (`otp`) and the stores (`store`) see it: its id and the
//! account it counts against, code digests, the sealed destination and what a check
//! found. Below both, so `otp` uses `store` and `store` uses only this.

mod digest;
mod id;
mod outcome;
mod sealed;

pub use digest::{Candidates, Digest, KeyId, MAX_KEYS};
pub use id::{AccountId, CHALLENGE_ID_BYTES, ChallengeId, ParseChallengeIdError};
pub use outcome::{NotPending, VerifyOutcome};
pub use sealed::SealedDestination;
