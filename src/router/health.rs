//! Circuit breakers: skip a provider that keeps failing, probe it later.
//!
//! A router keeps one breaker per provider for failures of the provider itself (outage,
//! timeouts, bad credentials) and one per provider and destination country for refusals
//! about where the message goes (geo permissions, a country's rate limit, a request the
//! provider will not take for that destination). So a caller who sends to a blocked country
//! cannot open the breaker for every other country.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::provider::ProviderErrorKind;

/// When a provider's breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive provider-side failures that open the breaker. Default 5.
    pub failure_threshold: u32,
    /// How long an open breaker skips the provider before one probe is let through.
    /// Default 30 s.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// A breaker's state, as reported in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerStatus {
    /// Sends go through.
    Closed,
    /// Sends skip this provider until the cool-down ends.
    Open,
    /// The cool-down ended; one probe send decides whether it closes or opens again.
    HalfOpen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Timestamp,
    },
    /// The cool-down ended and one probe was let through at `probe_since`.
    HalfOpen {
        probe_since: Timestamp,
    },
}

/// What a failure says something about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The provider as a whole.
    Provider,
    /// The provider for this destination country.
    Destination,
}

/// Which breaker a failure of `kind` counts against, if any. Failures about the recipient
/// or our own routing show the provider answered properly.
pub(crate) fn scope(kind: ProviderErrorKind) -> Option<Scope> {
    use ProviderErrorKind as K;
    match kind {
        K::NotPermitted | K::BadRequest | K::RateLimited => Some(Scope::Destination),
        K::Auth | K::Unavailable | K::Timeout | K::Network | K::Protocol => Some(Scope::Provider),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: State,
}

impl Breaker {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub(crate) fn status(&self, now: Timestamp) -> BreakerStatus {
        match self.state {
            State::Closed { .. } => BreakerStatus::Closed,
            State::Open { until } if now >= until => BreakerStatus::HalfOpen,
            State::Open { .. } => BreakerStatus::Open,
            State::HalfOpen { .. } => BreakerStatus::HalfOpen,
        }
    }

    /// Whether [`Breaker::admit`] would let a send through now, without changing anything.
    pub(crate) fn can_admit(&self, now: Timestamp, probe_deadline: Duration) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            // A probe that has not reported back by the deadline was abandoned.
            State::HalfOpen { probe_since } => now >= probe_since.saturating_add(probe_deadline),
        }
    }

    /// Lets a send through if it may go now. After the cool-down exactly one caller is
    /// admitted as the probe; a probe that has not reported back within `probe_deadline`
    /// (its caller gave up and dropped it) is replaced by a new one, so an abandoned probe
    /// cannot shut the provider out for good.
    pub(crate) fn admit(&mut self, now: Timestamp, probe_deadline: Duration) -> bool {
        if !self.can_admit(now, probe_deadline) {
            return false;
        }
        if !matches!(self.state, State::Closed { .. }) {
            self.state = State::HalfOpen { probe_since: now };
        }
        true
    }

    /// Whether this breaker is closed with nothing counted: the same as a new one.
    pub(crate) fn is_pristine(&self) -> bool {
        self.state
            == State::Closed {
                consecutive_failures: 0,
            }
    }

    /// Records how a send this breaker admitted ended: `failure` is a failure that counts
    /// against this breaker, `None` a send that shows it healthy.
    pub(crate) fn record(
        &mut self,
        failure: Option<ProviderErrorKind>,
        now: Timestamp,
        config: &BreakerConfig,
    ) {
        let failed = failure.is_some();
        self.state = match (self.state, failed) {
            (_, false) => State::Closed {
                consecutive_failures: 0,
            },
            (
                State::Closed {
                    consecutive_failures,
                },
                true,
            ) if consecutive_failures + 1 < config.failure_threshold => State::Closed {
                consecutive_failures: consecutive_failures + 1,
            },
            (_, true) => State::Open {
                until: now.saturating_add(config.cool_down),
            },
        };
    }
}
