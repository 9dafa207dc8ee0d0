//! Challenge ids.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thiserror::Error;

use crate::message::Purpose;

/// An account as stores know it: a keyed 8-byte fingerprint of a subject (per tenant) or,
/// for challenges without a subject, of the number
/// ([`KeyRing::account_id`](crate::KeyRing::account_id)). Consecutive failed verifications
/// are counted per account.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AccountId(pub [u8; 8]);

impl AccountId {
    /// 16 lowercase hex characters, for text-keyed stores.
    pub fn to_hex(self) -> String {
        let mut hex = String::with_capacity(16);
        for byte in self.0 {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

const RANDOM_BYTES: usize = 16;
const PURPOSE_AT: usize = RANDOM_BYTES;
const DESTINATION_AT: usize = PURPOSE_AT + 1;
const ACCOUNT_AT: usize = DESTINATION_AT + 8;
/// The length of a [`ChallengeId`] in bytes.
pub const CHALLENGE_ID_BYTES: usize = ACCOUNT_AT + 8;
const ID_BYTES: usize = CHALLENGE_ID_BYTES;
/// Its length printed: URL-safe base64 without padding.
const ID_CHARS: usize = 44;

/// The handle a caller keeps between `start` and `verify`.
///
/// 33 bytes, printed as 44 URL-safe base64 characters: the 16-byte store key (at least 96
/// random bits; a store may put a locator in the first four bytes), the purpose, a keyed
/// 8-byte fingerprint of the destination, and a keyed 8-byte fingerprint of the account
/// (the subject, per tenant, or the number when there is no subject), whose consecutive
/// failures are capped. The whole id is bound into the code digest, so the digest binds
/// purpose and destination without the caller having to repeat them and without a second
/// store read; stores also check the account bytes, and a store that shards may keep an
/// account's challenges and failure count together by them. An id holds no phone number
/// and no code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeId([u8; ID_BYTES]);

/// A string is not a challenge id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a challenge id (expected 44 URL-safe base64 characters)")]
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
        account: AccountId,
    ) -> Self {
        let mut bytes = [0u8; ID_BYTES];
        bytes[..RANDOM_BYTES].copy_from_slice(&store_key);
        bytes[PURPOSE_AT] = purpose.to_tag();
        bytes[DESTINATION_AT..ACCOUNT_AT].copy_from_slice(&destination_fingerprint);
        bytes[ACCOUNT_AT..].copy_from_slice(&account.0);
        Self(bytes)
    }

    /// Rebuilds an id from its 33 bytes (as [`ChallengeId::as_bytes`] returns them).
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
        Purpose::from_tag(self.0[PURPOSE_AT])
    }

    /// The account whose failures this challenge's wrong codes count against.
    #[inline]
    pub fn account(&self) -> AccountId {
        let mut account = [0u8; 8];
        account.copy_from_slice(&self.0[ACCOUNT_AT..]);
        AccountId(account)
    }

    /// All 33 bytes, as bound into the digest.
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
        if text.len() != ID_CHARS {
            return Err(ParseChallengeIdError);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| ParseChallengeIdError)?;
        let bytes: [u8; ID_BYTES] = decoded.try_into().map_err(|_| ParseChallengeIdError)?;
        Ok(Self(bytes))
    }
}
