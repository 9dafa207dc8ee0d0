//! The OTP engine: codes, keys, requests and [`OtpService`], on a store (`store`) and the
//! challenge's types (`challenge`).

mod account;
mod budget_use;
mod code;
mod guard;
mod guard_refusal;
mod keys;
mod notice;
mod relay;
mod relay_text;
mod request;
mod seal;
mod service;
#[cfg(feature = "totp")]
mod totp_factor;

pub use account::Account;
pub use code::{DEFAULT_CODE_LENGTH, MAX_CODE_LENGTH, MIN_CODE_LENGTH, MIN_DANGER_CODE_LENGTH};
pub use guard_refusal::GuardRefusal;
pub use keys::{HmacKey, KeyError, KeyRing, MIN_KEY_BYTES, bench_floor};
pub use notice::Notice;
pub use relay::{
    MAX_RELAY_CODE_DIGITS, MAX_RELAY_TEXT_CHARS, MAX_REQUEST_KEY_BYTES, MIN_RELAY_CODE_DIGITS,
    RelayRequest, Relayed,
};
pub use relay_text::{RelayTextPolicy, TextRefusal};
pub use request::{
    MAX_LABEL_BYTES, MAX_REFERENCE_BYTES, ResendRequest, StartRequest, VerifyRequest,
};
pub use service::{
    DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS, MAX_SAFE_LIFETIME, OtpService, OtpServiceBuilder,
    Started,
};
#[cfg(feature = "totp")]
pub use totp_factor::{Enrollment, RECOVERY_CODES, TotpError, TotpOutcome, TotpService};
