//! Why a provider did not deliver.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What kind of failure, so a router can decide whether another provider could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The number is not valid or not assigned. Another provider would fail the same way.
    InvalidRecipient,
    /// The recipient opted out (STOP) or is blocked. Another provider must not try.
    RecipientBlocked,
    /// The number cannot receive this channel (a landline for SMS). Voice may work.
    RecipientCannotReceive,
    /// This provider does not offer this channel, or not to this destination.
    ChannelUnsupported,
    /// Credentials were refused.
    Auth,
    /// The account may not do this (geo permissions, sender not allowed, trial account).
    NotPermitted,
    /// The request was malformed (a bug or a text over the provider's limits).
    BadRequest,
    /// Too many requests; see [`ProviderError::retry_after`].
    RateLimited,
    /// The provider is down or failed (5xx).
    Unavailable,
    /// No answer in time. The message may or may not have been sent.
    Timeout,
    /// The connection failed.
    Network,
    /// The provider answered with something this crate cannot read.
    Protocol,
    /// No provider is configured for this destination and channel (a router's rules).
    NoRoute,
    /// The destination policy refused this number before any provider was called.
    PolicyRefused,
}

impl ProviderErrorKind {
    /// Every kind, for exhaustive tests and metrics.
    pub const ALL: [ProviderErrorKind; 14] = [
        Self::InvalidRecipient,
        Self::RecipientBlocked,
        Self::RecipientCannotReceive,
        Self::ChannelUnsupported,
        Self::Auth,
        Self::NotPermitted,
        Self::BadRequest,
        Self::RateLimited,
        Self::Unavailable,
        Self::Timeout,
        Self::Network,
        Self::Protocol,
        Self::NoRoute,
        Self::PolicyRefused,
    ];

    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRecipient => "invalid_recipient",
            Self::RecipientBlocked => "recipient_blocked",
            Self::RecipientCannotReceive => "recipient_cannot_receive",
            Self::ChannelUnsupported => "channel_unsupported",
            Self::Auth => "auth",
            Self::NotPermitted => "not_permitted",
            Self::BadRequest => "bad_request",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::Protocol => "protocol",
            Self::NoRoute => "no_route",
            Self::PolicyRefused => "policy_refused",
        }
    }

    /// Whether the failure is about the recipient rather than the provider, so another
    /// provider on the same channel would fail the same way.
    pub fn is_about_recipient(self) -> bool {
        matches!(
            self,
            Self::InvalidRecipient | Self::RecipientBlocked | Self::RecipientCannotReceive
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Self::InvalidRecipient => "invalid recipient",
            Self::RecipientBlocked => "recipient opted out or blocked",
            Self::RecipientCannotReceive => "recipient cannot receive this channel",
            Self::ChannelUnsupported => "channel unsupported",
            Self::Auth => "authentication failed",
            Self::NotPermitted => "not permitted for this account",
            Self::BadRequest => "bad request",
            Self::RateLimited => "rate limited",
            Self::Unavailable => "provider unavailable",
            Self::Timeout => "timed out",
            Self::Network => "network error",
            Self::Protocol => "unreadable response",
            Self::NoRoute => "no provider configured for this destination",
            Self::PolicyRefused => "destination refused by policy",
        }
    }
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest provider response body kept on an error.
pub const MAX_BODY_CHARS: usize = 512;

/// A provider failed to deliver. Branch on [`ProviderError::kind`].
///
/// `Display` is one line (`twilio: rate limited (http 429, code 20429)`); the underlying
/// cause, if any, is in `source()`.
#[derive(Debug)]
pub struct ProviderError {
    /// Boxed: errors travel through every `Result` of the send path, which should stay
    /// one pointer wide.
    inner: Box<Details>,
}

#[derive(Debug)]
struct Details {
    kind: ProviderErrorKind,
    provider: String,
    status: Option<u16>,
    code: Option<String>,
    retry_after: Option<Duration>,
    body: Option<String>,
    attempts: Vec<Attempt>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What happened to one provider in a router's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The provider's name.
    pub provider: String,
    /// Why it did not deliver.
    pub outcome: AttemptOutcome,
}

/// Why one provider in a chain did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// It was called and failed with this kind.
    Failed(ProviderErrorKind),
    /// It was not called: its circuit breaker is open.
    SkippedBreakerOpen,
    /// It was not called: it does not support the channel.
    SkippedChannelUnsupported,
    /// It was not called: the attempt cap or the deadline was reached first.
    SkippedBudgetExhausted,
    /// It was not called: its daily budget (see `ProviderBudgets`) is spent, or cannot be
    /// checked.
    SkippedProviderBudget,
}

impl ProviderError {
    /// A failure of `kind` at `provider`.
    pub fn new(kind: ProviderErrorKind, provider: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Details {
                kind,
                provider: provider.into(),
                status: None,
                code: None,
                retry_after: None,
                body: None,
                attempts: Vec::new(),
                source: None,
            }),
        }
    }

    /// Adds the chain of attempts a router made.
    pub fn with_attempts(mut self, attempts: Vec<Attempt>) -> Self {
        self.inner.attempts = attempts;
        self
    }

    /// Every provider a router tried or skipped, in order (empty for a single provider).
    pub fn attempts(&self) -> &[Attempt] {
        &self.inner.attempts
    }

    /// Whether the message may have been delivered after all: a provider that was
    /// reached gave no answer in time ([`ProviderErrorKind::Timeout`], here or at any
    /// attempt of the chain). Such a send is not answered as "nothing went out", and a
    /// retry of the same request must not send again.
    pub fn may_have_delivered(&self) -> bool {
        self.inner.kind == ProviderErrorKind::Timeout
            || self
                .inner
                .attempts
                .iter()
                .any(|a| a.outcome == AttemptOutcome::Failed(ProviderErrorKind::Timeout))
    }

    /// Adds the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Adds the provider's own error code (`"21211"`, `"E401"`, `"RST200003"`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Adds how long to wait before retrying.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Keeps a provider's error body, truncated to [`MAX_BODY_CHARS`], with every digit
    /// replaced by `#`: error bodies repeat the number (Twilio 21211) and may echo the
    /// message, so no code or whole number may survive in them. The provider's error code
    /// is kept apart ([`ProviderError::code`]). Callers must pass bodies that hold no
    /// credentials (provider responses do not echo them) and never a success body.
    pub fn with_body(mut self, body: &str) -> Self {
        let mut kept: String = body
            .chars()
            .take(MAX_BODY_CHARS)
            .map(|ch| if ch.is_numeric() { '#' } else { ch })
            .collect();
        if body.chars().nth(MAX_BODY_CHARS).is_some() {
            kept.push('…');
        }
        self.inner.body = Some(kept);
        self
    }

    /// Adds the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> ProviderErrorKind {
        self.inner.kind
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.inner.provider
    }

    /// The HTTP status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The provider's own error code.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// How long the provider asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The provider's error body, truncated, digits masked (`#`).
    pub fn body(&self) -> Option<&str> {
        self.inner.body.as_deref()
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.provider, self.inner.kind.describe())?;
        match (self.inner.status, &self.inner.code) {
            (Some(status), Some(code)) => write!(f, " (http {status}, code {code})"),
            (Some(status), None) => write!(f, " (http {status})"),
            (None, Some(code)) => write!(f, " (code {code})"),
            (None, None) => Ok(()),
        }
    }
}

impl StdError for ProviderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}
