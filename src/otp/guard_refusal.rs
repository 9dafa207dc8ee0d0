//! What the conversion guard found when it refused a send: the level that refused (the
//! prefix, its range, or the country), the number prefix and its country, that level's
//! sends and verifications in its window, and the floor they fell below. The last few, one per prefix, are kept in the process for an operator's view
//! ([`OtpService::guard_refusals`](crate::OtpService::guard_refusals)).

use crate::clock::Timestamp;
use crate::limit::GuardLevel;

/// Prefixes remembered at most; the oldest is forgotten first.
pub(super) const MAX_REMEMBERED: usize = 64;

/// One prefix the guard refused, as of its latest refusal.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GuardRefusal {
    /// The level whose rule refused: the prefix, its range, or the whole country.
    pub level: GuardLevel,
    /// The prefix's leading E.164 digits, calling code included (`4478123`): a number
    /// block, not a subscriber.
    pub prefix: String,
    /// Its region (`GB`), empty for a non-geographic number.
    pub country: String,
    /// Sends at the refusing level in its window (an estimate: the older bucket is
    /// weighted).
    pub sends: f64,
    /// Codes sent there that were verified in the window.
    pub verified: f64,
    /// `verified / sends`, in thousandths.
    pub rate_permille: u32,
    /// The floor it fell below, in thousandths (a share of the country's normal).
    pub floor_permille: u32,
    /// When it was refused last.
    pub at: Timestamp,
    /// Refusals of this prefix since it was first remembered.
    pub refusals: u64,
}

/// Keeps `refusal`, one entry per prefix, at most [`MAX_REMEMBERED`].
pub(super) fn remember(list: &mut Vec<GuardRefusal>, mut refusal: GuardRefusal) {
    if let Some(index) = list.iter().position(|r| r.prefix == refusal.prefix) {
        refusal.refusals = list[index].refusals + 1;
        list.remove(index);
    } else if list.len() >= MAX_REMEMBERED {
        list.remove(0);
    }
    list.push(refusal);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(prefix: &str, at: u64) -> GuardRefusal {
        GuardRefusal {
            level: GuardLevel::Prefix,
            prefix: prefix.to_owned(),
            country: "GB".to_owned(),
            sends: 30.0,
            verified: 0.0,
            rate_permille: 0,
            floor_permille: 440,
            at: Timestamp::from_millis(at),
            refusals: 1,
        }
    }

    #[test]
    fn one_entry_per_prefix_counting_its_refusals_and_the_oldest_goes_first() {
        let mut list = Vec::new();
        remember(&mut list, refusal("4478123", 1));
        remember(&mut list, refusal("4478123", 2));
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0].refusals, list[0].at),
            (2, Timestamp::from_millis(2))
        );
        for i in 0..MAX_REMEMBERED as u64 {
            remember(&mut list, refusal(&format!("p{i}"), 10 + i));
        }
        assert_eq!(list.len(), MAX_REMEMBERED);
        assert!(
            list.iter().all(|r| r.prefix != "4478123"),
            "the oldest was forgotten"
        );
        assert_eq!(
            list.last().map(|r| r.at),
            Some(Timestamp::from_millis(10 + MAX_REMEMBERED as u64 - 1))
        );
    }
}
