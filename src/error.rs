//! Errors, one enum per operation. `Display` is one lowercase line; causes are in
//! `source()`.

use std::time::Duration;

use thiserror::Error;

use crate::challenge::NotPending;
use crate::limit::LimitKind;
use crate::message::Channel;
use crate::policy::PolicyRefusal;
use crate::provider::ProviderError;
use crate::random::RandomError;
use crate::store::StoreError;

/// [`OtpService::builder`](crate::OtpService::builder) was given an unsafe or incomplete
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No key ring: codes cannot be hashed.
    #[error("no key ring configured")]
    MissingKeyRing,
    /// No provider: codes cannot be delivered.
    #[error("no provider configured")]
    MissingProvider,
    /// Code length outside the allowed range (6 to 10; 4 and 5 need `danger_code_length`).
    #[error("code length {length} is outside {min}..={max}")]
    CodeLength {
        /// What was asked for.
        length: usize,
        /// The shortest allowed by the setter used.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// Lifetime outside the allowed range (1 s to 10 min; longer needs `danger_lifetime`).
    #[error("code lifetime {lifetime:?} is outside 1s..={max:?}")]
    Lifetime {
        /// What was asked for.
        lifetime: Duration,
        /// The longest allowed by the setter used.
        max: Duration,
    },
}

