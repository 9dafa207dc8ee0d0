//! The number metadata's patterns, compiled once for the whole process.
//!
//! `phonenumber` compiles each metadata pattern on first use into one process-wide LRU
//! cache of 100, with Unicode classes. A parse touches a dozen or more patterns of the
//! number's country, so numbers from more than a few countries evict and recompile
//! patterns on nearly every parse, under the cache's one lock: 1.4 ms a parse for numbers
//! of every region in turn (`cargo bench --bench phone`), where one country's took 6 µs.
//! A service sending worldwide would spend its CPU compiling regexes, and anyone could
//! make it do so by sending numbers of many countries.
//!
//! The first parse builds [`Patterns`]: every pattern of the metadata (about 2,000)
//! compiled once for ASCII input, saved into that cache (made large enough never to
//! evict) for the parser, and kept per region for this crate's own classification
//! (`classify.rs`), which so needs no cache lookup at all. This crate passes the parser
//! only ASCII digits, `+`, spaces and the punctuation `normalize_input` keeps, and on
//! ASCII text a pattern matches the same with Unicode classes or without; without them
//! the compiled patterns take about a seventh of the memory (22 MB for all, against
//! 150 MB) and compile in about 160 ms, once.

use std::collections::HashMap;
use std::sync::OnceLock;

use phonenumber::metadata::{DATABASE, Descriptor};
use phonenumber::{Metadata, Type};
use regex::Regex;

/// Room for patterns the parser makes beside the metadata's (its `00[39]` prefix), so
/// none of the metadata's is ever evicted.
const SPARE_ENTRIES: usize = 256;

/// Every descriptor a region may have.
pub(crate) const TYPES: [Type; 16] = [
    Type::Unknown,
    Type::FixedLine,
    Type::Mobile,
    Type::TollFree,
    Type::PremiumRate,
    Type::SharedCost,
    Type::PersonalNumber,
    Type::Voip,
    Type::Pager,
    Type::Uan,
    Type::Emergency,
    Type::Voicemail,
    Type::ShortCode,
    Type::StandardRate,
    Type::Carrier,
    Type::NoInternational,
];

/// The highest country calling code (ITU codes have at most three digits).
const MAX_CALLING_CODE: u16 = 999;

/// Every metadata entry's compiled patterns, and the entries of each calling code.
pub(crate) struct Patterns {
    /// Indexed by calling code: what `phonenumber`'s region lookup would find.
    codes: Vec<CallingCode>,
}

/// The regions of one calling code, as `phonenumber`'s validator looks them up.
pub(crate) enum CallingCode {
    /// No region has this code (or its one region's id is not one the parser knows).
    Unassigned,
    /// One region, or one non-geographic entity.
    Single(Box<RegionPatterns>),
    /// Several regions, in the metadata's order, told apart by leading digits or type.
    Shared(Vec<RegionPatterns>),
}

/// One metadata entry and its compiled patterns.
pub(crate) struct RegionPatterns {
    pub(crate) meta: &'static Metadata,
    pub(crate) leading_digits: Option<Regex>,
    pub(crate) general: Option<Pattern>,
    pub(crate) premium_rate: Option<Pattern>,
    pub(crate) toll_free: Option<Pattern>,
    pub(crate) shared_cost: Option<Pattern>,
    pub(crate) voip: Option<Pattern>,
    pub(crate) personal_number: Option<Pattern>,
    pub(crate) pager: Option<Pattern>,
    pub(crate) uan: Option<Pattern>,
    pub(crate) voicemail: Option<Pattern>,
    pub(crate) fixed_line: Option<Pattern>,
    pub(crate) mobile: Option<Pattern>,
}

/// A descriptor's national-number pattern and the lengths it allows.
pub(crate) struct Pattern {
    pub(crate) source: &'static str,
    pub(crate) regex: Regex,
    pub(crate) possible_length: &'static [u16],
}

static PATTERNS: OnceLock<Option<Patterns>> = OnceLock::new();

/// The compiled patterns, built by the first call in the process; `None` if a metadata
/// pattern does not compile for ASCII input (the parser's own answers are used then).
pub(crate) fn patterns() -> Option<&'static Patterns> {
    PATTERNS.get_or_init(Patterns::build).as_ref()
}

impl Patterns {
    /// The regions `code` may belong to.
    pub(crate) fn calling_code(&self, code: u16) -> &CallingCode {
        self.codes
            .get(usize::from(code))
            .unwrap_or(&CallingCode::Unassigned)
    }

