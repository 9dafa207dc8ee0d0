//! TOTP secrets and their encryption at rest. A verifier must recompute codes, so a
//! secret cannot be hashed like an SMS code: it is sealed with AES-256-GCM under a key of
//! a [`TotpKeys`] ring, with a random nonce and the subject as associated data (a
//! sealed secret copied to another user's record does not open). The ring has ids, so a
//! new primary key seals from now on and older keys still open; [`TotpKeys::open`] says
//! when a secret should be sealed again under the primary (rotation on next use).

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroizing;

use crate::random::RandomError;

/// Bytes of a new secret (160 bits, RFC 4226's recommendation and what apps expect).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Bytes of a sealing key.
const KEY_BYTES: usize = 32;
/// A random 96-bit nonce per seal. Seals happen at enrollment and at a reseal after
/// rotation, far below the 2^32 random nonces per key NIST SP 800-38D allows.
const NONCE_BYTES: usize = 12;
/// Bytes of the authentication tag, after the ciphertext.
const TAG_BYTES: usize = 16;
/// Labels up to this long build their associated data on the stack.
const AD_STACK: usize = 256;
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
    keys: Vec<(u8, Aes256Gcm)>,
}

impl fmt::Debug for TotpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("TotpKeys").field("ids", &ids).finish()
    }
}

fn cipher(secret: &SecretSlice<u8>) -> Result<Aes256Gcm, TotpKeyError> {
    let bytes = secret.expose_secret();
    if bytes.len() != KEY_BYTES {
        return Err(TotpKeyError::Length(bytes.len()));
    }
    // The key schedule is expanded once here, not per seal or open.
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)))
}

/// Calls `f` with the associated data: the domain, then the label's parts, built on the
/// stack when it fits (an open runs on every verify).
fn with_associated_data<T>(label: &[&[u8]], f: impl FnOnce(&[u8]) -> T) -> T {
    let len = AD_DOMAIN.len() + label.iter().map(|part| part.len()).sum::<usize>();
    if len <= AD_STACK {
        let mut buf = [0u8; AD_STACK];
        let mut at = 0;
        for part in std::iter::once(&AD_DOMAIN).chain(label) {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        f(&buf[..len])
    } else {
        f(&[&[AD_DOMAIN][..], label].concat().concat())
    }
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
        self.seal_for(&[subject.as_bytes()], secret)
    }

    /// [`TotpKeys::seal`] bound to a label given in parts (e.g. tenant and subject).
    pub(crate) fn seal_for(
        &self,
        label: &[&[u8]],
        secret: &TotpSecret,
    ) -> Result<SealedTotpSecret, RandomError> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        crate::random::fill(&mut nonce)?;
        // id | nonce | ciphertext | tag, encrypted in place.
        let mut bytes = Vec::with_capacity(1 + NONCE_BYTES + secret.expose().len() + TAG_BYTES);
        bytes.push(*id);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(secret.expose());
        let tag = with_associated_data(label, |aad| {
            cipher.encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                aad,
                &mut bytes[1 + NONCE_BYTES..],
            )
        })
        .map_err(|_| RandomError::internal())?;
        bytes.extend_from_slice(&tag);
        Ok(SealedTotpSecret(bytes))
    }

    /// The secret `sealed` holds, if a key of the ring sealed it for `subject` and it is
    /// intact, and whether it should be sealed again under the primary key.
    pub fn open(&self, subject: &str, sealed: &SealedTotpSecret) -> Option<(TotpSecret, bool)> {
        self.open_for(&[subject.as_bytes()], sealed)
    }

    /// [`TotpKeys::open`] for a label given in parts.
    pub(crate) fn open_for(
        &self,
        label: &[&[u8]],
        sealed: &SealedTotpSecret,
    ) -> Option<(TotpSecret, bool)> {
        let id = sealed.key_id()?;
        let (_, cipher) = self.keys.iter().find(|(key, _)| *key == id)?;
        let body = sealed.0.get(1..)?;
        if body.len() < NONCE_BYTES + TAG_BYTES {
            return None;
        }
        let (nonce, rest) = body.split_at(NONCE_BYTES);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let mut opened = Zeroizing::new(ciphertext.to_vec());
        with_associated_data(label, |aad| {
            cipher.decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                &mut opened,
                Tag::from_slice(tag),
            )
        })
        .ok()?;
        let stale = id != self.keys[0].0;
        Some((TotpSecret(opened), stale))
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
