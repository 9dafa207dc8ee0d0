//! When to try the next provider, and how much time and how many attempts a send gets.

use std::time::Duration;

use crate::provider::ProviderErrorKind;

/// The failover policy of a [`Router`](crate::Router): a value apart from the send loop.
///
/// Default: move on when this provider did not deliver (auth, not permitted, bad request,
/// rate limited, unavailable, network, protocol, channel unsupported, no route); stop on
/// errors about the recipient (invalid, blocked or opted out, cannot receive the channel)
/// since another provider would fail the same way. Stop on a timeout too: the provider
/// was reached and gave no answer, so it may deliver after all, and a second provider
/// would mean two codes, billed twice (in a test with a provider that accepts and stalls,
/// moving on delivered the second code every time). The send's outcome is then unknown
/// ([`ProviderError::may_have_delivered`](crate::ProviderError::may_have_delivered)); the
/// circuit breaker takes a stalling provider out of the chain for later sends. Opt back in
/// with `move_on(ProviderErrorKind::Timeout)` where a late second code is cheaper than a
/// missing one. At most 3 attempts, 1.5 s per attempt, 3 s in all: the budget an identity
/// platform's telephony hook allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    move_on: u32,
    max_attempts: usize,
    per_attempt_timeout: Duration,
    deadline: Duration,
}

/// A kind's bit in the move-on mask: its discriminant (fewer than 32 kinds).
fn bit(kind: ProviderErrorKind) -> u32 {
    1 << (kind as u32)
}

impl Default for Failover {
    fn default() -> Self {
        use ProviderErrorKind as K;
        let move_on = [
            K::Auth,
            K::NotPermitted,
            K::BadRequest,
            K::RateLimited,
            K::Unavailable,
            K::Network,
            K::Protocol,
            K::ChannelUnsupported,
            K::NoRoute,
        ]
        .into_iter()
        .fold(0, |mask, kind| mask | bit(kind));
        Self {
            move_on,
            max_attempts: 3,
            per_attempt_timeout: Duration::from_millis(1500),
            deadline: Duration::from_secs(3),
        }
    }
}

impl Failover {
    /// Whether a failure of `kind` should pass the message to the next provider.
    pub fn should_try_next(&self, kind: ProviderErrorKind) -> bool {
        self.move_on & bit(kind) != 0
    }

    /// Tries the next provider after `kind`.
    pub fn move_on(mut self, kind: ProviderErrorKind) -> Self {
        self.move_on |= bit(kind);
        self
    }

    /// Stops the chain after `kind`.
    pub fn stop_on(mut self, kind: ProviderErrorKind) -> Self {
        self.move_on &= !bit(kind);
        self
    }

    /// At most this many providers are called per send (at least 1).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Each provider call is cut off after this long (a `Timeout` failure).
    pub fn per_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.per_attempt_timeout = timeout;
        self
    }

    /// The whole send, across all attempts, ends after this long.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The attempt cap.
    pub fn attempt_cap(&self) -> usize {
        self.max_attempts
    }

    /// The per-attempt timeout.
    pub fn attempt_timeout(&self) -> Duration {
        self.per_attempt_timeout
    }

    /// The overall deadline.
    pub fn overall_deadline(&self) -> Duration {
        self.deadline
    }
}