/// [`OtpService::start`](crate::OtpService::start) did not send a code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// A field of the request is unusable, e.g. a subject or tenant over
    /// [`MAX_LABEL_BYTES`](crate::MAX_LABEL_BYTES). Nothing was spent or sent.
    #[error("invalid start request: {0}")]
    InvalidRequest(&'static str),
    /// The destination policy refused the number (before any quota was spent).
    #[error("destination refused: {0}")]
    Refused(PolicyRefusal),
    /// The account has had too many wrong codes in a row
    /// ([`FailureCap`](crate::FailureCap)); nothing was spent or sent.
    #[error("account locked after too many failed verifications")]
    AccountLocked,
    /// A rate limit refused the send. Nothing was generated or sent.
    #[error("{limit} rate limit reached, retry after {}s", retry_after.as_secs_f64().ceil())]
    Limited {
        /// Which limit.
        limit: LimitKind,
        /// How long until it would allow a send.
        retry_after: Duration,
    },
    /// The configured provider cannot deliver on this channel.
    #[error("provider cannot deliver on the {0} channel")]
    ChannelUnsupported(Channel),
    /// The store failed; no code was sent.
    #[error("store failed")]
    Store(#[source] StoreError),
    /// The provider failed; the challenge was withdrawn so it cannot be used.
    #[error("delivery failed")]
    Delivery(#[source] ProviderError),
    /// A provider was reached and gave no answer in time, so the code may still arrive
    /// ([`ProviderError::may_have_delivered`]). The challenge is kept: verify with its id
    /// if the code arrives, resend if it does not. Starting another would send a second
    /// code.
    #[error("delivery outcome unknown")]
    DeliveryUnknown {
        /// The kept challenge.
        challenge_id: crate::challenge::ChallengeId,
        /// When its code stops working.
        expires_at: crate::clock::Timestamp,
        /// What the providers did.
        #[source]
        error: ProviderError,
    },
    /// The OS random source failed.
    #[error("could not generate a code")]
    Random(#[source] RandomError),
}

/// [`OtpService::resend`](crate::OtpService::resend) did not send a new code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ResendError {
    /// The request does not fit the challenge: it lacks the client IP or context the
    /// challenge was started with. Nothing was spent or sent.
    #[error("invalid resend request: {0}")]
    InvalidRequest(&'static str),
    /// The destination policy refused the number on this channel.
    #[error("destination refused: {0}")]
    Refused(PolicyRefusal),
    /// The challenge cannot take a new code.
    #[error("cannot resend: {0}")]
    NotPending(NotPending),
    /// The challenge's account has had too many wrong codes in a row; nothing was sent.
    #[error("account locked after too many failed verifications")]
    AccountLocked,
    /// A rate limit (including the resend cooldown) refused the send.
    #[error("{limit} rate limit reached, retry after {}s", retry_after.as_secs_f64().ceil())]
    Limited {
        /// Which limit.
        limit: LimitKind,
        /// How long until it would allow a send.
        retry_after: Duration,
    },
    /// The configured provider cannot deliver on this channel.
    #[error("provider cannot deliver on the {0} channel")]
    ChannelUnsupported(Channel),
    /// The store failed.
    #[error("store failed")]
    Store(#[source] StoreError),
    /// The provider failed. The earlier codes of the challenge stay valid.
    #[error("delivery failed")]
    Delivery(#[source] ProviderError),
    /// The OS random source failed.
    #[error("could not generate a code")]
    Random(#[source] RandomError),
}

/// [`OtpService::relay`](crate::OtpService::relay) did not deliver the code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A field of the request is unusable (code, text, subject, tenant or request key).
    /// Nothing was spent or sent.
    #[error("invalid relay request: {0}")]
    InvalidRequest(&'static str),
    /// The text is not one a code relay may carry ([`RelayTextPolicy`](crate::RelayTextPolicy)):
    /// the code is not a word of its own in it, or it holds a link. Nothing was spent or sent.
    #[error("relayed text refused: {0}")]
    TextRefused(crate::TextRefusal),
    /// The code had already expired; nothing was spent or sent.
    #[error("code already expired")]
    Expired,
    /// The destination policy refused the number (before any quota was spent).
    #[error("destination refused: {0}")]
    Refused(PolicyRefusal),
    /// A rate limit refused the send, or ([`LimitKind::Duplicate`]) the request key was
    /// already relayed. Nothing was charged or sent.
    #[error("{limit} rate limit reached, retry after {}s", retry_after.as_secs_f64().ceil())]
    Limited {
        /// Which limit.
        limit: LimitKind,
        /// How long until it would allow a send.
        retry_after: Duration,
    },
    /// The configured provider cannot deliver on this channel.
    #[error("provider cannot deliver on the {0} channel")]
    ChannelUnsupported(Channel),
    /// The store failed; nothing was sent.
    #[error("store failed")]
    Store(#[source] StoreError),
    /// No provider accepted the message in time.
    #[error("delivery failed")]
    Delivery(#[source] ProviderError),
    /// The OS random source failed.
    #[error("could not generate a message reference")]
    Random(#[source] RandomError),
}

/// Why a send was refused before anything was sent or spent: what
/// [`StartError`], [`ResendError`] and [`RelayError`] share ([`StartError::refusal`] and
/// the others), so a caller answers each refusal one way whichever operation met it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendRefusal {
    /// A field of the request is unusable.
    InvalidRequest(&'static str),
    /// The destination policy refused the number.
    Destination(PolicyRefusal),
    /// The account has had too many wrong codes in a row.
    AccountLocked,
    /// A rate limit refused the send ([`LimitKind::Duplicate`]: the request key was used).
    Limited {
        /// Which limit.
        limit: LimitKind,
        /// How long until it would allow a send.
        retry_after: Duration,
    },
    /// The configured provider cannot deliver on this channel.
    ChannelUnsupported(Channel),
}

impl StartError {
    /// The refusal, when the start was refused before anything was sent.
    pub fn refusal(&self) -> Option<SendRefusal> {
        Some(match self {
            Self::InvalidRequest(reason) => SendRefusal::InvalidRequest(reason),
            Self::Refused(refusal) => SendRefusal::Destination(refusal.clone()),
            Self::AccountLocked => SendRefusal::AccountLocked,
            Self::Limited { limit, retry_after } => SendRefusal::Limited {
                limit: *limit,
                retry_after: *retry_after,
            },
            Self::ChannelUnsupported(channel) => SendRefusal::ChannelUnsupported(*channel),
            _ => return None,
        })
    }
}

impl ResendError {
    /// The refusal, when the resend was refused before anything was sent.
    pub fn refusal(&self) -> Option<SendRefusal> {
        Some(match self {
            Self::InvalidRequest(reason) => SendRefusal::InvalidRequest(reason),
            Self::Refused(refusal) => SendRefusal::Destination(refusal.clone()),
            Self::AccountLocked => SendRefusal::AccountLocked,
            Self::Limited { limit, retry_after } => SendRefusal::Limited {
                limit: *limit,
                retry_after: *retry_after,
            },
            Self::ChannelUnsupported(channel) => SendRefusal::ChannelUnsupported(*channel),
            _ => return None,
        })
    }
}

impl RelayError {
    /// The refusal, when the relay was refused before anything was sent (its own
    /// refusals, [`RelayError::TextRefused`] and [`RelayError::Expired`], aside).
    pub fn refusal(&self) -> Option<SendRefusal> {
        Some(match self {
            Self::InvalidRequest(reason) => SendRefusal::InvalidRequest(reason),
            Self::Refused(refusal) => SendRefusal::Destination(refusal.clone()),
            Self::Limited { limit, retry_after } => SendRefusal::Limited {
                limit: *limit,
                retry_after: *retry_after,
            },
            Self::ChannelUnsupported(channel) => SendRefusal::ChannelUnsupported(*channel),
            _ => return None,
        })
    }
}

/// [`OtpService::verify`](crate::OtpService::verify) could not reach a verdict. This is
/// never a verified outcome: treat it as a failure to authenticate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The store failed.
    #[error("store failed")]
    Store(#[source] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three operations' refusals read alike; failures after a send began are not
    /// refusals.
    #[test]
    fn refusals_are_shared_by_start_resend_and_relay() {
        let limited = SendRefusal::Limited {
            limit: LimitKind::Destination,
            retry_after: Duration::from_secs(3),
        };
        let wait = Duration::from_secs(3);
        let limit = LimitKind::Destination;
        assert_eq!(
            StartError::Limited {
                limit,
                retry_after: wait
            }
            .refusal(),
            Some(limited.clone())
        );
        assert_eq!(
            ResendError::Limited {
                limit,
                retry_after: wait
            }
            .refusal(),
            Some(limited.clone())
        );
        assert_eq!(
            RelayError::Limited {
                limit,
                retry_after: wait
            }
            .refusal(),
            Some(limited)
        );
        assert_eq!(
            StartError::AccountLocked.refusal(),
            Some(SendRefusal::AccountLocked)
        );
        assert_eq!(
            ResendError::ChannelUnsupported(Channel::Voice).refusal(),
            Some(SendRefusal::ChannelUnsupported(Channel::Voice))
        );
        assert_eq!(
            RelayError::InvalidRequest("x").refusal(),
            Some(SendRefusal::InvalidRequest("x"))
        );
        assert_eq!(RelayError::Expired.refusal(), None);
        assert_eq!(StartError::Store(StoreError::Corrupt("x")).refusal(), None);
        assert_eq!(ResendError::NotPending(NotPending::Expired).refusal(), None);
    }
}
