//! The OTP engine: codes, digests and keys, challenge ids, and [`OtpService`].

mod account;
mod challenge;
mod code;
mod guard;
mod keys;
mod outcome;
mod relay;
mod request;
mod seal;
mod service;
#[cfg(feature = "totp")]
mod totp_factor;

pub use account::Account;
pub use challenge::{AccountId, CHALLENGE_ID_BYTES, ChallengeId, ParseChallengeIdError};
pub use code::{DEFAULT_CODE_LENGTH, MAX_CODE_LENGTH, MIN_CODE_LENGTH, MIN_DANGER_CODE_LENGTH};
pub use keys::{
    Candidates, Digest, HmacKey, KeyError, KeyId, KeyRing, MAX_KEYS, MIN_KEY_BYTES, bench_floor,
};
pub use outcome::{NotPending, VerifyOutcome};
pub use relay::{MAX_RELAY_TEXT_CHARS, MAX_REQUEST_KEY_BYTES, RelayRequest, Relayed};
pub use request::{MAX_LABEL_BYTES, ResendRequest, StartRequest};
pub use seal::SealedDestination;
pub use service::{
    DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS, MAX_SAFE_LIFETIME, OtpService, OtpServiceBuilder,
    Started,
};
#[cfg(feature = "totp")]
pub use totp_factor::{Enrollment, RECOVERY_CODES, TotpError, TotpOutcome, TotpService};
