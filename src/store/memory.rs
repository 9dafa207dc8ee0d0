//! The embedded store: sharded, compact, and swept so it cannot grow without bound.
//!
//! Each shard is a slab of fixed-size [`Slot`]s plus a `hashbrown::HashTable` of slot
//! indices (4 bytes per bucket instead of a whole record), so a pending challenge costs
//! about 100 bytes plus its subject. A challenge lives in the shard picked by its random
//! id; every operation takes exactly one shard lock, which is what makes it atomic.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use hashbrown::HashTable;

use super::{
    CODES_PER_CHALLENGE, ChallengeRecord, OtpStore, PendingChallenge, RETAIN_AFTER_EXPIRY,
    StoreError,
};
use crate::clock::{Timestamp, duration_millis};
use crate::limit::{Decision, LimitKey, Quota, gcra};
use crate::message::{Channel, Locale, Purpose};
use crate::otp::{ChallengeId, Digest, NotPending, VerifyOutcome};
use crate::phone::PhoneNumber;

const DEFAULT_SHARDS: usize = 64;
/// How often (in store time) a shard drops dead records when it is next written.
const SWEEP_INTERVAL_MS: u64 = 10_000;

const STATE_FREE: u8 = 0;
const STATE_PENDING: u8 = 1;
const STATE_USED: u8 = 2;

/// One challenge, packed. 96 bytes on 64-bit targets.
struct Slot {
    key: [u8; 16],
    expires_at: u64,
    /// E.164 digits as an integer (at most 15 digits fit in 50 bits).
    destination: u64,
    newest: Digest,
    /// Older codes of a resent challenge. Boxed (one thin pointer): most have none.
    older: Option<Box<OlderCodes>>,
    subject: Option<Box<str>>,
    purpose: u8,
    channel: u8,
    locale: u8,
    attempts_left: u8,
    state: u8,
}

impl Slot {
    fn retain_until(&self) -> u64 {
        self.expires_at
            .saturating_add(duration_millis(RETAIN_AFTER_EXPIRY))
    }

    /// Why this slot cannot verify or take a new code, if it cannot.
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

#[derive(Default)]
struct Shard {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    limits: HashMap<Box<str>, u64>,
    next_sweep: u64,
}

fn hash_key(key: &[u8; 16]) -> u64 {
    // The key is 128 CSPRNG bits: its first eight bytes are already a uniform hash.
    let mut first = [0u8; 8];
    first.copy_from_slice(&key[..8]);
    u64::from_le_bytes(first)
}

impl Shard {
    fn find(&self, key: &[u8; 16]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash_key(key), |&i| slots[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    fn insert(&mut self, slot: Slot) -> Result<(), StoreError> {
        if self.find(&slot.key).is_some() {
            return Err(StoreError::Duplicate);
        }
        let hash = hash_key(&slot.key);
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                let index = u32::try_from(self.slots.len())
                    .map_err(|_| StoreError::Corrupt("memory store shard is full"))?;
                self.slots.push(slot);
                index
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash, index, |&i| hash_key(&slots[i as usize].key));
        Ok(())
    }

    fn remove(&mut self, position: usize) {
        let key = self.slots[position].key;
        let slots = &self.slots;
        if let Ok(entry) = self
            .index
            .find_entry(hash_key(&key), |&i| slots[i as usize].key == key)
        {
            entry.remove();
        }
        let slot = &mut self.slots[position];
        slot.state = STATE_FREE;
        slot.older = None;
        slot.subject = None;
        // Index fits: it came from a u32.
        self.free.push(position as u32);
    }

    fn sweep_if_due(&mut self, now: u64) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.saturating_add(SWEEP_INTERVAL_MS);
        self.sweep(now);
    }

    fn sweep(&mut self, now: u64) {
        let dead: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.state != STATE_FREE && slot.retain_until() <= now)
            .map(|(position, _)| position)
            .collect();
        for position in dead {
            self.remove(position);
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

    /// An empty store with `shards` shards (rounded up to a power of two, at least 1).
    pub fn with_shards(shards: usize) -> Self {
        let count = shards.max(1).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| PaddedShard(Mutex::new(Shard::default())))
                .collect(),
            limit_hasher: RandomState::new(),
        }
    }

    /// Challenges held, live or kept for a while after they ended.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(&shard.0).index.len())
            .sum()
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
    async fn insert(&self, challenge: ChallengeRecord, now: Timestamp) -> Result<(), StoreError> {
        let key = challenge.id.store_key();
        let slot = Slot {
            key,
            expires_at: challenge.expires_at.as_millis(),
            destination: destination_to_int(&challenge.destination)?,
            newest: challenge.digest,
            older: None,
            subject: challenge.subject.map(String::into_boxed_str),
            purpose: challenge.purpose.to_tag(),
            channel: challenge.channel.to_tag(),
            locale: challenge.locale.to_tag(),
            attempts_left: challenge.attempts_left,
            state: STATE_PENDING,
        };
        let mut shard = self.shard_for(&key);
        shard.sweep_if_due(now.as_millis());
        shard.insert(slot)
    }

    async fn check(
        &self,
        id: &ChallengeId,
        candidates: &[Digest],
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        let key = id.store_key();
        let mut shard = self.shard_for(&key);
        let Some(position) = shard.find(&key) else {
            return Ok(VerifyOutcome::NotFound);
        };
        check_slot(&mut shard.slots[position], candidates, now.as_millis())
    }

    async fn pending(
        &self,
        id: &ChallengeId,
        now: Timestamp,
    ) -> Result<Result<PendingChallenge, NotPending>, StoreError> {
        let key = id.store_key();
        let shard = self.shard_for(&key);
        let Some(position) = shard.find(&key) else {
            return Ok(Err(NotPending::NotFound));
        };
        let slot = &shard.slots[position];
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
        let Some(position) = shard.find(&key) else {
            return Ok(Err(NotPending::NotFound));
        };
        let slot = &mut shard.slots[position];
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
        if let Some(position) = shard.find(&key) {
            shard.remove(position);
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
