//! Randomness: the one place in the crate that asks for random bytes.
//!
//! Everything comes from the operating system's CSPRNG (`getrandom`). If the OS cannot
//! provide randomness the caller gets an error instead of a weak code.

use thiserror::Error;

/// The operating system could not provide random bytes.
#[derive(Debug, Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError {
    #[source]
    source: Option<getrandom::Error>,
}

impl RandomError {
    /// For code paths that consume random bytes and cannot otherwise fail.
    pub(crate) fn internal() -> Self {
        Self { source: None }
    }
}

/// Fills `buffer` from the OS CSPRNG.
pub(crate) fn fill(buffer: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buffer).map_err(|source| RandomError {
        source: Some(source),
    })
}

/// `length` uniformly random decimal digits.
///
/// Rejection sampling: bytes 250..=255 are thrown away so each digit is `byte % 10` of a
/// byte uniform over 0..250, with no modulo bias.
pub(crate) fn digits(length: usize) -> Result<Vec<u8>, RandomError> {
    let mut digits = Vec::with_capacity(length);
    let mut pool = [0u8; 32];
    while digits.len() < length {
        fill(&mut pool)?;
        for &byte in &pool {
            if byte < 250 {
                digits.push(b'0' + byte % 10);
                if digits.len() == length {
                    break;
                }
            }
        }
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_have_the_requested_length_and_are_ascii_digits() -> Result<(), RandomError> {
        for length in [1, 6, 10, 40] {
            let code = digits(length)?;
            assert_eq!(code.len(), length);
            assert!(code.iter().all(u8::is_ascii_digit));
        }
        Ok(())
    }
}
