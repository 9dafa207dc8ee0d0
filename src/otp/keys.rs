//! HMAC keys and the key ring: what makes code digests, account ids and sealing keys.
//!
//! Only `HMAC-SHA256(key, context || code)` is ever stored. The context binds the challenge
//! id (which itself carries the purpose and a keyed fingerprint of the destination) and any
//! caller bytes, so a digest is useless for another challenge, purpose, number or
//! transaction. Each key's HMAC state is keyed once at construction and cloned per digest,
//! which saves two SHA-256 compressions per code.

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use thiserror::Error;

use super::account::Account;
use super::seal::{self, Sealer};
use crate::challenge::{
    AccountId, Candidates, ChallengeId, Digest, KeyId, MAX_KEYS, SealedDestination,
};
use crate::limit::LimitKey;
use crate::phone::PhoneNumber;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted: 256 bits, the HMAC-SHA256 output size.
pub const MIN_KEY_BYTES: usize = 32;

/// Domain separation: digests of this crate never collide with other uses of the key.
const CODE_DOMAIN: &[u8] = b"phone-otp/v1/code\0";
const DESTINATION_DOMAIN: &[u8] = b"phone-otp/v1/destination\0";
const REFERENCE_DOMAIN: &[u8] = b"phone-otp/v1/provider-reference\0";
const ACCOUNT_DOMAIN: &[u8] = b"phone-otp/v1/account\0";
const SEAL_DOMAIN: &[u8] = b"phone-otp/v1/seal-key\0";
const REQUEST_DOMAIN: &[u8] = b"phone-otp/v1/relay-request\0";
const LIMIT_DOMAIN: &[u8] = b"phone-otp/v1/limit-key\0";
#[cfg(feature = "totp")]
const RECOVERY_DOMAIN: &[u8] = b"phone-otp/v1/recovery-code\0";

/// A key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Fewer than 32 bytes of key material.
    #[error("HMAC key is {length} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort {
        /// The length that was given.
        length: usize,
    },
    /// Two keys in one ring share an id.
    #[error("key id {0} appears twice in the key ring")]
    DuplicateId(u8),
    /// The ring already holds [`MAX_KEYS`] keys; remove a retired one first.
    #[error("a key ring holds at most {MAX_KEYS} keys")]
    TooManyKeys,
    /// Removing this key would leave the ring without a key to issue codes with.
    #[error("key id {0} is the primary key and cannot be removed")]
    RemovingPrimary(u8),
}

/// One server-side HMAC key with its id. `Debug` never shows key material.
#[derive(Clone)]
pub struct HmacKey {
    id: KeyId,
    keyed: HmacSha256,
    /// Seals destinations in store records, under a key derived one way from this one.
    sealer: Sealer,
}

