//! Challenge ids.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thiserror::Error;

use crate::message::Purpose;

const RANDOM_BYTES: usize = 16;
const ID_BYTES: usize = RANDOM_BYTES + 1 + 8;

/// The handle a caller keeps between `start` and `verify`.
///
/// 25 bytes, printed as 34 URL-safe base64 characters: the 16-byte store key (at least 96
/// random bits; a store may put a locator in the first four bytes), the purpose, and a keyed
/// 8-byte fingerprint of the destination. The whole id is bound into
/// the code digest, so the digest binds purpose and destination without the caller having
/// to repeat them and without a second store read. An id holds no phone number and no code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeId([u8; ID_BYTES]);

/// A string is not a challenge id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a challenge id (expected 34 URL-safe base64 characters)")]
pub struct ParseChallengeIdError;

impl ChallengeId {
    /// 128 fresh random bits, for [`OtpStore::reserve_key`](crate::OtpStore::reserve_key)
    /// to turn into a store key.
    pub(crate) fn random_key() -> Result<[u8; RANDOM_BYTES], crate::RandomError> {
        let mut key = [0u8; RANDOM_BYTES];
        crate::random::fill(&mut key)?;
        Ok(key)
    }

    /// The id of a challenge keyed `store_key` in its store.
    pub(crate) fn new(
        store_key: [u8; RANDOM_BYTES],
        purpose: Purpose,
        destination_fingerprint: [u8; 8],
    ) -> Self {
        let mut bytes = [0u8; ID_BYTES];
        bytes[..RANDOM_BYTES].copy_from_slice(&store_key);
        bytes[RANDOM_BYTES] = purpose.to_tag();
        bytes[RANDOM_BYTES + 1..].copy_from_slice(&destination_fingerprint);
        Self(bytes)
    }

    /// Rebuilds an id from its 25 bytes (as [`ChallengeId::as_bytes`] returns them).
    pub fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes that key the challenge in its store.
    #[inline]
    pub fn store_key(&self) -> [u8; RANDOM_BYTES] {
        let mut key = [0u8; RANDOM_BYTES];
        key.copy_from_slice(&self.0[..RANDOM_BYTES]);
        key
    }

    /// The store key as 32 lowercase hex characters, for text-keyed stores.
    pub fn store_key_hex(&self) -> String {
        let mut hex = String::with_capacity(RANDOM_BYTES * 2);
        for byte in &self.0[..RANDOM_BYTES] {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// The purpose the challenge was started for, as carried in the id.
    pub fn purpose(&self) -> Option<Purpose> {
        Purpose::from_tag(self.0[RANDOM_BYTES])
    }

    /// All 25 bytes, as bound into the digest.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for ChallengeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for ChallengeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChallengeId({self})")
    }
}

impl FromStr for ChallengeId {
    type Err = ParseChallengeIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 34 {
            return Err(ParseChallengeIdError);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| ParseChallengeIdError)?;
        let bytes: [u8; ID_BYTES] = decoded.try_into().map_err(|_| ParseChallengeIdError)?;
        Ok(Self(bytes))
    }
}
