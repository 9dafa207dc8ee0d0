//! The conversion guard against SMS pumping. A pumping bot sends codes to numbers it
//! profits from and never enters one, so where it sends, few codes are verified. The guard
//! counts sends and verifications at four levels: a number prefix and the whole country
//! over a short window, and a number range (a shorter prefix) and the whole country over a
//! day. Each level gets an allowance of sends that need no verification; past it, every
//! send must be paid for by verifications (`verified ≥ floor × (sends − allowance)`), so
//! a destination that never converts gets its allowance and nothing more, and a real one
//! earns room as its users enter their codes.
//!
//! The floor comes from the country's conversion over the day, pulled toward a prior while
//! it has few sends (`(verified + prior·k) / (sends + k)`) and never below an absolute
//! minimum: a country with no real users cannot teach the guard that 0% is normal, and an
//! attack cannot drag the floor below the minimum.
//!
//! A key that spends its allowance is *held*: until its conversion recovers (a full
//! allowance of sends converting at the floor, none of them free) its allowance is one send, a probe once its
//! window is empty, so no fixed number of sends leaks each time the window slides, and a
//! real market's verified probes earn its way back.
//!
//! State per key is six numbers: the current bucket's index, the sends and verifications
//! of the current and the previous bucket, and until when the key is held. The window's
//! counts are the current bucket's plus the previous bucket's weighted by how much of it is
//! still inside the window (a sliding window in constant space). A store loads the state,
//! calls [`conversion`] (a send) or [`credit`] (a verification), and saves the result, all
//! in one atomic step. The Redis store runs the same arithmetic in Lua.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::{Timestamp, duration_millis};

use super::Decision;

/// The guard's settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversionGuard {
    /// Leading E.164 digits (country code included) that make a prefix: 7 by default
    /// (`+81 90 123…` → `8190123`), a block one carrier range or premium service shares.
    pub prefix_digits: u8,
    /// Leading E.164 digits that make a range, judged over the day: 5 by default
    /// (`+81 90 1…` → `81901`). A slow spread over many prefixes of one range the service's
    /// users rarely reach is caught here.
    pub range_digits: u8,
    /// The short window prefixes and countries are judged over. Default 2 hours.
    pub window: Duration,
    /// Sends in the short window a prefix gets before its verifications must keep up.
    /// Default 20.
    pub min_prefix_sends: u32,
    /// Sends in the short window a whole country gets before its verifications must keep
    /// up. Default 200.
    pub min_country_sends: u32,
    /// The floor is this share of the country's conversion, in percent. Default 50.
    pub threshold_percent: u8,
    /// The long window: the country's conversion is learned over it, and ranges and whole
    /// countries are judged over it. Default 24 hours.
    pub baseline_window: Duration,
    /// How many sends the prior weighs as (`k` in `(verified + prior·k) / (sends + k)`):
    /// a country's own conversion outweighs the prior once it has more sends than this.
    /// Default 100.
    pub min_baseline_sends: u32,
    /// The prior: the conversion assumed for a country with no history, in percent.
    /// Default 60 (real users verify 70-90% of codes; a pumped destination close to none).
    pub default_baseline_percent: u8,
    /// The floor never falls below this, in percent, whatever the country has learned.
    /// Default 20.
    pub min_floor_percent: u8,
    /// Probation: sends a whole country gets over the long window before its
    /// verifications must keep up, for a country not in [`probation`](Self::probation).
    /// Default 5: a country the service has never served gets five codes a day until
    /// its users verify them; each verified code buys about five more.
    pub probation_sends: u32,
    /// Probation per country (ISO region, e.g. `MX`), for a market about to launch with
    /// many users at once. Default none. It applies to the whole country only: its
    /// ranges keep [`range_probation_sends`](Self::range_probation_sends), so a spread into
    /// ranges its users never reach is still caught.
    pub probation: BTreeMap<String, u32>,
    /// Probation of every range, in every country: sends a range gets over the long
    /// window before its verifications must keep up. Default 5. A range the service's
    /// users reach earns room with every verified code; one they never reach stays at 5.
    pub range_probation_sends: u32,
}

impl Default for ConversionGuard {
    fn default() -> Self {
        Self {
            prefix_digits: 7,
            range_digits: 5,
            window: Duration::from_secs(2 * 3600),
            min_prefix_sends: 20,
            min_country_sends: 200,
            threshold_percent: 50,
            baseline_window: Duration::from_secs(24 * 3600),
            min_baseline_sends: 100,
            default_baseline_percent: 60,
            min_floor_percent: 20,
            probation_sends: 5,
            probation: BTreeMap::new(),
            range_probation_sends: 5,
        }
    }
}

