//! The embedded store: sharded, compact, and swept so it cannot grow without bound.
//!
//! Each shard is a slab of fixed-size [`Slot`]s kept in fixed-size chunks. The store
//! reserves a slot before a challenge's id is made ([`OtpStore::reserve_key`]) and writes
//! the slot's number into the id's first four key bytes, so a lookup is arithmetic plus one
//! memory access: no hash table, no probing, and the address is known before the code's
//! HMAC is computed, which lets verify fetch the slot while the HMAC runs. The other twelve
//! key bytes stay random and are compared in constant time, so a guessed or stale id finds
//! nothing. A challenge lives in the shard picked by a random key byte; every operation
//! takes exactly one shard lock, which is what makes it atomic.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::{
    CODES_PER_CHALLENGE, ChallengeRecord, OtpStore, PendingChallenge, RETAIN_AFTER_EXPIRY,
    StoreError,
};
use crate::clock::{Timestamp, duration_millis};
use crate::limit::{Decision, LimitKey, Quota, gcra};
use crate::message::{Channel, Locale, Purpose};
use crate::otp::{Candidates, ChallengeId, Digest, KeyId, NotPending, VerifyOutcome};
use crate::phone::PhoneNumber;

const DEFAULT_SHARDS: usize = 64;
/// Slots per chunk (48 KiB). Chunks are never moved, so growing a shard copies nothing, and
/// a shard wastes at most one partly used chunk.
const CHUNK_SLOTS: usize = 512;
/// How often (in store time) a shard drops dead records when it is next written.
const SWEEP_INTERVAL_MS: u64 = 10_000;
/// Key bytes holding the slot number; the rest of the key stays random.
const SLOT_BYTES: usize = 4;

const STATE_FREE: u8 = 0;
/// Handed out by `reserve_key`, not yet inserted. Swept like an expired record if no insert
/// follows.
const STATE_RESERVED: u8 = 1;
const STATE_PENDING: u8 = 2;
const STATE_USED: u8 = 3;

/// One challenge, packed into 96 bytes, which always spans exactly two cache lines: `key`
/// is in the first and `subject` in the second (`repr(C)` fixes the order), so prefetching
/// those two fields fetches the whole slot.
#[repr(C, align(32))]
struct Slot {
    key: [u8; 16],
    expires_at: u64,
    /// E.164 digits as an integer (at most 15 digits fit in 50 bits).
    destination: u64,
    newest: Digest,
    purpose: u8,
    channel: u8,
    locale: u8,
    attempts_left: u8,
    state: u8,
    /// Older codes of a resent challenge. Boxed (one thin pointer): most have none.
    older: Option<Box<OlderCodes>>,
    subject: Option<Box<str>>,
}

impl Slot {
    fn free() -> Self {
        Self {
            key: [0; 16],
            expires_at: 0,
            destination: 0,
            newest: Digest::from_parts(KeyId(0), [0; 32]),
            purpose: 0,
            channel: 0,
            locale: 0,
            attempts_left: 0,
            state: STATE_FREE,
            older: None,
            subject: None,
        }
    }

    fn retain_until(&self) -> u64 {
        self.expires_at
            .saturating_add(duration_millis(RETAIN_AFTER_EXPIRY))
    }

    /// Whether this slot is in use under exactly `key`, compared in constant time: ids are
    /// bearer handles.
    #[inline]
    fn is_keyed(&self, key: &[u8; 16]) -> bool {
        self.state != STATE_FREE && bool::from(self.key.ct_eq(key))
    }

    /// Holds a challenge (pending or used), as opposed to free or merely reserved.
    #[inline]
    fn holds_challenge(&self) -> bool {
        self.state == STATE_PENDING || self.state == STATE_USED
    }

    /// Why this slot cannot verify or take a new code, if it cannot.
    #[inline]
    fn not_pending(&self, now: u64) -> Option<NotPending> {
        if self.state == STATE_USED {
            Some(NotPending::AlreadyUsed)
        } else if now >= self.expires_at {
            Some(NotPending::Expired)
        } else if self.attempts_left == 0 {
            Some(NotPending::AttemptsExhausted)
        } else {
            None
        }
    }

    /// Starts loading both cache lines of the slot, without waiting for them.
    #[inline]
    fn prefetch(&self) {
        #[cfg(all(
            any(target_arch = "x86", target_arch = "x86_64"),
            target_feature = "sse"
        ))]
        {
            safe_arch::prefetch_t0(&self.key);
            safe_arch::prefetch_t0(&self.subject);
        }
    }
}

