//! Integration tests through the public API only.

// Tests state their expectations with unwrap/expect/panic; the library itself may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod axum_mfa;
mod codes;
mod limits;
mod memory_store;
#[cfg(feature = "ntt-cpaas")]
mod ntt_cpaas;
mod phone;
mod properties;
#[cfg(all(feature = "twilio", feature = "ntt-cpaas", feature = "smslink"))]
mod provider_errors;
mod pumping;
pub(crate) mod pumping_sim;
mod redaction;
mod redis;
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_server;
mod references;
mod relay;
mod resend;
mod round_trips_on_the_wire;
mod router;
#[cfg(feature = "smslink")]
mod smslink;
mod store_contract;
mod store_model;
mod support;
mod templates;
#[cfg(feature = "totp")]
mod totp;
#[cfg(feature = "totp")]
mod totp_rotation_race;
#[cfg(feature = "twilio")]
mod twilio;
mod verify;
