//! TOTP secrets and their encryption at rest. A verifier must recompute codes, so a
//! secret cannot be hashed like an SMS code: it is sealed with XChaCha20-Poly1305 under a
//! key of a [`TotpKeys`] ring, with a random nonce and the subject as associated data (a
//! sealed secret copied to another user's record does not open). The ring has ids, so a
//! new primary key seals from now on and older keys still open; [`TotpKeys::open`] says
//! when a secret should be sealed again under the primary (rotation on next use).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroizing;

use crate::random::RandomError;

/// Bytes of a new secret (160 bits, RFC 4226's recommendation and what apps expect).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Bytes of a sealing key.
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const AD_DOMAIN: &[u8] = b"phone-otp/v1/totp-secret\0";

/// A TOTP secret. Wiped on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// 20 fresh bytes from the operating system's CSPRNG.
    ///
    /// # Errors
    /// If the random source fails.
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = Zeroizing::new(vec![0u8; TOTP_SECRET_BYTES]);
        crate::random::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A secret from known bytes (tests, imports from another system).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The raw bytes, to compute codes or show once at enrollment.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// A secret as a store keeps it: key id, nonce, ciphertext and tag. `Debug` shows its
/// length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotpSecret(Vec<u8>);

impl SealedTotpSecret {
    /// Rebuilds a sealed secret from the bytes a store kept.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> Option<u8> {
        self.0.first().copied()
    }
}

impl fmt::Debug for SealedTotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedTotpSecret({} bytes)", self.0.len())
    }
}

/// A sealing key that is too short, or an id used twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpKeyError {
    /// Keys are 32 bytes.
    #[error("a TOTP sealing key must be 32 bytes, got {0}")]
    Length(usize),
    /// Each key needs its own id.
    #[error("key id {0} is already in the ring")]
    DuplicateId(u8),
}

/// The keys that seal TOTP secrets: a primary that seals, and older ones that still open.
/// Separate from the HMAC keys of the SMS codes (another secret, rotated on its own).
/// `Debug` never shows key material.
#[derive(Clone)]
pub struct TotpKeys {
    /// Newest (the primary) first.
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl fmt::Debug for TotpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("TotpKeys").field("ids", &ids).finish()
    }
}

fn cipher(secret: &SecretSlice<u8>) -> Result<XChaCha20Poly1305, TotpKeyError> {
    let bytes = secret.expose_secret();
    if bytes.len() != KEY_BYTES {
        return Err(TotpKeyError::Length(bytes.len()));
    }
    Ok(XChaCha20Poly1305::new(Key::from_slice(bytes)))
}

fn associated_data(subject: &str) -> Vec<u8> {
    [AD_DOMAIN, subject.as_bytes()].concat()
}

impl TotpKeys {
    /// A ring whose primary key is `secret` (32 bytes), named `id`.
    ///
    /// # Errors
    /// A key that is not 32 bytes.
    pub fn new(id: u8, secret: &SecretSlice<u8>) -> Result<Self, TotpKeyError> {
        Ok(Self {
            keys: vec![(id, cipher(secret)?)],
        })
    }

    /// Adds an older key that still opens secrets sealed under it.
    ///
    /// # Errors
    /// A key that is not 32 bytes, or an id already in the ring.
    pub fn with_older(mut self, id: u8, secret: &SecretSlice<u8>) -> Result<Self, TotpKeyError> {
        if self.keys.iter().any(|(existing, _)| *existing == id) {
            return Err(TotpKeyError::DuplicateId(id));
        }
        self.keys.push((id, cipher(secret)?));
        Ok(self)
    }

    /// Seals `secret` for `subject` under the primary key.
    ///
    /// # Errors
    /// If the random source fails (for the nonce).
    pub fn seal(
        &self,
        subject: &str,
        secret: &TotpSecret,
    ) -> Result<SealedTotpSecret, RandomError> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        crate::random::fill(&mut nonce)?;
        let aad = associated_data(subject);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret.expose(),
                    aad: &aad,
                },
            )
            .map_err(|_| RandomError::internal())?;
        let mut bytes = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        bytes.push(*id);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(SealedTotpSecret(bytes))
    }

    /// The secret `sealed` holds, if a key of the ring sealed it for `subject` and it is
    /// intact, and whether it should be sealed again under the primary key.
    pub fn open(&self, subject: &str, sealed: &SealedTotpSecret) -> Option<(TotpSecret, bool)> {
        let id = sealed.key_id()?;
        let (_, cipher) = self.keys.iter().find(|(key, _)| *key == id)?;
        let nonce: [u8; NONCE_BYTES] = sealed.0.get(1..1 + NONCE_BYTES)?.try_into().ok()?;
        let aad = associated_data(subject);
        let opened = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed.0.get(1 + NONCE_BYTES..)?,
                    aad: &aad,
                },
            )
            .ok()?;
        let stale = id != self.keys[0].0;
        Some((TotpSecret(Zeroizing::new(opened)), stale))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretSlice<u8> {
        SecretSlice::from(vec![byte; 32])
    }

    #[test]
    fn sealed_secrets_open_only_for_their_subject_key_and_bytes() {
        let ring = TotpKeys::new(1, &key(1)).unwrap();
        let secret = TotpSecret::generate().unwrap();
        let sealed = ring.seal("user-1", &secret).unwrap();
        let (opened, stale) = ring.open("user-1", &sealed).unwrap();
        assert_eq!((opened, stale), (secret.clone(), false));
        // Another user's record, another ring, a flipped bit: nothing.
        assert!(ring.open("user-2", &sealed).is_none());
        assert!(
            TotpKeys::new(1, &key(2))
                .unwrap()
                .open("user-1", &sealed)
                .is_none()
        );
        let mut tampered = sealed.as_bytes().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            ring.open("user-1", &SealedTotpSecret::from_bytes(tampered))
                .is_none()
        );
        // Two seals of one secret differ (random nonces).
        assert_ne!(ring.seal("user-1", &secret).unwrap(), sealed);
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
        assert!(!format!("{sealed:?}").contains(&format!("{:?}", secret.expose())));
    }

    #[test]
    fn rotation_opens_old_secrets_and_asks_for_a_reseal() {
        let old = TotpKeys::new(1, &key(1)).unwrap();
        let secret = TotpSecret::generate().unwrap();
        let sealed = old.seal("u", &secret).unwrap();
        let rotated = TotpKeys::new(2, &key(2))
            .unwrap()
            .with_older(1, &key(1))
            .unwrap();
        let (opened, stale) = rotated.open("u", &sealed).unwrap();
        assert_eq!(opened, secret);
        assert!(stale);
        let resealed = rotated.seal("u", &opened).unwrap();
        assert_eq!(resealed.key_id(), Some(2));
        assert_eq!(
            rotated.open("u", &resealed).map(|(_, stale)| stale),
            Some(false)
        );
        assert_eq!(
            TotpKeys::new(2, &key(2))
                .unwrap()
                .with_older(2, &key(3))
                .err(),
            Some(TotpKeyError::DuplicateId(2))
        );
        assert_eq!(
            TotpKeys::new(1, &SecretSlice::from(vec![0; 16])).err(),
            Some(TotpKeyError::Length(16))
        );
    }
}