/// The codes a resend pushed out of `Slot::newest`, newest first.
struct OlderCodes {
    digests: [Digest; CODES_PER_CHALLENGE - 1],
    len: usize,
}

impl OlderCodes {
    fn push_newest(&mut self, digest: Digest) {
        self.digests.rotate_right(1);
        self.digests[0] = digest;
        self.len = (self.len + 1).min(self.digests.len());
    }

    fn live(&self) -> &[Digest] {
        &self.digests[..self.len]
    }
}

/// The slot number carried in a key.
#[inline]
fn slot_number(key: &[u8; 16]) -> usize {
    let mut number = [0u8; SLOT_BYTES];
    number.copy_from_slice(&key[..SLOT_BYTES]);
    u32::from_le_bytes(number) as usize
}

#[derive(Default)]
struct Shard {
    chunks: Vec<Box<[Slot]>>,
    /// Slots ever handed out; every slot below this is in a chunk.
    high_water: usize,
    /// Slot numbers below `high_water` that are free again.
    free: Vec<u32>,
    /// Slots holding a challenge (pending or used).
    held: usize,
    limits: HashMap<Box<str>, u64>,
    next_sweep: u64,
}

impl Shard {
    #[inline]
    fn slot(&self, number: usize) -> Option<&Slot> {
        self.chunks
            .get(number / CHUNK_SLOTS)
            .map(|chunk| &chunk[number % CHUNK_SLOTS])
    }

    #[inline]
    fn slot_mut(&mut self, number: usize) -> Option<&mut Slot> {
        self.chunks
            .get_mut(number / CHUNK_SLOTS)
            .map(|chunk| &mut chunk[number % CHUNK_SLOTS])
    }

    /// The slot `key` names, if it is reserved or holds a challenge under exactly this key.
    #[inline]
    fn find(&self, key: &[u8; 16]) -> Option<&Slot> {
        self.slot(slot_number(key))
            .filter(|slot| slot.is_keyed(key))
    }

    #[inline]
    fn find_mut(&mut self, key: &[u8; 16]) -> Option<&mut Slot> {
        self.slot_mut(slot_number(key))
            .filter(|slot| slot.is_keyed(key))
    }

    /// A free slot number, growing the shard by a chunk when none is left.
    fn allocate(&mut self) -> Result<u32, StoreError> {
        if let Some(number) = self.free.pop() {
            return Ok(number);
        }
        let number = u32::try_from(self.high_water)
            .map_err(|_| StoreError::Corrupt("memory store shard is full"))?;
        if self.high_water / CHUNK_SLOTS == self.chunks.len() {
            self.chunks
                .push((0..CHUNK_SLOTS).map(|_| Slot::free()).collect());
        }
        self.high_water += 1;
        Ok(number)
    }

    fn release(&mut self, number: usize) {
        if let Some(slot) = self.slot_mut(number) {
            let held = slot.holds_challenge();
            *slot = Slot::free();
            if held {
                self.held -= 1;
            }
            // Slot numbers come from a u32.
            self.free.push(number as u32);
        }
    }

    fn sweep_if_due(&mut self, now: u64) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.saturating_add(SWEEP_INTERVAL_MS);
        self.sweep(now);
    }

    fn sweep(&mut self, now: u64) {
        for number in 0..self.high_water {
            if self
                .slot(number)
                .is_some_and(|slot| slot.state != STATE_FREE && slot.retain_until() <= now)
            {
                self.release(number);
            }
        }
        self.limits.retain(|_, tat| *tat > now);
    }
}

