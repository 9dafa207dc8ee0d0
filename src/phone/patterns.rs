//! The number metadata's patterns, compiled once for the whole process.
//!
//! `phonenumber` compiles each metadata pattern on first use into one process-wide LRU
//! cache of 100, with Unicode classes. A parse touches a dozen or more patterns of the
//! number's country, so numbers from more than a few countries evict and recompile
//! patterns on nearly every parse, under the cache's one lock: 1.7 ms a parse for numbers
//! of every region in turn (`cargo bench --bench phone`), where one country's take 6 µs.
//! A service sending worldwide would spend its CPU compiling regexes, and anyone could
//! make it do so by sending numbers of many countries.
//!
//! [`ensure_compiled`] fills that cache once with every pattern of the metadata (about
//! 2,000), compiled for ASCII input, and makes it large enough never to evict. This crate
//! passes the parser only ASCII digits, `+`, spaces and the punctuation
//! `normalize_input` keeps, and on ASCII text a pattern matches the same with Unicode
//! classes or without; without them the compiled patterns take about a seventh of the
//! memory (22 MB for all, against 150 MB) and compile in about 160 ms, once.

use std::sync::Once;

use phonenumber::Type;
use phonenumber::metadata::DATABASE;

/// Room for patterns the parser makes beside the metadata's (its `00[39]` prefix), so
/// none of the metadata's is ever evicted.
const SPARE_ENTRIES: usize = 256;

/// Every descriptor a region may have.
const TYPES: [Type; 16] = [
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

static COMPILED: Once = Once::new();

/// Compiles every metadata pattern into the parser's cache, the first time it is called
/// in the process; later calls return at once.
pub(crate) fn ensure_compiled() {
    COMPILED.call_once(|| {
        let sources = sources();
        let cache = DATABASE.cache();
        // A poisoned lock means a parse panicked while holding it; the parser then
        // compiles on demand, as it would without this.
        let Ok(mut cache) = cache.lock() else {
            return;
        };
        cache.set_capacity(sources.len() + SPARE_ENTRIES);
        for source in &sources {
            // The parser's own options (whitespace ignored), without Unicode classes. A
            // pattern that does not compile so is left for the parser to compile itself.
            if let Ok(regex) = regex::RegexBuilder::new(source)
                .ignore_whitespace(true)
                .unicode(false)
                .build()
            {
                cache.save(regex);
            }
        }
    });
}

/// The source of every pattern in the metadata, each once.
fn sources() -> Vec<&'static str> {
    let mut sources = Vec::with_capacity(2_400);
    for meta in DATABASE.iter() {
        let descriptors = meta.descriptors();
        for kind in TYPES {
            if let Some(descriptor) = descriptors.get(kind) {
                sources.push(descriptor.national_number().as_str());
            }
        }
        let prefixes = [
            meta.international_prefix(),
            meta.national_prefix_for_parsing(),
            meta.leading_digits(),
        ];
        sources.extend(prefixes.into_iter().flatten().map(|regex| regex.as_str()));
        for format in meta.formats().iter().chain(meta.international_formats()) {
            sources.push(format.pattern().as_str());
            sources.extend(format.leading_digits().iter().map(|regex| regex.as_str()));
        }
    }
    sources.sort_unstable();
    sources.dedup();
    sources
}

/// Patterns compiled into the cache, and its capacity.
#[cfg(test)]
pub(crate) fn cache_state() -> (usize, usize) {
    let cache = DATABASE.cache();
    let cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (cache.len(), cache.capacity())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_is_compiled_once_and_none_is_evicted() {
        ensure_compiled();
        let patterns = sources().len();
        assert!(patterns > 1_500, "{patterns} patterns");
        let (held, capacity) = cache_state();
        assert!(held >= patterns, "{held} of {patterns}");
        assert_eq!(capacity, patterns + SPARE_ENTRIES);
        // Numbers of every region in turn (each region's example mobile number) leave
        // every pattern in place: nothing was evicted to make room.
        for meta in DATABASE.iter() {
            let example = meta.descriptors().mobile().and_then(|d| d.example());
            if let Some(example) = example {
                let _ = crate::PhoneNumber::parse(&format!("+{}{example}", meta.country_code()));
            }
        }
        let (after, _) = cache_state();
        assert!(after >= patterns && after <= capacity, "{after}");
        let cache = DATABASE.cache();
        let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for source in sources() {
            assert!(cache.contains_key(source), "{source} was evicted");
        }
    }
}
