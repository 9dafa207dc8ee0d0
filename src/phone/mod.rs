//! Phone numbers: parsing, validation, E.164 normalisation and masking.
//!
//! A [`PhoneNumber`] is always valid for its region (per libphonenumber's metadata, through
//! the `phonenumber` crate) and always prints masked. The full number is only reachable
//! through [`PhoneNumber::e164`], so it cannot reach a log line by accident.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use phonenumber::country::Id;
use thiserror::Error;

mod classify;
mod patterns;

/// Longest input we hand to the parser. Real numbers with separators fit comfortably.
const MAX_INPUT_CHARS: usize = 64;
/// E.164 allows at most 15 digits; national formats may add a trunk or IDD prefix.
const MAX_DIGITS: usize = 17;
/// The most digits an E.164 number has (ITU-T E.164, section 6).
const E164_MAX_DIGITS: usize = 15;
/// No valid number anywhere has fewer digits than this.
const MIN_DIGITS: usize = 3;

/// Why a phone number was refused. The message never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParsePhoneError {
    /// The input was empty or only white space.
    #[error("phone number is empty")]
    Empty,
    /// The input contained letters or symbols other than digits, `+` and separators.
    #[error("phone number contains a character that is not a digit, '+' or a separator")]
    InvalidCharacter,
    /// Too few digits to be a phone number.
    #[error("phone number is too short")]
    TooShort,
    /// More digits (or characters) than any phone number has.
    #[error("phone number is too long")]
    TooLong,
    /// A national-format number was given without a default region to read it in.
    #[error("phone number is not in international (+) format and no default region was given")]
    MissingRegion,
    /// The default region is not an ISO 3166 code libphonenumber knows.
    #[error("unknown region code (expected an ISO 3166 alpha-2 code such as \"JP\")")]
    UnknownRegion,
    /// The number's country calling code is not assigned.
    #[error("unknown country calling code")]
    UnknownCallingCode,
    /// The digits do not form a valid number in the region they belong to.
    #[error("phone number is not valid for region {region}")]
    InvalidForRegion {
        /// ISO region, or `+<calling code>` when the number names no region.
        region: String,
    },
}

/// An ISO 3166-1 alpha-2 region code such as `JP` or `US`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region([u8; 2]);

impl Region {
    /// Parses an ISO 3166-1 alpha-2 code (case-insensitive) that libphonenumber knows.
    pub fn new(code: &str) -> Result<Self, ParsePhoneError> {
        let upper = code.trim().to_ascii_uppercase();
        let bytes: [u8; 2] = upper
            .as_bytes()
            .try_into()
            .map_err(|_| ParsePhoneError::UnknownRegion)?;
        Id::from_str(&upper).map_err(|_| ParsePhoneError::UnknownRegion)?;
        Ok(Self(bytes))
    }

    /// The two-letter code, upper case.
    pub fn as_str(&self) -> &str {
        // Only ever built from two ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    fn to_id(self) -> Option<Id> {
        Id::from_str(self.as_str()).ok()
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = ParsePhoneError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::new(code)
    }
}

/// What kind of line a number is, from libphonenumber's metadata.
///
/// Routing and destination policy use it: premium-rate numbers are a toll-fraud vector,
/// fixed lines cannot receive SMS but can take a voice call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NumberType {
    /// A mobile number.
    Mobile,
    /// A fixed (landline) number.
    FixedLine,
    /// The region's numbering plan cannot tell mobile from fixed (e.g. the US).
    FixedLineOrMobile,
    /// A freephone number.
    TollFree,
    /// A premium-rate number.
    PremiumRate,
    /// A shared-cost number.
    SharedCost,
    /// Voice over IP.
    Voip,
    /// A personal number that forwards elsewhere.
    PersonalNumber,
    /// A pager.
    Pager,
    /// A universal access (company) number.
    Uan,
    /// Voicemail access.
    Voicemail,
    /// Valid but not one of the types above, or not classifiable.
    Unknown,
}

impl NumberType {
    fn from_metadata(kind: phonenumber::Type) -> Self {
        use phonenumber::Type as T;
        match kind {
            T::Mobile => Self::Mobile,
            T::FixedLine => Self::FixedLine,
            T::FixedLineOrMobile => Self::FixedLineOrMobile,
            T::TollFree => Self::TollFree,
            T::PremiumRate => Self::PremiumRate,
            T::SharedCost => Self::SharedCost,
            T::Voip => Self::Voip,
            T::PersonalNumber => Self::PersonalNumber,
            T::Pager => Self::Pager,
            T::Uan => Self::Uan,
            T::Voicemail => Self::Voicemail,
            _ => Self::Unknown,
        }
    }

    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::FixedLine => "fixed_line",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::Voip => "voip",
            Self::PersonalNumber => "personal_number",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated phone number in E.164 form.
///
/// `Debug` and `Display` print it masked (`+8190****5678`); call [`PhoneNumber::e164`]
/// where the full number is really needed (sending, storage).
///
/// ```
/// use phone_otp::{NumberType, PhoneNumber};
///
/// let number = PhoneNumber::parse_with_region("090-1234-5678", "JP")?;
/// assert_eq!(number.e164(), "+819012345678");
/// assert_eq!(number.to_string(), "+8190****5678");
/// assert_eq!(number.region().map(|r| r.to_string()).as_deref(), Some("JP"));
/// assert_eq!(number.calling_code(), 81);
/// assert_eq!(number.number_type(), NumberType::Mobile);
/// # Ok::<(), phone_otp::ParsePhoneError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    region: Option<Region>,
    calling_code: u16,
    number_type: NumberType,
}

