//! Progressive backoff: a few sends at once, then waits that double up to a ceiling, with
//! random jitter, forgotten one step per quiet period. Fixed quotas let a bot send at
//! exactly the allowed rate forever; backoff makes each further send to the same user or
//! number cost more time, while a person who resends once or twice never notices.
//!
//! State per key is three numbers: the streak level, the earliest next send, and the last
//! send. A store loads them, calls [`backoff`], and saves the result with a time-to-live
//! of [`BackoffStep::ttl_millis`] (after which the state equals "never seen"), all in the
//! same atomic step as the send's other limits. The Redis store runs the same arithmetic
//! in Lua.

use std::time::Duration;

use crate::clock::{Timestamp, duration_millis};

use super::Decision;

/// The schedule. With the defaults: three sends back to back, then waits of 1, 2, 4, 8,
/// 16 and 32 minutes (each plus up to 20% jitter), 32 minutes from then on; each hour
/// without a send forgets one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Sends allowed back to back before the first wait. At least one.
    pub free_sends: u32,
    /// The first wait; each further send doubles it.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
    /// Random extra wait, up to this share of the wait, in percent (so many clients
    /// refused together do not all come back at the same moment).
    pub jitter_percent: u8,
    /// Quiet time after which one step is forgotten.
    pub decay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            free_sends: 3,
            first_wait: Duration::from_secs(60),
            max_wait: Duration::from_secs(32 * 60),
            jitter_percent: 20,
            decay: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait after a send that brought the streak to `level`, before jitter.
    pub fn nominal_wait(&self, level: u32) -> Duration {
        let free = self.free_sends.max(1);
        if level < free {
            return Duration::ZERO;
        }
        let doublings = (level - free).min(32);
        self.first_wait
            .saturating_mul(1 << doublings.min(31))
            .min(self.max_wait)
    }
}

/// The stored state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackoffState {
    /// Sends in the current streak.
    pub level: u32,
    /// Unix ms before which no send is allowed.
    pub next_at_millis: u64,
    /// Unix ms of the last send.
    pub last_at_millis: u64,
}

/// The outcome of one backoff step: the decision and the state to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffStep {
    /// Allowed or limited.
    pub decision: Decision,
    /// The state to store (unchanged when limited).
    pub state: BackoffState,
    /// How long the stored state matters; expire it after this.
    pub ttl_millis: u64,
}

/// One backoff decision at `now` for the stored state (if any). `jitter_permille` (0 to
/// 1000, drawn at random by the caller) scales the jitter: the wait after an allowed send
/// is the nominal wait plus `nominal * jitter_percent% * jitter_permille / 1000`.
pub fn backoff(
    stored: Option<BackoffState>,
    schedule: &Backoff,
    jitter_permille: u32,
    now: Timestamp,
) -> BackoffStep {
    let now = now.as_millis();
    let decay = duration_millis(schedule.decay).max(1);
    let state = stored.unwrap_or_default();
    if state.next_at_millis > now {
        return BackoffStep {
            decision: Decision::Limited {
                retry_after: Duration::from_millis(state.next_at_millis - now),
            },
            state,
            ttl_millis: ttl(&state, decay, now),
        };
    }
    let quiet = now.saturating_sub(state.last_at_millis);
    let forgotten = u32::try_from(quiet / decay).unwrap_or(u32::MAX);
    let level = state.level.saturating_sub(forgotten).saturating_add(1);
    let nominal = duration_millis(schedule.nominal_wait(level));
    let jitter = nominal
        .saturating_mul(u64::from(schedule.jitter_percent))
        .saturating_mul(u64::from(jitter_permille.min(1000)))
        / 100_000;
    let next = BackoffState {
        level,
        next_at_millis: now.saturating_add(nominal).saturating_add(jitter),
        last_at_millis: now,
    };
    BackoffStep {
        decision: Decision::Allowed,
        state: next,
        ttl_millis: ttl(&next, decay, now),
    }
}

/// Until the wait is over and every step is forgotten.
fn ttl(state: &BackoffState, decay: u64, now: u64) -> u64 {
    let forgotten_at = state
        .last_at_millis
        .saturating_add(decay.saturating_mul(u64::from(state.level)));
    state
        .next_at_millis
        .max(forgotten_at)
        .saturating_sub(now)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn three_free_sends_then_doubling_waits_up_to_the_ceiling() {
        let schedule = Backoff::default();
        let minute = 60_000;
        let mut now = 1_000_000;
        let mut state = None;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let step = backoff(state, &schedule, 0, at(now));
            assert_eq!(step.decision, Decision::Allowed);
            let wait = step.state.next_at_millis - now;
            waits.push(wait / minute);
            state = Some(step.state);
            // Refused one millisecond early, with the exact wait left.
            if wait > 0 {
                let early = backoff(state, &schedule, 0, at(now + wait - 1));
                assert_eq!(
                    early.decision,
                    Decision::Limited {
                        retry_after: Duration::from_millis(1)
                    }
                );
                assert_eq!(early.state, step.state, "a refusal changes nothing");
            }
            now += wait;
        }
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 16, 32, 32, 32]);
    }

    #[test]
    fn jitter_stays_within_its_share() {
        let schedule = Backoff::default();
        let state = BackoffState {
            level: 4,
            next_at_millis: 0,
            last_at_millis: 999_000,
        };
        // Level 5 waits 4 minutes nominally; jitter adds up to 20%.
        let wait = |permille| {
            backoff(Some(state), &schedule, permille, at(1_000_000))
                .state
                .next_at_millis
                - 1_000_000
        };
        assert_eq!(wait(0), 240_000);
        assert_eq!(wait(500), 264_000);
        assert_eq!(wait(1000), 288_000);
        assert_eq!(wait(5000), 288_000, "permille is capped");
    }

    #[test]
    fn quiet_time_forgets_one_step_per_decay() {
        let schedule = Backoff::default();
        let hour = 3_600_000;
        let state = BackoffState {
            level: 7,
            next_at_millis: 0,
            last_at_millis: 0,
        };
        // Two and a half quiet hours: level 7 - 2 = 5, plus this send: 6, an 8-minute wait.
        let step = backoff(Some(state), &schedule, 0, at(2 * hour + hour / 2));
        assert_eq!(step.state.level, 6);
        assert_eq!(
            step.state.next_at_millis - (2 * hour + hour / 2),
            8 * 60_000
        );
        // Long quiet: a fresh start.
        let step = backoff(Some(state), &schedule, 0, at(100 * hour));
        assert_eq!(step.state.level, 1);
        // The state lives until every step is forgotten.
        assert_eq!(step.ttl_millis, hour);
    }
}
