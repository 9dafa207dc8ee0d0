//! A static secret a caller sends in a header (Okta's `authScheme`, a bearer token).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret held as its SHA-256: compared in constant time, and the comparison does not
/// leak the secret's length either (both sides are hashed to 32 bytes first).
#[derive(Clone)]
pub(crate) struct SharedSecret {
    digest: [u8; 32],
    len: usize,
}

impl SharedSecret {
    pub(crate) fn new(secret: SecretString) -> Self {
        let value = secret.expose_secret();
        Self {
            digest: Sha256::digest(value.as_bytes()).into(),
            len: value.chars().count(),
        }
    }

    /// The secret's length in characters, for the strength check at build time.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `presented` is the secret.
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(self.digest.ct_eq(&presented))
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_secret() {
        let secret = SharedSecret::new(SecretString::from("Basic dXNlcjpwYXNzd29yZA=="));
        assert!(secret.matches(b"Basic dXNlcjpwYXNzd29yZA=="));
        assert!(!secret.matches(b"Basic dXNlcjpwYXNzd29yZA="));
        assert!(!secret.matches(b""));
        assert!(!format!("{secret:?}").contains("dXNl"));
    }
}