impl PhoneNumber {
    /// Compiles the number metadata's patterns now, once per process (about 2,000 patterns:
    /// some 160 ms and 22 MB in a release build), rather than in the first parse. A
    /// server calls it at startup so its first request does not wait for it; later calls
    /// return at once.
    pub fn warm_up() {
        let _ = patterns::patterns();
    }

    /// Parses a number in international format (`+819012345678`, `+1 415 555 0123`).
    ///
    /// # Errors
    /// A [`ParsePhoneError`] saying what is wrong; national formats need
    /// [`PhoneNumber::parse_with_region`].
    pub fn parse(input: &str) -> Result<Self, ParsePhoneError> {
        Self::parse_inner(input, None)
    }

    /// Parses a number in international format, or in the national format of
    /// `default_region` (an ISO 3166 code such as `"JP"`).
    ///
    /// # Errors
    /// A [`ParsePhoneError`] saying what is wrong.
    pub fn parse_with_region(input: &str, default_region: &str) -> Result<Self, ParsePhoneError> {
        let region = Region::new(default_region)?;
        Self::parse_inner(input, Some(region))
    }

    fn parse_inner(input: &str, default_region: Option<Region>) -> Result<Self, ParsePhoneError> {
        let number = Self::parse_once(input, default_region)?;
        // The canonical form must read back as the same number: the metadata accepts some
        // inputs (national numbers with extra leading zeros, found by fuzzing) whose E.164
        // form it then calls invalid. Such a number is refused rather than stored, keyed
        // and sent in a form that does not name it.
        if number.e164 != input
            && Self::parse_once(&number.e164, None).ok().as_ref() != Some(&number)
        {
            return Err(ParsePhoneError::InvalidForRegion {
                region: region_label(number.region.or(default_region)),
            });
        }
        Ok(number)
    }

    fn parse_once(input: &str, default_region: Option<Region>) -> Result<Self, ParsePhoneError> {
        let normalized = normalize_input(input)?;
        let international = normalized.starts_with('+');
        if !international && default_region.is_none() {
            return Err(ParsePhoneError::MissingRegion);
        }
        // An international number names its own country: the default region must not
        // colour how it is read (with one, the parser applied that region's trunk prefix
        // to `+708773111632` and dropped a digit, found by fuzzing).
        let country = if international {
            None
        } else {
            default_region.and_then(Region::to_id)
        };
        // The parser is third-party code over untrusted input (its metadata included): a
        // panic inside it must not take a login request down, so it becomes an ordinary
        // refusal.
        let (parsed, classification) = catch_unwind(AssertUnwindSafe(|| {
            // Compiles the metadata's patterns into the parser's cache on the first call.
            let _ = patterns::patterns();
            let parsed = phonenumber::parse(country, &normalized)?;
            // Region, validity and type, each found once (see `classify.rs`).
            let classification = classify::classify(&parsed);
            Ok((parsed, classification))
        }))
        .map_err(|_| ParsePhoneError::InvalidForRegion {
            region: region_label(default_region),
        })?
        .map_err(map_parse_error)?;

        if parsed.extension().is_some() {
            return Err(ParsePhoneError::InvalidCharacter);
        }
        let region = classification
            .region
            .and_then(|id| Region::new(id.as_ref()).ok());
        if !classification.valid {
            // Without a known region, name the calling code instead.
            let label = match region.or(default_region) {
                Some(region) => region.as_str().to_owned(),
                None => format!("+{}", parsed.country().code()),
            };
            return Err(ParsePhoneError::InvalidForRegion { region: label });
        }
        // E.164 is the calling code and the national number as parsed (leading zeros
        // kept). Written here: the crate's E.164 formatter also searches the region's
        // formats with their regexes first, a third of a parse, to use none of them.
        let e164 = format!("+{}{}", parsed.country().code(), parsed.national());
        // E.164 allows 15 digits. The metadata accepts some longer national numbers (a
        // Japanese 0800 number with 15 digits after the trunk prefix), which then fail to
        // parse back from their own E.164 form: found by fuzzing.
        if e164.len() > E164_MAX_DIGITS + 1 {
            return Err(ParsePhoneError::TooLong);
        }
        let number_type = NumberType::from_metadata(classification.kind);
        Ok(Self {
            e164,
            region,
            calling_code: parsed.country().code(),
            number_type,
        })
    }

    /// The full number in E.164 form (`+819012345678`). Avoid logging it.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The E.164 digits without the `+`.
    pub fn e164_digits(&self) -> &str {
        self.e164.trim_start_matches('+')
    }

