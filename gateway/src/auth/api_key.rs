//! API keys and personal access tokens: the string format, generation and the stored hash.
//!
//! `potp_sys_<id>_<secret><checksum>` for a system key, `potp_pat_...` for a personal
//! token. The id (12 base62 characters) is public: it names the key in logs, the audit
//! trail and the CLI. The secret (32 base62 characters, about 190 bits from the OS CSPRNG)
//! is shown once and stored only as its SHA-256. The checksum (6 base62 characters) is the
//! CRC32 of everything before it, as in GitHub's token format: a secret scanner can
//! recognise a leaked key offline, and a mistyped one is refused before any lookup.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of the public key id.
pub const KEY_ID_CHARS: usize = 12;
/// Characters of the secret part.
pub const SECRET_CHARS: usize = 32;
const CHECKSUM_CHARS: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whom a key belongs to: a calling system, or a person (whose tokens always expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `potp_sys_`: a calling system's key.
    System,
    /// `potp_pat_`: a person's access token.
    Personal,
}

impl KeyKind {
    /// The string prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::System => "potp_sys_",
            Self::Personal => "potp_pat_",
        }
    }

    /// `system` or `personal`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Personal => "personal",
        }
    }

    /// The inverse of [`KeyKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "system" => Some(Self::System),
            "personal" => Some(Self::Personal),
            _ => None,
        }
    }
}

/// Why a presented key string is not a key (decided without any lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// It does not start with `potp_sys_` or `potp_pat_`.
    #[error("not a phone-otp key")]
    Prefix,
    /// Wrong length or a character outside base62.
    #[error("malformed key")]
    Malformed,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("key checksum does not match")]
    Checksum,
}

/// A key as presented by a caller: its kind, public id and secret part.
pub struct PresentedKey {
    /// System key or personal token.
    pub kind: KeyKind,
    /// The public id.
    pub id: String,
    secret: SecretString,
}

impl PresentedKey {
    /// Parses and checks the checksum of `text`.
    ///
    /// # Errors
    /// A [`KeyFormatError`]: nothing needs to be looked up for such a string.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let (kind, rest) = if let Some(rest) = text.strip_prefix(KeyKind::System.prefix()) {
            (KeyKind::System, rest)
        } else if let Some(rest) = text.strip_prefix(KeyKind::Personal.prefix()) {
            (KeyKind::Personal, rest)
        } else {
            return Err(KeyFormatError::Prefix);
        };
        let (id, tail) = rest.split_once('_').ok_or(KeyFormatError::Malformed)?;
        if id.len() != KEY_ID_CHARS
            || tail.len() != SECRET_CHARS + CHECKSUM_CHARS
            || !id
                .bytes()
                .chain(tail.bytes())
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(KeyFormatError::Malformed);
        }
        let (secret, checksum) = tail.split_at(SECRET_CHARS);
        let body = &text[..text.len() - CHECKSUM_CHARS];
        if checksum != encode_checksum(body) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(Self {
            kind,
            id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        })
    }

    /// Whether the secret part hashes to `stored` (constant time).
    pub fn matches(&self, stored: &SecretHash) -> bool {
        let hash = SecretHash::of(self.secret.expose_secret());
        bool::from(hash.0.ct_eq(&stored.0))
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a key's secret part: all that is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        phone_otp_hex(&self.0)
    }

    /// Reads the stored hex form.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A freshly made key: the full string (shown once) and what to store.
pub struct NewKey {
    /// The key string to hand to its owner, once.
    pub token: SecretString,
    /// The public id.
    pub id: String,
    /// The hash to store.
    pub hash: SecretHash,
}

impl NewKey {
    /// Generates a key of `kind` from the OS CSPRNG.
    ///
    /// # Errors
    /// If the OS random source fails.
    pub fn generate(kind: KeyKind) -> Result<Self, getrandom::Error> {
        let id = random_base62(KEY_ID_CHARS)?;
        let secret = random_base62(SECRET_CHARS)?;
        let body = format!("{}{id}_{secret}", kind.prefix());
        let token = format!("{body}{}", encode_checksum(&body));
        Ok(Self {
            token: SecretString::from(token),
            hash: SecretHash::of(&secret),
            id,
        })
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `len` uniform base62 characters (rejection sampling: no modulo bias).
fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buffer)?;
        for byte in buffer {
            // 248 = 4 * 62: bytes at or above it would favour the first characters.
            if byte < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    Ok(out)
}

/// The CRC32 of `body` in 6 base62 characters (62^6 > 2^32).
fn encode_checksum(body: &str) -> String {
    let mut value = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_CHARS];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(value % 62).unwrap_or(0)];
        value /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

fn phone_otp_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_match_their_hash() {
        for kind in [KeyKind::System, KeyKind::Personal] {
            let key = NewKey::generate(kind).unwrap();
            let token = key.token.expose_secret();
            assert!(token.starts_with(kind.prefix()));
            assert_eq!(
                token.len(),
                9 + KEY_ID_CHARS + 1 + SECRET_CHARS + CHECKSUM_CHARS
            );
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            );
            let presented = PresentedKey::parse(token).unwrap();
            assert_eq!(presented.kind, kind);
            assert_eq!(presented.id, key.id);
            assert!(presented.matches(&key.hash));
            let other = NewKey::generate(kind).unwrap();
            assert!(!presented.matches(&other.hash));
            assert_eq!(
                SecretHash::from_hex(&key.hash.to_hex()),
                Some(key.hash.clone())
            );
            assert!(!format!("{presented:?}{key:?}").contains(&token[22..40]));
        }
    }

    #[test]
    fn every_single_character_typo_fails_the_checksum_or_the_format() {
        let key = NewKey::generate(KeyKind::System).unwrap();
        let token = key.token.expose_secret().to_owned();
        for i in 9..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            if typo == token {
                continue;
            }
            assert!(PresentedKey::parse(&typo).is_err(), "typo at {i} accepted");
        }
        assert_eq!(
            PresentedKey::parse("ghp_abc").err(),
            Some(KeyFormatError::Prefix)
        );
        assert_eq!(
            PresentedKey::parse(&token[..token.len() - 1]).err(),
            Some(KeyFormatError::Malformed)
        );
    }

    #[test]
    fn ids_and_secrets_are_uniform_base62() {
        // Every character appears, and none far more often than the others.
        let mut counts = [0u32; 62];
        for _ in 0..200 {
            for b in random_base62(62).unwrap().bytes() {
                let index = BASE62.iter().position(|c| *c == b).unwrap();
                counts[index] += 1;
            }
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 120 && *max < 290, "{min}..{max}");
    }
}
