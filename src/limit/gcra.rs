//! The generic cell rate algorithm, shared by every store.
//!
//! State per key is one number: the theoretical arrival time (TAT) in milliseconds. A store
//! loads it, calls [`gcra`], and saves the new TAT with a time-to-live of
//! [`GcraStep::ttl_millis`] (after which the state equals "never seen"), all in one atomic
//! step. The Redis store runs the same arithmetic in Lua.

use std::time::Duration;

use crate::clock::{Timestamp, duration_millis};

use super::Quota;

/// The answer to "may this event happen now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It may; the event was counted.
    Allowed,
    /// It may not; try again after `retry_after`. Nothing was counted.
    Limited {
        /// How long until one more event is allowed.
        retry_after: Duration,
    },
}

/// The outcome of one GCRA step: the decision and the state to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraStep {
    /// Allowed or limited.
    pub decision: Decision,
    /// The TAT to store (unchanged when limited).
    pub new_tat_millis: u64,
    /// How long the stored state matters; expire it after this.
    pub ttl_millis: u64,
}

/// One GCRA decision for `quota` at `now`, given the stored TAT (if any).
pub fn gcra(stored_tat_millis: Option<u64>, quota: Quota, now: Timestamp) -> GcraStep {
    let now = now.as_millis();
    let interval = duration_millis(quota.refill_interval()).max(1);
    let tolerance = duration_millis(quota.period()).saturating_sub(interval);
    let tat = stored_tat_millis.unwrap_or(now).max(now);
    let allow_at = tat.saturating_sub(tolerance);
    if allow_at > now {
        return GcraStep {
            decision: Decision::Limited {
                retry_after: Duration::from_millis(allow_at - now),
            },
            new_tat_millis: tat,
            ttl_millis: tat - now,
        };
    }
    let new_tat = tat.saturating_add(interval);
    GcraStep {
        decision: Decision::Allowed,
        new_tat_millis: new_tat,
        ttl_millis: new_tat - now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn five_per_ten_minutes() -> Quota {
        Quota::per_period(
            NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn allows_a_burst_then_refuses_with_the_refill_time() {
        let now = Timestamp::from_millis(1_000_000);
        let mut tat = None;
        for _ in 0..5 {
            let step = gcra(tat, five_per_ten_minutes(), now);
            assert_eq!(step.decision, Decision::Allowed);
            tat = Some(step.new_tat_millis);
        }
        let refused = gcra(tat, five_per_ten_minutes(), now);
        assert_eq!(
            refused.decision,
            Decision::Limited {
                retry_after: Duration::from_secs(120)
            }
        );
        let later = gcra(
            tat,
            five_per_ten_minutes(),
            now.saturating_add(Duration::from_secs(120)),
        );
        assert_eq!(later.decision, Decision::Allowed);
    }
}
