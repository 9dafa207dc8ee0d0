//! Code digests: what a store keeps of a code, and what a submitted code is compared as.

use std::fmt;

use subtle::ConstantTimeEq;

/// Most keys a ring holds: the primary and up to three retired keys. Fixed so verify
/// computes its candidates on the stack.
pub const MAX_KEYS: usize = 4;

/// Identifies which key produced a digest, so rotation can keep old digests verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u8);

/// The digests a submitted code would have under each key of the ring (at most
/// [`MAX_KEYS`], on the stack), for a store to compare with what it holds.
#[derive(Debug)]
pub struct Candidates {
    digests: [Digest; MAX_KEYS],
    len: usize,
}

impl Candidates {
    /// No candidates: a malformed code, which only counts as a wrong attempt.
    #[inline]
    pub(crate) fn none() -> Self {
        Self {
            digests: [Digest::from_parts(KeyId(0), [0u8; 32]); MAX_KEYS],
            len: 0,
        }
    }

    /// Adds one key's digest (a ring holds at most [`MAX_KEYS`]; more are ignored).
    #[inline]
    pub(crate) fn push(&mut self, digest: Digest) {
        if let Some(slot) = self.digests.get_mut(self.len) {
            *slot = digest;
            self.len += 1;
        }
    }

    /// The candidates: none for a malformed code, else one per key.
    #[inline]
    pub fn as_slice(&self) -> &[Digest] {
        &self.digests[..self.len]
    }
}

/// A stored code digest: `HMAC-SHA256` output plus the id of the key that made it.
///
/// Compared only in constant time; `Debug` shows the key id, not the bytes.
#[derive(Clone, Copy)]
pub struct Digest {
    key_id: KeyId,
    bytes: [u8; 32],
}

impl Digest {
    /// Rebuilds a digest from stored parts (store implementations use this).
    pub fn from_parts(key_id: KeyId, bytes: [u8; 32]) -> Self {
        Self { key_id, bytes }
    }

    /// The key that produced it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw digest bytes, for store implementations to persist.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Constant-time equality of the bytes; the key id (not secret) must match too.
    pub fn matches(&self, other: &Digest) -> bool {
        let same_bytes: bool = self.bytes.ct_eq(&other.bytes).into();
        same_bytes & (self.key_id == other.key_id)
    }

    /// Whether any of `candidates` matches any of `stored`, comparing every pair (with the
    /// same key id) in constant time so timing does not reveal which one matched.
    #[inline]
    pub fn any_match(stored: &[Digest], candidates: &[Digest]) -> bool {
        let mut found = subtle::Choice::from(0u8);
        for stored in stored {
            for candidate in candidates {
                if stored.key_id == candidate.key_id {
                    found |= stored.bytes.ct_eq(&candidate.bytes);
                }
            }
        }
        found.into()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digest")
            .field("key_id", &self.key_id.0)
            .field("bytes", &"[REDACTED]")
            .finish()
    }
}
