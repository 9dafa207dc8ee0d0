//! A parsed number's region, validity and type: `phonenumber` 0.3's validator rules,
//! applied once each over the patterns compiled in `patterns.rs`.
//!
//! Asked through `phonenumber`, a parse found the number's region three times and its type
//! twice, each pattern use taking the regex cache's one lock and hashing the pattern's
//! whole source (often hundreds of characters) twice: most of a parse's time. The rules
//! here are the validator's, step for step, including its quirks (a pattern matches when
//! a match starts at the first digit; validity reads the national number with its leading
//! zeros, region and type without). `tests` hold them to `phonenumber`'s own answers for
//! every region's example numbers and thousands of variations of them, and the fuzz target
//! `phone_parse` checks every input it tries.

use phonenumber::Type;
use phonenumber::country::Id;

use super::patterns::{CallingCode, Pattern, RegionPatterns, patterns};

/// What validation needs to know of a parsed number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classification {
    /// The region the number belongs to (`None` for non-geographic numbers).
    pub(crate) region: Option<Id>,
    /// Whether the metadata calls it a valid number.
    pub(crate) valid: bool,
    /// Its type (`Unknown` when none matches).
    pub(crate) kind: Type,
}

/// Classifies `parsed` with the compiled patterns, or through `phonenumber` itself if they
/// could not be built.
pub(crate) fn classify(parsed: &phonenumber::PhoneNumber) -> Classification {
    let Some(patterns) = patterns() else {
        return as_phonenumber_does(parsed);
    };
    let code = parsed.country().code();
    let national = parsed.national();
    let value = national.value().to_string();
    let home = source_for(patterns.calling_code(code), &value);
    let kind = home.map_or(Type::Unknown, |region| number_type(region, &value));
    let valid = if national.zeros() == 0 {
        // The same digits: the same region and the same type.
        kind != Type::Unknown
    } else {
        let with_zeros = national.to_string();
        source_for(patterns.calling_code(code), &with_zeros)
            .is_some_and(|region| number_type(region, &with_zeros) != Type::Unknown)
    };
    Classification {
        region: home.and_then(|region| region.meta.id().parse().ok()),
        valid,
        kind,
    }
}

/// `phonenumber`'s own answers, each found its own way.
pub(crate) fn as_phonenumber_does(parsed: &phonenumber::PhoneNumber) -> Classification {
    Classification {
        region: parsed.country().id(),
        valid: parsed.is_valid(),
        kind: parsed.number_type(&phonenumber::metadata::DATABASE),
    }
}

/// The region of a calling code a national number belongs to (the validator's
/// `source_for`): the code's only region, or the first of its regions whose leading digits
/// start the number, or, for a region without leading digits, whose types include it.
fn source_for<'p>(code: &'p CallingCode, national: &str) -> Option<&'p RegionPatterns> {
    match code {
        CallingCode::Unassigned => None,
        CallingCode::Single(region) => Some(region),
        CallingCode::Shared(regions) => {
            regions.iter().find(|region| match &region.leading_digits {
                Some(leading) => leading.find(national).is_some_and(|m| m.start() == 0),
                None => number_type(region, national) != Type::Unknown,
            })
        }
    }
}

/// The validator's `number_type`: the general pattern first, then the special types in
/// its order, then fixed line and mobile (one pattern for both, or both matching, is
/// `FixedLineOrMobile`).
fn number_type(region: &RegionPatterns, value: &str) -> Type {
    if !matches(region.general.as_ref(), value) {
        return Type::Unknown;
    }
    let special = [
        (&region.premium_rate, Type::PremiumRate),
        (&region.toll_free, Type::TollFree),
        (&region.shared_cost, Type::SharedCost),
        (&region.voip, Type::Voip),
        (&region.personal_number, Type::PersonalNumber),
        (&region.pager, Type::Pager),
        (&region.uan, Type::Uan),
        (&region.voicemail, Type::Voicemail),
    ];
    for (pattern, kind) in special {
        if matches(pattern.as_ref(), value) {
            return kind;
        }
    }
    if let Some(fixed_line) = region
        .fixed_line
        .as_ref()
        .filter(|p| matches(Some(p), value))
    {
        let same_pattern = region
            .mobile
            .as_ref()
            .is_some_and(|mobile| mobile.source == fixed_line.source);
        if same_pattern || matches(region.mobile.as_ref(), value) {
            return Type::FixedLineOrMobile;
        }
        return Type::FixedLine;
    }
    if matches(region.mobile.as_ref(), value) {
        return Type::Mobile;
    }
    Type::Unknown
}

/// A descriptor's `is_match`: a possible length (when it lists any), and a match of its
/// pattern that starts at the first digit.
fn matches(pattern: Option<&Pattern>, value: &str) -> bool {
    pattern.is_some_and(|pattern| {
        let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
        (pattern.possible_length.is_empty() || pattern.possible_length.contains(&length))
            && pattern.regex.find(value).is_some_and(|m| m.start() == 0)
    })
}

#[cfg(test)]
mod tests {
    use phonenumber::metadata::DATABASE;

    use super::*;

    /// Every region's example numbers of every type (short codes and emergency numbers
    /// too), and variations of each (each digit
    /// position changed, a digit dropped or added, leading zeros), parsed by `phonenumber`
    /// and classified both ways: the answers agree.
    #[test]
    fn agrees_with_phonenumber_for_every_region() {
        let mut compared = 0;
        let mut kinds = std::collections::HashSet::new();
        for code in 1..=999u16 {
            for meta in DATABASE.by_code(&code).unwrap_or_default() {
                let descriptors = meta.descriptors();
                let examples = crate::phone::patterns::TYPES
                    .into_iter()
                    .filter_map(|kind| descriptors.get(kind)?.example());
                for example in examples {
                    for national in variations(example) {
                        for input in [format!("+{code}{national}"), format!("+{code}0{national}")] {
                            let Ok(parsed) = phonenumber::parse(None, &input) else {
                                continue;
                            };
                            let ours = classify(&parsed);
                            assert_eq!(ours, as_phonenumber_does(&parsed), "{input}");
                            kinds.insert(format!("{:?}/{}", ours.kind, ours.valid));
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 50_000, "{compared} compared");
        // Valid and invalid numbers of many types were among them.
        assert!(kinds.len() >= 12, "{kinds:?}");
    }

    /// `example` with each digit replaced by each other digit, each digit dropped, and a
    /// digit added at the end.
    fn variations(example: &str) -> Vec<String> {
        let digits: Vec<char> = example.chars().collect();
        let mut out = vec![example.to_owned(), format!("{example}5")];
        for at in 0..digits.len() {
            let mut dropped = digits.clone();
            dropped.remove(at);
            out.push(dropped.into_iter().collect());
            for digit in '0'..='9' {
                if digit != digits[at] {
                    let mut changed = digits.clone();
                    changed[at] = digit;
                    out.push(changed.into_iter().collect());
                }
            }
        }
        out
    }
}
