//! Properties over generated inputs (proptest): rate-limit arithmetic, phone number
//! normalisation, and every store against a reference model.

use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{Decision, HmacKey, KeyRing, LimitKey, PhoneNumber, Quota, Timestamp, gcra};
use proptest::prelude::*;
use secrecy::SecretSlice;

fn quota() -> impl Strategy<Value = Quota> {
    (1u32..=8, 1u64..=600).prop_map(|(count, seconds)| {
        Quota::per_period(
            NonZeroU32::new(count).unwrap(),
            Duration::from_secs(seconds),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A quota is a burst of `count` that refills one event per interval: over any span
    /// of time, from the first allowed event to the last, GCRA admits at most `count`
    /// plus one per whole interval in the span, and never more than `count` at one
    /// instant. A refused step changes nothing.
    #[test]
    fn gcra_never_admits_more_than_its_quota(
        quota in quota(),
        gaps in proptest::collection::vec(0u64..200_000, 1..200),
    ) {
        let interval = u64::try_from(quota.refill_interval().as_millis()).unwrap().max(1);
        let count = u64::from(quota.count().get());
        let mut now = 1_700_000_000_000u64;
        let mut tat = None;
        let mut allowed = Vec::new();
        for gap in gaps {
            now += gap;
            let step = gcra(tat, quota, Timestamp::from_millis(now));
            match step.decision {
                Decision::Allowed => {
                    allowed.push(now);
                    tat = Some(step.new_tat_millis);
                }
                Decision::Limited { retry_after } => {
                    prop_assert!(retry_after > Duration::ZERO);
                    // Allowed once the wait is over.
                    let later = now + u64::try_from(retry_after.as_millis()).unwrap();
                    prop_assert_eq!(
                        gcra(tat, quota, Timestamp::from_millis(later)).decision,
                        Decision::Allowed
                    );
                }
            }
        }
        for (i, &first) in allowed.iter().enumerate() {
            for (j, &last) in allowed.iter().enumerate().skip(i) {
                let in_span = (j - i + 1) as u64;
                prop_assert!(
                    in_span <= count + (last - first) / interval,
                    "{} events in {} ms with a burst of {} and one per {} ms",
                    in_span, last - first, count, interval
                );
            }
        }
    }

    /// Every way of writing one number gives one E.164 form, one fingerprint and so one
    /// limit key; parsing the E.164 form again gives the same number.
    #[test]
    fn every_spelling_of_a_number_is_one_number(
        digits in "[0-9]{8}",
        prefix in prop::sample::select(vec!["90", "80", "70"]),
        separator in prop::sample::select(vec!["", " ", "-", "\u{3000}"]),
        full_width in any::<bool>(),
    ) {
        let national = format!("{prefix}{digits}");
        let widen = |text: String| -> String {
            if !full_width {
                return text;
            }
            text.chars()
                .map(|c| match c {
                    '0'..='9' => char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).unwrap(),
                    '+' => '\u{FF0B}',
                    other => other,
                })
                .collect()
        };
        let (a, b) = national.split_at(2);
        let (b, c) = b.split_at(4);
        let spellings = [
            (format!("+81{national}"), None),
            (widen(format!("+81{separator}{a}{separator}{b}{separator}{c}")), None),
            (widen(format!("0{a}{separator}{b}{separator}{c}")), Some("JP")),
            (format!("(0{a}) {b}-{c}"), Some("JP")),
            (format!("+81 {a} {b} {c}"), Some("US")),
        ];
        let ring = KeyRing::new(HmacKey::new(1, &SecretSlice::from(vec![5u8; 32])).unwrap());
        let mut seen: Option<(PhoneNumber, LimitKey)> = None;
        let mut refused = 0;
        for (spelling, region) in spellings {
            let parsed = match region {
                Some(region) => PhoneNumber::parse_with_region(&spelling, region),
                None => PhoneNumber::parse(&spelling),
            };
            let Ok(number) = parsed else {
                refused += 1;
                continue;
            };
            prop_assert_eq!(&PhoneNumber::parse(number.e164()).unwrap(), &number);
            let key = LimitKey::destination(ring.destination_fingerprint(number.e164()));
            if let Some((first, first_key)) = &seen {
                prop_assert_eq!(first, &number, "{:?}", spelling);
                prop_assert_eq!(first_key, &key);
            } else {
                seen = Some((number, key));
            }
        }
        // Not every generated number is assigned; then no spelling may parse.
        prop_assert!(refused == 0 || seen.is_none(), "some spellings parsed, {} did not", refused);
    }
}