impl HmacKey {
    /// A key from at least 32 bytes of secret material (e.g. 32 random bytes from a secret
    /// manager).
    ///
    /// # Errors
    /// [`KeyError::TooShort`] below 32 bytes.
    pub fn new(id: u8, secret: &SecretSlice<u8>) -> Result<Self, KeyError> {
        let bytes = secret.expose_secret();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                length: bytes.len(),
            });
        }
        let keyed = HmacSha256::new_from_slice(bytes).map_err(|_| KeyError::TooShort {
            length: bytes.len(),
        })?;
        let mut mac = keyed.clone();
        mac.update(SEAL_DOMAIN);
        let seal_key = zeroize::Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Ok(Self {
            id: KeyId(id),
            keyed,
            sealer: Sealer::new(&seal_key),
        })
    }

    /// A key of 32 fresh random bytes, for tests and examples. A real deployment needs the
    /// same key on every instance and across restarts, so load it from configuration.
    ///
    /// # Errors
    /// If the operating system's random source fails.
    pub fn generate(id: u8) -> Result<Self, crate::RandomError> {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        crate::random::fill(&mut bytes)?;
        let secret = SecretSlice::from(bytes);
        // 32 bytes is always long enough.
        Self::new(id, &secret).map_err(|_| crate::RandomError::internal())
    }

    /// This key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    #[inline]
    fn digest(&self, challenge: &ChallengeId, context: &[u8], code: &[u8]) -> Digest {
        let mut mac = self.keyed.clone();
        mac.update(CODE_DOMAIN);
        mac.update(challenge.as_bytes());
        mac.update(
            &u32::try_from(context.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        mac.update(context);
        mac.update(code);
        Digest::from_parts(self.id, mac.finalize().into_bytes().into())
    }

    #[cfg(feature = "totp")]
    fn recovery(&self, account: AccountId, code: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(RECOVERY_DOMAIN);
        mac.update(&account.0);
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn reference(&self, challenge: &ChallengeId) -> [u8; 12] {
        let mut mac = self.keyed.clone();
        mac.update(REFERENCE_DOMAIN);
        mac.update(challenge.as_bytes());
        truncated(mac)
    }

    fn account(&self, account: &Account<'_>) -> [u8; 8] {
        let mut mac = self.keyed.clone();
        mac.update(ACCOUNT_DOMAIN);
        match account {
            Account::Subject { tenant, subject } => {
                // Length-prefixed, so no tenant and subject pair reads as another.
                let tenant = tenant.unwrap_or_default();
                mac.update(b"s");
                mac.update(
                    &u32::try_from(tenant.len())
                        .unwrap_or(u32::MAX)
                        .to_be_bytes(),
                );
                mac.update(tenant.as_bytes());
                mac.update(subject.as_bytes());
            }
            Account::Number(number) => {
                mac.update(b"n");
                mac.update(number.e164().as_bytes());
            }
        }
        truncated(mac)
    }

    fn request(&self, tenant: Option<&str>, key: &[u8]) -> [u8; 16] {
        let mut mac = self.keyed.clone();
        mac.update(REQUEST_DOMAIN);
        let tenant = tenant.unwrap_or_default();
        mac.update(
            &u32::try_from(tenant.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        mac.update(tenant.as_bytes());
        mac.update(key);
        truncated(mac)
    }

    fn fingerprint(&self, e164: &str) -> [u8; 8] {
        let mut mac = self.keyed.clone();
        mac.update(DESTINATION_DOMAIN);
        mac.update(e164.as_bytes());
        truncated(mac)
    }

    fn limit_name(&self, clear: &str) -> [u8; 8] {
        let mut mac = self.keyed.clone();
        mac.update(LIMIT_DOMAIN);
        mac.update(clear.as_bytes());
        truncated(mac)
    }
}

/// The first `N` bytes of a MAC: keyed fingerprints and references need no more.
fn truncated<const N: usize>(mac: HmacSha256) -> [u8; N] {
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut short = [0u8; N];
    short.copy_from_slice(&full[..N]);
    short
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("id", &self.id.0)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// The keys a service holds: the primary key issues new codes, the others still verify
/// codes issued before a rotation until they are removed.
///
/// ```
/// use phone_otp::{HmacKey, KeyRing};
/// use secrecy::SecretSlice;
///
/// let old = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32]))?;
/// let new = HmacKey::new(2, &SecretSlice::from(vec![9u8; 32]))?;
/// let ring = KeyRing::new(new).with_previous(old)?;
/// assert_eq!(ring.primary().id().0, 2);
/// # Ok::<(), phone_otp::KeyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// The primary key first.
    keys: Vec<HmacKey>,
}

impl KeyRing {
    /// A ring with one key, which is primary.
    pub fn new(primary: HmacKey) -> Self {
        Self {
            keys: vec![primary],
        }
    }

    /// Adds a key that still verifies but no longer issues codes.
    ///
    /// # Errors
    /// [`KeyError::DuplicateId`] if the id is taken, [`KeyError::TooManyKeys`] past
    /// [`MAX_KEYS`].
    pub fn with_previous(mut self, key: HmacKey) -> Result<Self, KeyError> {
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(KeyError::DuplicateId(key.id.0));
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyError::TooManyKeys);
        }
        self.keys.push(key);
        Ok(self)
    }

    /// Drops a retired key: codes it issued stop verifying.
    ///
    /// # Errors
    /// [`KeyError::RemovingPrimary`] for the primary key.
    pub fn without(mut self, id: KeyId) -> Result<Self, KeyError> {
        if self.primary().id == id {
            return Err(KeyError::RemovingPrimary(id.0));
        }
        self.keys.retain(|k| k.id != id);
        Ok(self)
    }

    /// The key that issues new codes.
    pub fn primary(&self) -> &HmacKey {
        // `keys` is never empty: built with a primary, which cannot be removed.
        &self.keys[0]
    }

    /// Every key id in the ring, primary first.
    pub fn key_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// The digest a new code is stored as.
    pub(crate) fn issue(&self, challenge: &ChallengeId, context: &[u8], code: &[u8]) -> Digest {
        self.primary().digest(challenge, context, code)
    }

    /// One candidate digest per key, for the store to compare against.
    #[inline]
    pub(crate) fn candidates(
        &self,
        challenge: &ChallengeId,
        context: &[u8],
        code: &[u8],
    ) -> Candidates {
        let mut candidates = Candidates::none();
        for key in &self.keys {
            candidates.push(key.digest(challenge, context, code));
        }
        candidates
    }

    /// A keyed 8-byte fingerprint of a destination (E.164), carried in the challenge id
    /// and naming the number in rate-limit keys, so stores never hold it in clear.
    pub fn destination_fingerprint(&self, e164: &str) -> [u8; 8] {
        self.primary().fingerprint(e164)
    }

    /// `key` renamed by a keyed fingerprint of its clear name (a subject's or a client
    /// address's key), under the primary key: rotating it starts those limits afresh, as
    /// it does the number's.
    pub(crate) fn hide_limit_key(&self, key: &LimitKey) -> LimitKey {
        key.hidden(self.primary().limit_name(key.as_str()))
    }

    /// `to`, sealed for `challenge` under the primary key (see [`SealedDestination`]).
    pub(crate) fn seal_destination(
        &self,
        challenge: &ChallengeId,
        to: &PhoneNumber,
    ) -> Option<SealedDestination> {
        let primary = self.primary();
        primary.sealer.seal(primary.id, challenge, to)
    }

    /// The number `sealed` holds, if a key of the ring sealed it for `challenge` and it is
    /// intact.
    pub(crate) fn open_destination(
        &self,
        challenge: &ChallengeId,
        sealed: &SealedDestination,
    ) -> Option<PhoneNumber> {
        let key_id = seal::sealing_key(sealed)?;
        let key = self.keys.iter().find(|key| key.id == key_id)?;
        key.sealer.open(challenge, sealed)
    }

    /// The id under which stores count `account`'s consecutive failures. Derived from the
    /// primary key: rotating it starts every account's count afresh.
    pub fn account_id(&self, account: &Account<'_>) -> AccountId {
        AccountId(self.primary().account(account))
    }

    /// The ids `account` had under each key of the ring, primary first: a record kept under
    /// an older key's id can be found and moved after a rotation.
    #[cfg(feature = "totp")]
    pub(crate) fn account_ids(&self, account: &Account<'_>) -> Vec<AccountId> {
        self.keys
            .iter()
            .map(|key| AccountId(key.account(account)))
            .collect()
    }

    /// The keyed digest a new recovery code is stored as (never the code), under the
    /// primary key and the account's id under it.
    #[cfg(feature = "totp")]
    pub(crate) fn recovery_digest(&self, account: AccountId, code: &str) -> [u8; 32] {
        self.primary().recovery(account, code)
    }

    /// Every digest a typed recovery code may be stored as: one per key of the ring, with
    /// the account's id under that key. A factor moved to the new id after a rotation
    /// keeps the digests made under the older key (the codes themselves are never kept).
    #[cfg(feature = "totp")]
    pub(crate) fn recovery_digests(&self, account: &Account<'_>, code: &str) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|key| key.recovery(AccountId(key.account(account)), code))
            .collect()
    }

    /// The key under which a relayed request is remembered (e.g. Okta's `eventId`, per
    /// tenant), so a repeat is recognised without storing the caller's id.
    pub(crate) fn request_fingerprint(&self, tenant: Option<&str>, key: &[u8]) -> [u8; 16] {
        self.primary().request(tenant, key)
    }

    /// What providers are told about a challenge: 24 hex characters derived one way from
    /// its id under the primary key. Provider logs are read by many; the id's store key
    /// must not reach them, or whoever reads them could forge ids that spend the
    /// challenge's attempts.
    pub(crate) fn provider_reference(&self, challenge: &ChallengeId) -> String {
        crate::limit::hex(&self.primary().reference(challenge))
    }
}

/// The floor the verify benchmark compares against: one pre-keyed HMAC-SHA256 of a code
/// and a constant-time compare, with nothing else around it.
#[doc(hidden)]
pub fn bench_floor(key: &HmacKey, challenge: &ChallengeId, code: &[u8], expected: &Digest) -> bool {
    key.digest(challenge, &[], code).matches(expected)
}
