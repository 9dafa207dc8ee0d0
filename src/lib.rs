//! # phone-otp
//!
//! SMS and voice one-time passcodes that your backend owns: codes come from the OS CSPRNG,
//! only a keyed HMAC of each code is stored, sends and checks are rate-limited, delivery
//! goes through a [`PhoneProvider`] of your choice, and each code verifies exactly once.
//!
//! ## Quick start
//!
//! ```
//! use phone_otp::{
//!     HmacKey, KeyRing, OtpService, PhoneNumber, Purpose, StartRequest, StubProvider,
//!     VerifyOutcome,
//! };
//! use secrecy::{ExposeSecret, SecretSlice};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In production: load 32+ secret bytes from your secret manager.
//! let key = HmacKey::new(1, &SecretSlice::from(vec![42u8; 32]))?;
//! let stub = StubProvider::new(); // Twilio, NTT CPaaS, SMSLINK or a Router in production
//! let otp = OtpService::builder()
//!     .key_ring(KeyRing::new(key))
//!     .provider(stub.clone())
//!     .build()?;
//!
//! let to = PhoneNumber::parse_with_region("090-1234-5678", "JP")?;
//! let started = otp.start(StartRequest::sms(to.clone(), Purpose::SignIn).subject("user-42")).await?;
//! assert_eq!(started.masked_destination, "+8190****5678");
//!
//! // The user types the code they received; here we read it from the stub.
//! let code = stub.last_code_for(&to).expect("stub recorded the SMS");
//! assert_eq!(otp.verify(&started.challenge_id, "000000").await?,
//!            VerifyOutcome::Mismatch { attempts_left: 4 });
//! let outcome = otp.verify(&started.challenge_id, code.expose_secret()).await?;
//! assert!(outcome.is_verified());
//! // A code works once.
//! assert_eq!(otp.verify(&started.challenge_id, code.expose_secret()).await?,
//!            VerifyOutcome::AlreadyUsed);
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | (always) | yes | [`OtpService`], [`MemoryStore`], [`StubProvider`], [`Router`], [`ManualClock`] |
//! | `twilio` | yes | [`TwilioProvider`]: SMS and voice, and `X-Twilio-Signature` validation |
//! | `ntt-cpaas` | yes | [`NttCpaasProvider`]: SMS and voice on NTT CPaaS (Infobip API) |
//! | `smslink` | yes | [`SmslinkProvider`]: Japanese domestic SMS |
//! | `redis` | no | `RedisStore`: challenges and limits shared by many instances, one Lua script per operation |
//! | `redis-cluster` | no | `RedisStore::connect_cluster`, for Redis Cluster |
//! | `serde` | no | [`PriceTable`] loads from any serde format (the gateway's TOML) |
//! | `totp` | no | `OtpService::totp`: authenticator-app codes (RFC 6238) beside SMS, on the same store, keys and failure cap |
//! | `totp-qr` | no | `Enrollment::qr_svg`: the key URI as an SVG QR code |
//!
//! ## Routing
//!
//! A [`Router`] picks an ordered provider chain per destination (E.164 prefix, then ISO
//! country, then a default) and channel. It fails over as its [`Failover`] policy says and
//! skips providers whose circuit breaker is open. It is itself a [`PhoneProvider`], so it
//! can be given to [`OtpService`], nested, or used alone to deliver codes another system
//! generated. [`DestinationPolicy`] refuses premium-rate and other risky numbers before any
//! provider is called.
//!
//! ## Security model
//!
//! - **At rest**: `HMAC-SHA256(key, context || code)`. The context binds the challenge id,
//!   which carries the purpose and a keyed fingerprint of the destination, plus optional
//!   caller bytes ([`StartRequest::context`]). A leaked store reveals no code and no digest
//!   works for another challenge, purpose, number or transaction.
//! - **Keys**: a [`KeyRing`] of 32+ byte keys with ids; the primary issues, older keys
//!   still verify until removed.
//! - **Comparison**: constant time, across every live digest of the challenge.
//! - **Once**: the store's `check` compares and consumes in one atomic step, so of many
//!   concurrent correct checks exactly one is `Verified`.
//! - **Limits**: 5 wrong attempts per challenge; 5 sends per number per 10 minutes; 10 per
//!   subject per hour; 30 per client IP (IPv6 per /64) and 100 per IPv6 /48 per hour; 30 s
//!   resend cooldown. All decided before a code is generated, and charged only if all
//!   allow, in one atomic store step; resends are charged like starts.
//! - **Failures per account**: at most 100 wrong codes in a row per account across its
//!   challenges ([`FailureCap`], NIST SP 800-63B 5.2.2), checked with the compare in one
//!   atomic step.
//! - **Shared stores** hold no phone numbers: limit keys use keyed fingerprints and
//!   records keep the destination sealed. Providers see a reference derived from the
//!   challenge id, never its store key.
//! - **Logs**: numbers are masked (`+8190****5678`), codes, texts and keys never appear in
//!   `Debug` output or `tracing` events.
//! - **Unsafe settings** are named `danger_…`.