    /// The ISO region the number belongs to, if it belongs to one (non-geographic numbers
    /// such as `+800` do not).
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// The country calling code (`81` for Japan).
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    /// The national significant number: the E.164 digits after the calling code.
    pub fn national_number(&self) -> &str {
        let code_len = self.calling_code.to_string().len();
        self.e164_digits().get(code_len..).unwrap_or("")
    }

    /// What kind of line this is.
    pub fn number_type(&self) -> NumberType {
        self.number_type
    }

    /// The masked form used in logs and API responses (`+8190****5678`).
    pub fn masked(&self) -> String {
        mask_digits(self.e164_digits(), self.calling_code.to_string().len())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneNumber")
            .field("masked", &self.masked())
            .field("region", &self.region)
            .field("number_type", &self.number_type)
            .finish()
    }
}

impl FromStr for PhoneNumber {
    type Err = ParsePhoneError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

/// Masks the middle of a number: calling code plus two digits, then `*`, then the last four.
fn mask_digits(digits: &str, calling_code_len: usize) -> String {
    let total = digits.len();
    let keep_tail = if total >= 10 { 4 } else { 2 };
    let keep_head = (calling_code_len + 2).min(total.saturating_sub(keep_tail + 4));
    let hidden = total - keep_head - keep_tail;
    let mut masked = String::with_capacity(total + 1);
    masked.push('+');
    masked.push_str(&digits[..keep_head]);
    masked.extend(std::iter::repeat_n('*', hidden));
    masked.push_str(&digits[total - keep_tail..]);
    masked
}

fn region_label(region: Option<Region>) -> String {
    region.map_or_else(|| "??".to_owned(), |r| r.as_str().to_owned())
}

/// Checks characters and length before the parser sees the input, and folds full-width
/// digits, plus and hyphen (common in Japanese input) to ASCII.
/// For the `phone_parse` fuzz target, not part of the API: panics if this crate's
/// classification of a parsed number (region, validity, type) differs from `phonenumber`'s
/// own answers, for `input` read internationally and in `default_region`.
#[doc(hidden)]
pub fn fuzz_classification_agrees(input: &str, default_region: &str) {
    let Ok(normalized) = normalize_input(input) else {
        return;
    };
    let country = Region::new(default_region).ok().and_then(Region::to_id);
    for country in [None, country] {
        // A panic inside the parser is its own bug, caught by `parse` in this crate.
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            phonenumber::parse(country, &normalized)
        }));
        if let Ok(Ok(parsed)) = parsed
            && let Ok(theirs) =
                catch_unwind(AssertUnwindSafe(|| classify::as_phonenumber_does(&parsed)))
        {
            // libFuzzer keeps the input; the message names no number.
            assert_eq!(
                classify::classify(&parsed),
                theirs,
                "classifications differ"
            );
        }
    }
}

fn normalize_input(input: &str) -> Result<String, ParsePhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ParsePhoneError::Empty);
    }
    if trimmed.chars().count() > MAX_INPUT_CHARS {
        return Err(ParsePhoneError::TooLong);
    }
    let mut normalized = String::with_capacity(trimmed.len());
    for ch in trimmed.chars() {
        let folded = match ch {
            '0'..='9' | '+' | ' ' | '-' | '(' | ')' | '.' | '/' => ch,
            '\u{FF10}'..='\u{FF19}' => {
                char::from(b'0' + u8::try_from(u32::from(ch) - 0xFF10).unwrap_or(0))
            }
            '\u{FF0B}' => '+',
            '\u{FF0D}' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2212}'
            | '\u{3000}' => ' ',
            _ => return Err(ParsePhoneError::InvalidCharacter),
        };
        normalized.push(folded);
    }
    if normalized.rfind('+').is_some_and(|at| at != 0) {
        return Err(ParsePhoneError::InvalidCharacter);
    }
    let digits = normalized.chars().filter(char::is_ascii_digit).count();
    if digits < MIN_DIGITS {
        return Err(ParsePhoneError::TooShort);
    }
    if digits > MAX_DIGITS {
        return Err(ParsePhoneError::TooLong);
    }
    Ok(normalized)
}

fn map_parse_error(error: phonenumber::ParseError) -> ParsePhoneError {
    use phonenumber::ParseError as P;
    match error {
        P::InvalidCountryCode => ParsePhoneError::UnknownCallingCode,
        P::TooLong => ParsePhoneError::TooLong,
        P::NoNumber | P::TooShortAfterIdd | P::TooShortNsn => ParsePhoneError::TooShort,
        P::MalformedInteger(_) => ParsePhoneError::InvalidCharacter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_code_prefix_and_last_four() {
        assert_eq!(mask_digits("819012345678", 2), "+8190****5678");
        assert_eq!(mask_digits("14155550123", 1), "+141****0123");
    }

    #[test]
    fn masks_of_short_numbers_still_hide_digits() {
        let masked = mask_digits("4930123", 2);
        assert!(masked.contains('*'), "{masked}");
        assert_eq!(masked.len(), 8);
    }
}