impl ConversionGuard {
    /// The lowest acceptable conversion, in thousandths, given the country's counts over
    /// the long window (`None`: unreadable, the prior alone).
    pub fn floor_permille(&self, baseline: Option<Counts>) -> u32 {
        let prior = f64::from(self.default_baseline_percent) / 100.0;
        let weight = f64::from(self.min_baseline_sends);
        let counts = baseline.unwrap_or_default();
        // Pulled toward the prior while the country has few sends, so sparse history (or
        // none) is judged against what real users do, not against its own traffic.
        let normal = if counts.sends + weight <= 0.0 {
            prior
        } else {
            (counts.verified.min(counts.sends) + prior * weight) / (counts.sends + weight)
        };
        // Relative to the country's own normal: a country whose users rarely verify does
        // not lock itself out, and a pumped destination (conversion near 0) is below any
        // floor; never under the absolute minimum.
        let floor = (normal * f64::from(self.threshold_percent) / 100.0)
            .max(f64::from(self.min_floor_percent) / 100.0)
            .clamp(0.0, 1.0);
        (floor * 1000.0).round() as u32
    }

    /// The probation allowance of `country` (an ISO region, or `+<calling code>`).
    pub fn probation_for(&self, country: &str) -> u32 {
        self.probation
            .get(country)
            .copied()
            .unwrap_or(self.probation_sends)
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
    /// Until when (Unix ms) the key is held: an allowance of one. 0: not held.
    pub held_until: u64,
}

impl ConversionState {
    /// The state moved on to `now`'s bucket (a hold is kept).
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
                held_until: self.held_until,
            },
            _ => Self {
                bucket,
                held_until: self.held_until,
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

    /// Whether the key is held at `now`.
    pub fn held(&self, now: Timestamp) -> bool {
        self.held_until > now.as_millis()
    }

    /// How long the state matters: two buckets, or until its hold ends.
    pub fn ttl_millis(&self, bucket_millis: u64, now: Timestamp) -> u64 {
        (2 * bucket_millis.max(1)).max(self.held_until.saturating_sub(now.as_millis()))
    }
}

/// How one key judges a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversionRule {
    /// The sliding window's bucket length, in ms.
    pub bucket_millis: u64,
    /// Sends in the window that need no verification (`u64::MAX`: count only).
    pub allowance: u64,
    /// The lowest acceptable conversion, in thousandths.
    pub floor_permille: u32,
    /// How long a key that spent its allowance stays held without a recovery, in ms.
    pub hold_millis: u64,
}