    fn build() -> Option<Self> {
        let entries = entries();
        let mut compiled: HashMap<&'static str, Regex> = HashMap::new();
        for source in entries.iter().flat_map(|meta| sources(meta)) {
            if !compiled.contains_key(source) {
                compiled.insert(source, compile(source)?);
            }
        }
        fill_parser_cache(&compiled);
        let region = |meta: &'static Metadata| -> RegionPatterns {
            let descriptors = meta.descriptors();
            let pattern = |kind: Type| {
                let descriptor: &'static Descriptor = descriptors.get(kind)?;
                let source = descriptor.national_number().as_str();
                Some(Pattern {
                    source,
                    regex: compiled.get(source)?.clone(),
                    possible_length: descriptor.possible_length(),
                })
            };
            RegionPatterns {
                meta,
                leading_digits: meta
                    .leading_digits()
                    .and_then(|regex| compiled.get(regex.as_str()).cloned()),
                general: pattern(Type::Unknown),
                premium_rate: pattern(Type::PremiumRate),
                toll_free: pattern(Type::TollFree),
                shared_cost: pattern(Type::SharedCost),
                voip: pattern(Type::Voip),
                personal_number: pattern(Type::PersonalNumber),
                pager: pattern(Type::Pager),
                uan: pattern(Type::Uan),
                voicemail: pattern(Type::Voicemail),
                fixed_line: pattern(Type::FixedLine),
                mobile: pattern(Type::Mobile),
            }
        };
        // What `phonenumber`'s validator does with a calling code: its one region by id
        // (or, for "001", the code's first entry), or each of its regions by id.
        let codes = (0..=MAX_CALLING_CODE)
            .map(|code| {
                let Some(regions) = DATABASE.region(&code) else {
                    return CallingCode::Unassigned;
                };
                if let [only] = regions[..] {
                    let meta = if only == "001" {
                        DATABASE.by_code(&code).and_then(|m| m.into_iter().next())
                    } else {
                        only.parse::<phonenumber::country::Id>()
                            .ok()
                            .and_then(|id| DATABASE.by_id(id.as_ref()))
                    };
                    return meta.map_or(CallingCode::Unassigned, |meta| {
                        CallingCode::Single(Box::new(region(meta)))
                    });
                }
                CallingCode::Shared(
                    regions
                        .iter()
                        .filter_map(|id| DATABASE.by_id(*id))
                        .map(region)
                        .collect(),
                )
            })
            .collect();
        Some(Self { codes })
    }
}

/// Compiles a metadata pattern as the parser does (whitespace ignored), without Unicode
/// classes.
fn compile(source: &str) -> Option<Regex> {
    regex::RegexBuilder::new(source)
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .ok()
}

/// Saves every pattern into the parser's own cache, made large enough to keep them all.
fn fill_parser_cache(compiled: &HashMap<&'static str, Regex>) {
    let cache = DATABASE.cache();
    // A poisoned lock means a parse panicked while holding it; the parser then compiles
    // on demand, as it would without this.
    let Ok(mut cache) = cache.lock() else {
        return;
    };
    cache.set_capacity(compiled.len() + SPARE_ENTRIES);
    for regex in compiled.values() {
        cache.save(regex.clone());
    }
}

/// Every metadata entry: each region by id, and every entry of every calling code (the
/// non-geographic entities share the id "001", so only the codes reach them all).
fn entries() -> Vec<&'static Metadata> {
    let database: &'static phonenumber::metadata::Database = &DATABASE;
    let mut entries: Vec<&'static Metadata> = database.iter().collect();
    for code in 0..=MAX_CALLING_CODE {
        entries.extend(database.by_code(&code).unwrap_or_default());
    }
    entries.sort_by_key(|meta| std::ptr::from_ref(*meta) as usize);
    entries.dedup_by_key(|meta| std::ptr::from_ref(*meta) as usize);
    entries
}

/// The source of every pattern of one metadata entry.
fn sources(meta: &'static Metadata) -> impl Iterator<Item = &'static str> {
    let descriptors = meta.descriptors();
    let prefixes = [
        meta.international_prefix(),
        meta.national_prefix_for_parsing(),
        meta.leading_digits(),
    ];
    TYPES
        .into_iter()
        .filter_map(move |kind| descriptors.get(kind))
        .map(|descriptor| descriptor.national_number().as_str())
        .chain(prefixes.into_iter().flatten().map(|regex| regex.as_str()))
        .chain(
            meta.formats()
                .iter()
                .chain(meta.international_formats())
                .flat_map(|format| {
                    std::iter::once(format.pattern().as_str())
                        .chain(format.leading_digits().iter().map(|regex| regex.as_str()))
                }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_is_compiled_once_and_none_is_evicted() {
        crate::PhoneNumber::warm_up();
        assert!(
            PATTERNS.get().is_some_and(Option::is_some),
            "warm_up compiled every pattern for ASCII input"
        );
        let distinct: std::collections::HashSet<&str> =
            entries().into_iter().flat_map(sources).collect();
        assert!(distinct.len() > 1_500, "{} patterns", distinct.len());
        {
            let cache = DATABASE.cache();
            let mut cache = cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            assert!(distinct.iter().all(|source| cache.contains_key(*source)));
        }
        // Numbers of every region in turn (each region's example mobile number) leave
        // every pattern in the parser's cache: nothing was evicted to make room.
        for meta in entries() {
            let example = meta.descriptors().mobile().and_then(|d| d.example());
            if let Some(example) = example {
                let _ = crate::PhoneNumber::parse(&format!("+{}{example}", meta.country_code()));
            }
        }
        let cache = DATABASE.cache();
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert_eq!(cache.capacity(), distinct.len() + SPARE_ENTRIES);
        for source in distinct {
            assert!(cache.contains_key(source), "{source} was evicted");
        }
    }
}
