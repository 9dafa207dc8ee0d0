//! A circuit breaker per provider: skip a provider that keeps failing, probe it later.

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
    Closed { consecutive_failures: u32 },
    Open { until: Timestamp },
    HalfOpen { probe_in_flight: bool },
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: State,
}

/// Whether a failure says something about the provider's health. Failures about the
/// recipient or our routing show the provider answered properly.
fn counts_against_provider(kind: ProviderErrorKind) -> bool {
    use ProviderErrorKind as K;
    !(kind.is_about_recipient()
        || matches!(kind, K::ChannelUnsupported | K::NoRoute | K::PolicyRefused))
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

    /// Whether a send may go to this provider now. After the cool-down exactly one caller
    /// is admitted as the probe.
    pub(crate) fn admit(&mut self, now: Timestamp) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen {
                    probe_in_flight: true,
                };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probe_in_flight } => {
                if probe_in_flight {
                    false
                } else {
                    self.state = State::HalfOpen {
                        probe_in_flight: true,
                    };
                    true
                }
            }
        }
    }

    pub(crate) fn record(
        &mut self,
        failure: Option<ProviderErrorKind>,
        now: Timestamp,
        config: &BreakerConfig,
    ) {
        let failed = failure.is_some_and(counts_against_provider);
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
