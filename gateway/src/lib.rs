//! # phone-otp-gateway
//!
//! The HTTP face of [`phone_otp`]: endpoints that identity platforms and backends in any
//! language call to deliver codes, mountable in any axum app or run as the
//! `phone-otp-gateway` binary.
//!
//! | endpoint | caller | what |
//! |---|---|---|
//! | `POST /hooks/okta/telephony` | Okta's telephony inline hook | delivers Okta's code, answers Okta's command |
//! | `POST /hooks/auth0/phone-message` | an Auth0 Action | delivers Auth0's code |
//! | `POST /v1/messages` | internal systems | delivers their code |
//! | `POST /v1/challenges`, `/{id}/resend`, `/{id}/verify` | backends in any language | the library's own start, resend and verify |
//! | `POST /callbacks/twilio/status`, `/callbacks/ntt-cpaas/delivery` | providers | delivery receipts, counted per provider and country |
//! | `GET /metrics`, `/healthz`, `/readyz` | operations | Prometheus text, liveness, store readiness |
//! | `/console/...` (feature `console`) | operators, in a browser | usage, cost, refusals and budgets per system ([`console`]) |
//!
//! Every hook path calls [`OtpService::relay`](phone_otp::OtpService::relay): the same
//! destination policy, send limits, templates and routing as the library's own `start`.
//! The gateway adds only what is HTTP: parsing each caller's contract, authenticating it,
//! and answering in its shape.
//!
//! ```no_run
//! use phone_otp::{HmacKey, KeyRing, OtpService, StubProvider};
//! use phone_otp_gateway::{Gateway, OktaHook};
//! use secrecy::{SecretSlice, SecretString};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = HmacKey::new(1, &SecretSlice::from(vec![42u8; 32]))?;
//! let otp = OtpService::builder()
//!     .key_ring(KeyRing::new(key))
//!     .provider(StubProvider::new())
//!     .build()?;
//! let gateway = Gateway::builder(otp)
//!     .okta(OktaHook::new("authorization", SecretString::from("Basic c2VjcmV0")))
//!     .default_region("US")
//!     .build()?;
//! // Merge `gateway.router()` into your own app, or serve it alone with the gateway's
//! // connection limits (header-read and idle timeouts, a connection cap):
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = phone_otp_gateway::serve::ConnectionLimits::default();
//! phone_otp_gateway::serve::serve(listener, gateway.router(), limits, std::future::pending())
//!     .await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
// Doctests fail on any warning: an unused import in an example is a bug in the example.
#![doc(test(attr(deny(warnings))))]

mod app;
pub mod audit;
pub mod auth;
mod budgets;
pub mod config;
#[cfg(feature = "console")]
pub mod console;
pub mod db;
mod metrics;
pub mod openapi;
mod outcome;
mod problem;
mod routes;
pub mod serve;
mod state;
mod surfaces;
pub mod telemetry;

pub use app::{BuildError, Gateway, GatewayBuilder};
pub use metrics::GatewayMetrics;
pub use surfaces::{BearerAccess, OKTA_PREVIEW_NUMBERS, OktaHook, TwilioCallbacks};

/// The repository README's Rust snippets, compiled (and, unless `no_run`, run) as this
/// crate's doctests: this crate depends on everything they use (the library with its
/// features, axum, tokio), so the README cannot drift from the API unnoticed.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The Rust snippets of `docs/library.md`, compiled as doctests like the README's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/library.md")]
pub struct LibraryDocDoctests;

/// The Rust snippets of `docs/gateway.md`, compiled as doctests like the README's.
#[cfg(doctest)]
#[doc = include_str!("../../docs/gateway.md")]
pub struct GatewayDocDoctests;