/// A shard lock on cache lines of its own, so threads working on neighbouring shards do
/// not slow each other down (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// An in-process [`OtpStore`]: the default, and the right choice for one instance.
///
/// Clones share the same data. For several instances behind a load balancer use
/// `RedisStore` (feature `redis`).
///
/// Challenge ids of this store carry the number of the slot that holds the challenge (in
/// their first four key bytes; 96 bits stay random), so a lookup is one memory access. A
/// record is therefore only found through an id this store reserved with
/// [`OtpStore::reserve_key`], which [`OtpService`](crate::OtpService) always does.
#[derive(Clone)]
pub struct MemoryStore {
    shards: Arc<[PaddedShard]>,
    limit_hasher: RandomState,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("challenges", &self.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with 64 shards.
    pub fn new() -> Self {
        Self::with_shards(DEFAULT_SHARDS)
    }

    /// An empty store with `shards` shards (rounded up to a power of two, at least 1, at
    /// most 256: a key byte picks the shard).
    pub fn with_shards(shards: usize) -> Self {
        let count = shards.clamp(1, 256).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| PaddedShard(Mutex::new(Shard::default())))
                .collect(),
            limit_hasher: RandomState::new(),
        }
    }

    /// Challenges held, live or kept for a while after they ended.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(&shard.0).held).sum()
    }

    /// Whether no challenge is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rate-limit keys held.
    pub fn limit_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(&shard.0).limits.len())
            .sum()
    }

    /// Drops every record and rate-limit state that no longer matters at `now`. Writes do
    /// this on their own every few seconds per shard; call it to free memory sooner.
    pub fn sweep(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            lock(&shard.0).sweep(now.as_millis());
        }
    }

    #[inline]
    fn shard_for(&self, key: &[u8; 16]) -> MutexGuard<'_, Shard> {
        let mask = self.shards.len() - 1;
        lock(&self.shards[usize::from(key[15]) & mask].0)
    }

    fn limit_shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let mask = self.shards.len() - 1;
        let hash = self.limit_hasher.hash_one(key);
        lock(&self.shards[(hash as usize) & mask].0)
    }
}

/// A poisoned lock only means another thread panicked mid-operation; every operation
/// leaves a shard consistent at each step, so carry on with its data.
#[inline]
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn destination_to_int(destination: &PhoneNumber) -> Result<u64, StoreError> {
    destination
        .e164_digits()
        .parse()
        .map_err(|_| StoreError::Corrupt("destination is not numeric"))
}

fn pending_from(slot: &Slot) -> Result<PendingChallenge, StoreError> {
    let destination = PhoneNumber::parse(&format!("+{}", slot.destination))
        .map_err(|_| StoreError::Corrupt("stored destination no longer parses"))?;
    Ok(PendingChallenge {
        destination,
        channel: Channel::from_tag(slot.channel).ok_or(StoreError::Corrupt("channel"))?,
        locale: Locale::from_tag(slot.locale).ok_or(StoreError::Corrupt("locale"))?,
        purpose: Purpose::from_tag(slot.purpose).ok_or(StoreError::Corrupt("purpose"))?,
        subject: slot.subject.as_deref().map(str::to_owned),
        expires_at: Timestamp::from_millis(slot.expires_at),
    })
}

/// The whole of `check` once the shard is locked.
#[inline]
fn check_in(
    shard: &mut Shard,
    key: &[u8; 16],
    candidates: &[Digest],
    now: Timestamp,
) -> Result<VerifyOutcome, StoreError> {
    match shard.find_mut(key) {
        Some(slot) if slot.holds_challenge() => check_slot(slot, candidates, now.as_millis()),
        _ => Ok(VerifyOutcome::NotFound),
    }
}

#[inline]
fn check_slot(
    slot: &mut Slot,
    candidates: &[Digest],
    now: u64,
) -> Result<VerifyOutcome, StoreError> {
    if let Some(reason) = slot.not_pending(now) {
        return Ok(reason.into());
    }
    let mut matched = Digest::any_match(std::slice::from_ref(&slot.newest), candidates);
    if let Some(older) = &slot.older {
        matched |= Digest::any_match(older.live(), candidates);
    }
    if matched {
        slot.state = STATE_USED;
        let purpose = Purpose::from_tag(slot.purpose).ok_or(StoreError::Corrupt("purpose"))?;
        return Ok(VerifyOutcome::Verified {
            purpose,
            subject: slot.subject.as_deref().map(str::to_owned),
        });
    }
    slot.attempts_left -= 1;
    Ok(VerifyOutcome::Mismatch {
        attempts_left: slot.attempts_left,
    })
}

#[async_trait]
impl OtpStore for MemoryStore {
    fn reserve_key(&self, random: [u8; 16], now: Timestamp) -> Result<[u8; 16], StoreError> {
        let mut key = random;
        let mut shard = self.shard_for(&key);
        shard.sweep_if_due(now.as_millis());
        let number = shard.allocate()?;
        key[..SLOT_BYTES].copy_from_slice(&number.to_le_bytes());
        let slot = shard
            .slot_mut(number as usize)
            .ok_or(StoreError::Corrupt("allocated slot is missing"))?;
        slot.key = key;
        slot.state = STATE_RESERVED;
        // Kept like an expired record, then swept, if no insert follows.
        slot.expires_at = now.as_millis();
        Ok(key)
    }

