//! The conversion guard against SMS pumping. A pumping bot sends codes to numbers it
//! profits from and never enters one, so where it sends, few codes are verified. The guard
//! counts sends and verifications per destination country and per number prefix over a
//! sliding window, and throttles a prefix or country whose conversion (verified / sent)
//! falls below a share of its country's normal conversion, once it has enough sends to
//! judge. The normal conversion is learned per country over a longer window.
//!
//! State per key is five numbers: the current bucket's index, and the sends and
//! verifications of the current and the previous bucket. The window's counts are the
//! current bucket's plus the previous bucket's weighted by how much of it is still inside
//! the window (a sliding window in constant space). A store loads the state, calls
//! [`conversion`] (a send) or [`credit`] (a verification), and saves the result with a
//! time-to-live of two buckets, all in one atomic step. The Redis store runs the same
//! arithmetic in Lua.

use std::time::Duration;

use crate::clock::{Timestamp, duration_millis};

use super::Decision;

/// The guard's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversionGuard {
    /// Leading E.164 digits (country code included) that make a prefix: 7 by default
    /// (`+81 90 123…` → `8190123`), a block one carrier range or premium service shares.
    pub prefix_digits: u8,
    /// The sliding window sends and verifications are judged over. Default 2 hours. While
    /// a prefix stays below the floor, about `min_prefix_sends` sends per window still get
    /// through (as the oldest sends leave the window), so a longer window leaks less.
    pub window: Duration,
    /// Sends in the window before a prefix can be judged. Default 20.
    pub min_prefix_sends: u32,
    /// Sends in the window before a whole country can be judged. Default 200.
    pub min_country_sends: u32,
    /// Throttle when conversion falls below this share of the country's normal conversion,
    /// in percent. Default 50.
    pub threshold_percent: u8,
    /// The window the country's normal conversion is learned over. Default 24 hours.
    pub baseline_window: Duration,
    /// Sends in the baseline window before the learned conversion is trusted. Default 100.
    pub min_baseline_sends: u32,
    /// The normal conversion assumed until it is learned, in percent. Default 60 (real
    /// users verify 70-90% of codes; a pumped prefix close to none).
    pub default_baseline_percent: u8,
}

impl Default for ConversionGuard {
    fn default() -> Self {
        Self {
            prefix_digits: 7,
            window: Duration::from_secs(2 * 3600),
            min_prefix_sends: 20,
            min_country_sends: 200,
            threshold_percent: 50,
            baseline_window: Duration::from_secs(24 * 3600),
            min_baseline_sends: 100,
            default_baseline_percent: 60,
        }
    }
}

impl ConversionGuard {
    /// The lowest acceptable conversion, in thousandths, given the country's learned
    /// counts over the baseline window (`None` before any are read).
    pub fn floor_permille(&self, baseline: Option<Counts>) -> u32 {
        let normal = baseline
            .filter(|counts| counts.sends >= f64::from(self.min_baseline_sends))
            .map_or(f64::from(self.default_baseline_percent) / 100.0, |counts| {
                counts.rate()
            });
        // Relative to the country's own normal: a country whose users rarely verify does
        // not lock itself out, and a pumped prefix (conversion near 0) is below any floor.
        let floor = (normal * f64::from(self.threshold_percent) / 100.0).clamp(0.0, 1.0);
        (floor * 1000.0).round() as u32
    }
}

/// Sends and verifications in a window (estimates: the previous bucket is weighted).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    /// Codes sent.
    pub sends: f64,
    /// Codes verified.
    pub verified: f64,
}

impl Counts {
    /// Verified per sent (1 with no sends).
    pub fn rate(&self) -> f64 {
        if self.sends <= 0.0 {
            1.0
        } else {
            (self.verified / self.sends).min(1.0)
        }
    }
}

/// The stored state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversionState {
    /// The current bucket: Unix ms divided by the bucket length.
    pub bucket: u64,
    /// Sends in the current bucket.
    pub sends: u64,
    /// Verifications in the current bucket.
    pub verified: u64,
    /// Sends in the previous bucket.
    pub previous_sends: u64,
    /// Verifications in the previous bucket.
    pub previous_verified: u64,
}

impl ConversionState {
    /// The state moved on to `now`'s bucket.
    pub fn rolled(self, bucket_millis: u64, now: Timestamp) -> Self {
        let bucket = now.as_millis() / bucket_millis.max(1);
        match bucket.checked_sub(self.bucket) {
            Some(0) => self,
            Some(1) => Self {
                bucket,
                sends: 0,
                verified: 0,
                previous_sends: self.sends,
                previous_verified: self.verified,
            },
            _ => Self {
                bucket,
                ..Self::default()
            },
        }
    }