impl ConversionRule {
    /// Whether `sends_added` more sends on top of `counts` break the rule: the
    /// verifications fall short of the floor for the sends past the allowance. A held key's
    /// allowance is one: a probe, once its window is empty.
    pub fn refuses(&self, counts: Counts, sends_added: f64, held: bool) -> bool {
        let allowance = if held { 1.0 } else { self.allowance as f64 };
        // Computed exactly so in the Lua script (doubles both sides).
        counts.verified * 1000.0
            < (counts.sends + sends_added - allowance) * f64::from(self.floor_permille)
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

/// One send under `rule`: refused when the window's verifications do not pay for it;
/// otherwise counted. An allowed send that leaves nothing of the allowance holds the key;
/// a held key is released once a full allowance of sends converts at the floor with none
/// of them free.
pub fn conversion(
    stored: Option<ConversionState>,
    rule: ConversionRule,
    now: Timestamp,
) -> ConversionStep {
    let bucket_millis = rule.bucket_millis.max(1);
    let mut state = stored.unwrap_or_default().rolled(bucket_millis, now);
    let counts = state.counts(bucket_millis, now);
    let held = state.held(now);
    if rule.refuses(counts, 1.0, held) {
        let retry = bucket_millis - now.as_millis() % bucket_millis;
        return ConversionStep {
            decision: Decision::Limited {
                retry_after: Duration::from_millis(retry),
            },
            ttl_millis: state.ttl_millis(bucket_millis, now),
            state,
            counts,
        };
    }
    state.sends += 1;
    let hold_until = now.as_millis().saturating_add(rule.hold_millis);
    if held {
        // Recovered: a full allowance of sends converting at the floor, none free.
        let recovered = counts.sends + 1.0 >= rule.allowance as f64
            && counts.verified * 1000.0 >= (counts.sends + 1.0) * f64::from(rule.floor_permille);
        state.held_until = if recovered { 0 } else { hold_until };
    } else if rule.refuses(counts, 2.0, false) {
        // The allowance is spent: the next send must be paid for, and so must every one
        // until the key recovers.
        state.held_until = hold_until;
    }
    ConversionStep {
        decision: Decision::Allowed,
        ttl_millis: state.ttl_millis(bucket_millis, now),
        state,
        counts,
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

    fn rule(allowance: u64, floor_permille: u32) -> ConversionRule {
        ConversionRule {
            bucket_millis: HOUR,
            allowance,
            floor_permille,
            hold_millis: 24 * HOUR,
        }
    }

    fn sends(
        mut state: Option<ConversionState>,
        rule: ConversionRule,
        n: u32,
        now: Timestamp,
    ) -> Option<ConversionState> {
        for _ in 0..n {
            let step = conversion(state, rule, now);
            assert_eq!(step.decision, Decision::Allowed);
            state = Some(step.state);
        }
        state
    }

    #[test]
    fn the_allowance_is_free_and_then_every_send_must_be_paid_for() {
        let now = Timestamp::from_millis(10 * HOUR + 1_000);
        let rule = rule(20, 300);
        let state = sends(None, rule, 20, now);
        let refused = conversion(state, rule, now);
        assert_eq!(
            refused.decision,
            Decision::Limited {
                retry_after: Duration::from_millis(HOUR - 1_000)
            }
        );
        assert_eq!(refused.state.sends, 20, "a refusal counts nothing");
        assert!(refused.state.held(now), "the spent allowance holds the key");
        // Held, one send is free: five verified of 20 do not pay for the 21st at 30%.
        let mut paid = refused.state;
        for _ in 0..5 {
            paid = credit(Some(paid), HOUR, now);
        }
        assert!(matches!(
            conversion(Some(paid), rule, now).decision,
            Decision::Limited { .. }
        ));
        // Six do, but 6 of 21 is under the floor: still held.
        paid = credit(Some(paid), HOUR, now);
        let step = conversion(Some(paid), rule, now);
        assert_eq!(step.decision, Decision::Allowed);
        assert!(step.state.held(now));
        // Seven of 22 converts at the floor with no send free: released.
        let step = conversion(Some(credit(Some(step.state), HOUR, now)), rule, now);
        assert_eq!(step.decision, Decision::Allowed);
        assert_eq!(step.state.held_until, 0);
    }

    #[test]
    fn a_held_key_stays_held_as_the_window_slides_and_probes_when_it_is_empty() {
        let start = Timestamp::from_millis(10 * HOUR);
        let rule = rule(20, 300);
        let state = sends(None, rule, 20, start);
        assert!(state.is_some_and(|s| s.held(start)));
        // Half a bucket on, half of the 20 still count: unheld it would get 10 more.
        let later = Timestamp::from_millis(11 * HOUR + HOUR / 2);
        let step = conversion(state, rule, later);
        assert!(matches!(step.decision, Decision::Limited { .. }));
        // Two buckets on the window is empty: one probe, and the key is held again.
        let empty = Timestamp::from_millis(12 * HOUR + 1);
        let probe = conversion(state, rule, empty);
        assert_eq!(probe.decision, Decision::Allowed);
        assert!(
            probe.state.held(empty),
            "an unverified probe does not release it"
        );
        assert!(matches!(
            conversion(Some(probe.state), rule, empty).decision,
            Decision::Limited { .. }
        ));
        // The hold outlives the two buckets the counts need.
        assert!(probe.ttl_millis > 2 * HOUR);
    }

    #[test]
    fn verified_probes_lift_a_hold() {
        let start = Timestamp::from_millis(10 * HOUR);
        let rule = rule(4, 300);
        let mut state = sends(None, rule, 4, start);
        let empty = Timestamp::from_millis(12 * HOUR + 1);
        // Each verified send pays for three more at 30%: the key earns its way back.
        let mut allowed = 0;
        for _ in 0..10 {
            let step = conversion(state, rule, empty);
            if step.decision == Decision::Allowed {
                allowed += 1;
                state = Some(credit(Some(step.state), HOUR, empty));
            }
        }
        assert_eq!(allowed, 10);
        assert!(state.is_some_and(|s| !s.held(empty)));
    }

    #[test]
    fn count_only_keys_never_refuse_or_hold() {
        let now = Timestamp::from_millis(HOUR);
        let state = sends(None, rule(u64::MAX, 500), 1_000, now);
        assert!(state.is_some_and(|s| s.held_until == 0 && s.sends == 1_000));
    }

    #[test]
    fn the_window_slides() {
        let state = ConversionState {
            bucket: 10,
            sends: 40,
            ..ConversionState::default()
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
    fn the_floor_is_judged_against_the_prior_until_there_is_history() {
        let guard = ConversionGuard::default();
        assert_eq!(guard.floor_permille(None), 300, "the prior 0.6 x 0.5");
        let learned = |sends, verified| Some(Counts { sends, verified });
        // Plenty of history: its own conversion (0.8 x 0.5), barely moved by the prior.
        assert_eq!(guard.floor_permille(learned(10_000.0, 8_000.0)), 399);
        // Little history: mostly the prior.
        assert_eq!(guard.floor_permille(learned(10.0, 10.0)), 318);
        // A country that never converts cannot teach the floor that 0% is normal.
        assert_eq!(guard.floor_permille(learned(5_000.0, 0.0)), 200);
        // A low-converting country lowers its floor, down to the minimum.
        assert_eq!(guard.floor_permille(learned(10_000.0, 5_000.0)), 250);
        assert_eq!(guard.floor_permille(learned(10_000.0, 2_000.0)), 200);
    }

    #[test]
    fn probation_is_per_country_with_a_default() {
        let mut guard = ConversionGuard::default();
        guard.probation.insert("MX".to_owned(), 200);
        assert_eq!(guard.probation_for("MX"), 200);
        assert_eq!(guard.probation_for("UZ"), 5);
    }
}