#![forbid(unsafe_code)]
// Doctests fail on any warning: an unused import in an example is a bug in the example.
#![doc(test(attr(deny(warnings))))]

mod challenge;
mod clock;
mod error;
mod limit;
mod message;
mod otp;
mod phone;
mod policy;
mod price;
pub mod provider;
mod random;
mod router;
pub mod store;
mod template;
#[cfg(feature = "totp")]
pub mod totp;

pub use challenge::{
    AccountId, CHALLENGE_ID_BYTES, Candidates, ChallengeId, Digest, KeyId, MAX_KEYS, NotPending,
    ParseChallengeIdError, SealedDestination, VerifyOutcome,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{BuildError, RelayError, ResendError, SendRefusal, StartError, VerifyError};
pub use limit::{
    Admission, Backoff, BackoffState, BackoffStep, Budget, BudgetCap, BudgetScope, BudgetStep,
    BudgetUse, Budgets, ConversionGuard, ConversionRule, ConversionState, ConversionStep, Counts,
    Decision, FailureCap, GcraStep, GuardLevel, Limit, LimitKey, LimitKind, Limits, Quota, Rule,
    SafeList, backoff, bucket_millis, conversion, credit, day_of, gcra, spend,
};
pub use message::{Channel, Locale, Message, Purpose};
pub use otp::{
    Account, DEFAULT_CODE_LENGTH, DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS, GuardRefusal, HmacKey,
    KeyError, KeyRing, MAX_CODE_LENGTH, MAX_LABEL_BYTES, MAX_REFERENCE_BYTES,
    MAX_RELAY_CODE_DIGITS, MAX_RELAY_TEXT_CHARS, MAX_REQUEST_KEY_BYTES, MAX_SAFE_LIFETIME,
    MIN_CODE_LENGTH, MIN_DANGER_CODE_LENGTH, MIN_KEY_BYTES, MIN_RELAY_CODE_DIGITS, Notice,
    OtpService, OtpServiceBuilder, RelayRequest, RelayTextPolicy, Relayed, ResendRequest,
    StartRequest, Started, TextRefusal, VerifyRequest, bench_floor,
};
#[doc(hidden)]
pub use phone::fuzz_classification_agrees;
pub use phone::{NumberType, ParsePhoneError, PhoneNumber, Region};
pub use policy::{DestinationPolicy, PolicyRefusal};
pub use price::{Micros, PriceTable, Rate};
#[cfg(feature = "_http")]
pub use provider::http::{ConfigError, HttpConfig};
#[cfg(feature = "ntt-cpaas")]
pub use provider::ntt_cpaas::{NttCpaasConfig, NttCpaasProvider};
#[cfg(feature = "smslink")]
pub use provider::smslink::{SmslinkConfig, SmslinkProvider};
#[cfg(feature = "twilio")]
pub use provider::twilio::{TwilioConfig, TwilioProvider};
pub use provider::{
    Attempt, AttemptOutcome, PhoneProvider, ProviderError, ProviderErrorKind, Receipt, StubProvider,
};
pub use random::RandomError;
pub use router::{
    BreakerConfig, BreakerStatus, CountryMetrics, Failover, LATENCY_BUCKETS, ProviderBudgets,
    ProviderMetrics, Router, RouterBuildError, RouterBuilder, RouterMetrics,
};
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{
    FactorWrite, MemoryStore, OtpStore, SendAdmission, StepDecision, StoreError, TotpFactor,
};
pub use template::{
    SmsEncoding, SmsSegments, Template, TemplateError, Templates, count_sms_segments, spaced_digits,
};
