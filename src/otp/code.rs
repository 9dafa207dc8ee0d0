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

/// The longest typed input [`normalize`] looks at: a 10-digit code with a separator
/// between every digit and some white space around it.
const MAX_TYPED_CHARS: usize = 32;

/// A code as typed or pasted, folded to ASCII digits on the stack: full-width digits
/// (`１２３４５６`, as Japanese input methods type them) become ASCII, and white space
/// (spaces, tabs, line breaks, ideographic spaces) and hyphens or dashes (`123 456`,
/// `123-456`) are dropped. Returns
/// `None` for anything else, or for input too long to be a code, which then counts as a
/// wrong attempt like any malformed code.
pub(crate) fn normalize(input: &str) -> Option<TypedCode> {
    let mut code = TypedCode {
        digits: [0; MAX_CODE_LENGTH],
        len: 0,
    };
    for (index, ch) in input.chars().enumerate() {
        if index >= MAX_TYPED_CHARS {
            return None;
        }
        let digit = match ch {
            '0'..='9' => ch as u8,
            // FULLWIDTH DIGIT ZERO..NINE, their NFKC forms are '0'..'9'.
            '\u{FF10}'..='\u{FF19}' => b'0' + (u32::from(ch) - 0xFF10) as u8,
            ' '
            | '\t'
            | '\r'
            | '\n'
            | '\u{00A0}'
            | '\u{3000}'
            | '-'
            | '\u{2010}'..='\u{2015}'
            | '\u{2212}'
            | '\u{FF0D}'
            | '\u{30FC}' => continue,
            _ => return None,
        };
        *code.digits.get_mut(code.len)? = digit;
        code.len += 1;
    }
    (code.len >= MIN_DANGER_CODE_LENGTH).then_some(code)
}

/// ASCII digits of a typed code, on the stack.
pub(crate) struct TypedCode {
    digits: [u8; MAX_CODE_LENGTH],
    len: usize,
}

impl TypedCode {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

impl Drop for TypedCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.digits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(input: &str) -> Option<String> {
        normalize(input).map(|code| String::from_utf8_lossy(code.as_bytes()).into_owned())
    }

    #[test]
    fn typed_codes_fold_to_ascii_digits() {
        for typed in [
            "123456",
            "123 456",
            "123-456",
            " 12 34 56 ",
            "１２３４５６",
            "１２３　４５６",
            "123‐456",
        ] {
            assert_eq!(folded(typed).as_deref(), Some("123456"), "{typed:?}");
        }
        for refused in [
            "12a456",
            "123",
            "",
            "1234567890123",
            "١٢٣٤٥٦",
            &" ".repeat(40),
        ] {
            assert_eq!(folded(refused), None, "{refused:?}");
        }
    }
}
