//! What a provider answers for an accepted send.

use super::Attempt;
use crate::message::Channel;

/// Proof that a provider accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider that accepted it (`"twilio"`, `"stub"`, ...).
    pub provider: String,
    /// The provider's id for the message or call.
    pub message_id: String,
    /// The channel it went out on.
    pub channel: Channel,
    /// What a [`Router`](crate::Router) tried before this provider accepted: the
    /// providers that failed or were skipped, in order (empty when the first accepted).
    pub attempts: Vec<Attempt>,
}

impl Receipt {
    /// A receipt from `provider` for `message_id`.
    pub fn new(
        provider: impl Into<String>,
        message_id: impl Into<String>,
        channel: Channel,
    ) -> Self {
        Self {
            provider: provider.into(),
            message_id: message_id.into(),
            channel,
            attempts: Vec::new(),
        }
    }
}