    /// The window's counts at `now` (the state rolled to `now` first).
    pub fn counts(&self, bucket_millis: u64, now: Timestamp) -> Counts {
        let bucket_millis = bucket_millis.max(1);
        let into = now.as_millis() % bucket_millis;
        // Share of the previous bucket still inside the window.
        let weight = (bucket_millis - into) as f64 / bucket_millis as f64;
        Counts {
            sends: self.sends as f64 + self.previous_sends as f64 * weight,
            verified: self.verified as f64 + self.previous_verified as f64 * weight,
        }
    }
}

/// The outcome of one send through the guard: the decision and the state to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversionStep {
    /// Allowed (the send was counted) or limited.
    pub decision: Decision,
    /// The state to store (rolled; the send counted only when allowed).
    pub state: ConversionState,
    /// The window's counts before this send.
    pub counts: Counts,
    /// How long the stored state matters.
    pub ttl_millis: u64,
}

/// One send: refused when the window holds at least `min_sends` sends and fewer than
/// `floor_permille` thousandths of them were verified; otherwise counted.
pub fn conversion(
    stored: Option<ConversionState>,
    bucket_millis: u64,
    min_sends: u64,
    floor_permille: u32,
    now: Timestamp,
) -> ConversionStep {
    let bucket_millis = bucket_millis.max(1);
    let mut state = stored.unwrap_or_default().rolled(bucket_millis, now);
    let counts = state.counts(bucket_millis, now);
    let ttl_millis = 2 * bucket_millis;
    // Integer thousandths, as the Lua script computes them.
    let tripped = counts.sends >= min_sends as f64
        && counts.verified * 1000.0 < counts.sends * f64::from(floor_permille);
    if tripped {
        let retry = bucket_millis - now.as_millis() % bucket_millis;
        return ConversionStep {
            decision: Decision::Limited {
                retry_after: Duration::from_millis(retry),
            },
            state,
            counts,
            ttl_millis,
        };
    }
    state.sends += 1;
    ConversionStep {
        decision: Decision::Allowed,
        state,
        counts,
        ttl_millis,
    }
}

/// One verification, counted on the stored state.
pub fn credit(
    stored: Option<ConversionState>,
    bucket_millis: u64,
    now: Timestamp,
) -> ConversionState {
    let mut state = stored.unwrap_or_default().rolled(bucket_millis.max(1), now);
    state.verified += 1;
    state
}

/// The bucket length for `window`, in ms.
pub fn bucket_millis(window: Duration) -> u64 {
    duration_millis(window).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn trips_on_low_conversion_once_there_are_enough_sends() {
        let now = Timestamp::from_millis(10 * HOUR + 1_000);
        let mut state = None;
        // 19 sends, none verified: not enough to judge.
        for _ in 0..19 {
            let step = conversion(state, HOUR, 20, 300, now);
            assert_eq!(step.decision, Decision::Allowed);
            state = Some(step.state);
        }
        let step = conversion(state, HOUR, 20, 300, now);
        assert_eq!(
            step.decision,
            Decision::Allowed,
            "the 20th is counted first"
        );
        state = Some(step.state);
        let refused = conversion(state, HOUR, 20, 300, now);
        assert_eq!(
            refused.decision,
            Decision::Limited {
                retry_after: Duration::from_millis(HOUR - 1_000)
            }
        );
        assert_eq!(refused.state.sends, 20, "a refusal counts nothing");
        // Six verifications of 20 is 30%: at the floor, allowed again.
        let mut verified = refused.state;
        for _ in 0..6 {
            verified = credit(Some(verified), HOUR, now);
        }
        assert_eq!(
            conversion(Some(verified), HOUR, 20, 300, now).decision,
            Decision::Allowed
        );
    }

    #[test]
    fn the_window_slides() {
        let state = ConversionState {
            bucket: 10,
            sends: 40,
            verified: 0,
            previous_sends: 0,
            previous_verified: 0,
        };
        // A quarter into the next bucket, three quarters of the old one still count.
        let later = Timestamp::from_millis(11 * HOUR + HOUR / 4);
        let rolled = state.rolled(HOUR, later);
        assert_eq!(rolled.counts(HOUR, later).sends, 30.0);
        // Two buckets on, it is all forgotten.
        let much_later = Timestamp::from_millis(12 * HOUR + 1);
        assert_eq!(
            state
                .rolled(HOUR, much_later)
                .counts(HOUR, much_later)
                .sends,
            0.0
        );
    }

    #[test]
    fn the_floor_follows_the_learned_baseline() {
        let guard = ConversionGuard::default();
        assert_eq!(guard.floor_permille(None), 300, "default 0.6 x 0.5");
        let learned = |sends, verified| Some(Counts { sends, verified });
        assert_eq!(guard.floor_permille(learned(1000.0, 800.0)), 400);
        // Too few sends to trust: the default.
        assert_eq!(guard.floor_permille(learned(50.0, 45.0)), 300);
        // A low-converting country lowers its own floor.
        assert_eq!(guard.floor_permille(learned(1000.0, 200.0)), 100);
    }
}
