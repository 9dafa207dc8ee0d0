//! Delivery: the [`PhoneProvider`] seam, its error type, and the adapters.
//!
//! [`StubProvider`] is always compiled; each real adapter sits behind its own feature.

mod error;
#[cfg(feature = "_http")]
pub mod http;
#[cfg(feature = "ntt-cpaas")]
pub mod ntt_cpaas;
mod receipt;
#[cfg(feature = "smslink")]
pub mod smslink;
mod stub;
#[cfg(feature = "twilio")]
pub mod twilio;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::{Attempt, AttemptOutcome, MAX_BODY_CHARS, ProviderError, ProviderErrorKind};
pub use receipt::Receipt;
pub use stub::StubProvider;

use crate::message::{Channel, Message};

/// Something that delivers a [`Message`]: an SMS gateway, a voice API, a router over
/// several of them, or a stub in tests.
#[async_trait]
pub trait PhoneProvider: Send + Sync + std::fmt::Debug {
    /// A short stable name (`"twilio"`, `"ntt-cpaas"`, `"smslink"`, `"stub"`).
    fn name(&self) -> &str;

    /// Whether this provider can deliver on `channel` at all.
    fn supports(&self, channel: Channel) -> bool;

    /// Delivers one message.
    ///
    /// # Errors
    /// A [`ProviderError`] whose kind says whether another provider could do better.
    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError>;
}

#[async_trait]
impl<P: PhoneProvider + ?Sized> PhoneProvider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn supports(&self, channel: Channel) -> bool {
        (**self).supports(channel)
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        (**self).send(message).await
    }
}
