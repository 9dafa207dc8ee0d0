//! One-time code generation and input checks.

use secrecy::SecretString;

use crate::random::{self, RandomError};

/// Default code length: 6 digits, about 20 bits (NIST SP 800-63B 5.1.3.2).
pub const DEFAULT_CODE_LENGTH: usize = 6;
/// Shortest length the safe setter accepts.
pub const MIN_CODE_LENGTH: usize = 6;
/// Shortest length `danger_code_length` accepts.
pub const MIN_DANGER_CODE_LENGTH: usize = 4;
/// Longest code length.
pub const MAX_CODE_LENGTH: usize = 10;

/// A fresh code of `length` uniformly random digits.
pub(crate) fn generate(length: usize) -> Result<SecretString, RandomError> {
    let digits = zeroize::Zeroizing::new(random::digits(length)?);
    let text: String = digits.iter().map(|&digit| char::from(digit)).collect();
    Ok(SecretString::from(text))
}

/// Whether `input` could be a code at all (ASCII digits of a possible length). Anything else
/// is refused as a wrong attempt without hashing it, whatever its size.
#[inline]
pub(crate) fn is_well_formed(input: &str) -> bool {
    (MIN_DANGER_CODE_LENGTH..=MAX_CODE_LENGTH).contains(&input.len())
        && input.bytes().all(|byte| byte.is_ascii_digit())
}