    async fn insert(&self, challenge: ChallengeRecord, _now: Timestamp) -> Result<(), StoreError> {
        let key = challenge.id.store_key();
        let destination = destination_to_int(&challenge.destination)?;
        let mut shard = self.shard_for(&key);
        let slot = shard.find_mut(&key).ok_or(StoreError::UnreservedKey)?;
        if slot.state != STATE_RESERVED {
            return Err(StoreError::Duplicate);
        }
        *slot = Slot {
            key,
            expires_at: challenge.expires_at.as_millis(),
            destination,
            newest: challenge.digest,
            purpose: challenge.purpose.to_tag(),
            channel: challenge.channel.to_tag(),
            locale: challenge.locale.to_tag(),
            attempts_left: challenge.attempts_left,
            state: STATE_PENDING,
            older: None,
            subject: challenge.subject.map(String::into_boxed_str),
        };
        shard.held += 1;
        Ok(())
    }

    async fn check(
        &self,
        id: &ChallengeId,
        candidates: &[Digest],
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        let key = id.store_key();
        check_in(&mut self.shard_for(&key), &key, candidates, now)
    }

    /// Prefetches the slot, then runs `prepare` (the HMAC and the clock) under the shard
    /// lock while the slot loads.
    #[inline]
    fn check_prepared(
        &self,
        id: &ChallengeId,
        prepare: &mut dyn FnMut() -> (Candidates, Timestamp),
    ) -> Option<Result<VerifyOutcome, StoreError>> {
        let key = id.store_key();
        let mut shard = self.shard_for(&key);
        if let Some(slot) = shard.slot(slot_number(&key)) {
            slot.prefetch();
        }
        let (candidates, now) = prepare();
        Some(check_in(&mut shard, &key, candidates.as_slice(), now))
    }

    async fn pending(
        &self,
        id: &ChallengeId,
        now: Timestamp,
    ) -> Result<Result<PendingChallenge, NotPending>, StoreError> {
        let key = id.store_key();
        let shard = self.shard_for(&key);
        let Some(slot) = shard.find(&key).filter(|slot| slot.holds_challenge()) else {
            return Ok(Err(NotPending::NotFound));
        };
        match slot.not_pending(now.as_millis()) {
            Some(reason) => Ok(Err(reason)),
            None => pending_from(slot).map(Ok),
        }
    }

    async fn add_code(
        &self,
        id: &ChallengeId,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        let key = id.store_key();
        let mut shard = self.shard_for(&key);
        let Some(slot) = shard.find_mut(&key).filter(|slot| slot.holds_challenge()) else {
            return Ok(Err(NotPending::NotFound));
        };
        if let Some(reason) = slot.not_pending(now.as_millis()) {
            return Ok(Err(reason));
        }
        let previous = std::mem::replace(&mut slot.newest, digest);
        let older = slot.older.get_or_insert_with(|| {
            Box::new(OlderCodes {
                digests: [previous; CODES_PER_CHALLENGE - 1],
                len: 0,
            })
        });
        older.push_newest(previous);
        Ok(Ok(()))
    }

    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        let key = id.store_key();
        let mut shard = self.shard_for(&key);
        if shard.find(&key).is_some() {
            shard.release(slot_number(&key));
        }
        Ok(())
    }

    async fn throttle(
        &self,
        key: &LimitKey,
        quota: Quota,
        now: Timestamp,
    ) -> Result<Decision, StoreError> {
        let mut shard = self.limit_shard(key.as_str());
        shard.sweep_if_due(now.as_millis());
        let stored = shard.limits.get(key.as_str()).copied();
        let step = gcra(stored, quota, now);
        if step.decision == Decision::Allowed {
            match shard.limits.get_mut(key.as_str()) {
                Some(tat) => *tat = step.new_tat_millis,
                None => {
                    shard
                        .limits
                        .insert(key.as_str().into(), step.new_tat_millis);
                }
            }
        }
        Ok(step.decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_96_bytes_and_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 96);
        assert_eq!(std::mem::align_of::<Slot>(), 32);
        // `prefetch` relies on `key` opening the first line and `subject` lying in the
        // second, wherever a 32-byte aligned slot starts.
        assert_eq!(std::mem::offset_of!(Slot, key), 0);
        assert!(std::mem::offset_of!(Slot, subject) >= 64);
    }
}
