//! The embedded store: sharded, compact, and swept so it cannot grow without bound.
//!
//! Each shard is a slab of fixed-size [`SlotCell`]s kept in fixed-size chunks. The store
//! reserves a slot before a challenge's id is made ([`OtpStore::reserve_key`]) and writes
//! the slot's number into the id's first four key bytes, so a lookup is arithmetic plus one
//! memory access: no hash table, no probing, and the address is known before the code's
//! HMAC is computed, which lets verify fetch the slot while the HMAC runs. The other twelve
//! key bytes stay random and are compared in constant time, so a guessed or stale id finds
//! nothing. A challenge lives in the shard picked by a random key byte.
//!
//! Each slot has its own lock, and a shard's chunks are found without the shard lock, so
//! verify locks only the challenge it checks: threads verifying different challenges share
//! no cache line. The shard lock guards the free list and the count; an operation that
//! needs both takes the shard lock first. Every operation on a challenge runs under its
//! slot lock, which is what makes it atomic. Rate limits live apart, in a
//! [`LimitTable`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::failure_table::FailureTable;
use super::limit_table::{DEFAULT_LIMIT_KEY_CAPACITY, LimitTable};
use super::{
    CODES_PER_CHALLENGE, ChallengeRecord, FactorWrite, OtpStore, PendingRecord,
    RETAIN_AFTER_EXPIRY, StepDecision, StoreError, StoredDestination, TotpFactor,
};
use crate::challenge::{
    AccountId, Candidates, ChallengeId, Digest, KeyId, NotPending, VerifyOutcome,
};
use crate::clock::{Timestamp, duration_millis};
use crate::limit::{Admission, Counts, FailureCap, Limit, LimitKey};
use crate::message::{Channel, Locale, Purpose};
use crate::phone::PhoneNumber;

const DEFAULT_SHARDS: usize = 64;
/// Slots per chunk (64 KiB). Chunks are never moved, so growing a shard copies nothing, and
/// a shard wastes at most one partly used chunk.
const CHUNK_SLOTS: usize = 512;
/// Chunks the whole store can address, split evenly between its shards: about 8.4 million
/// challenges at once. The table of chunk pointers is allocated up front (16 bytes a chunk).
const MAX_CHUNKS: usize = 16_384;
/// How often (in store time) a shard drops dead records when it is next written.
const SWEEP_INTERVAL_MS: u64 = 10_000;
/// Key bytes holding the slot number; the rest of the key stays random.
const SLOT_BYTES: usize = 4;
/// The key bytes a slot keeps: the first four are its own number.
const KEY_TAIL: usize = 16 - SLOT_BYTES;
/// Subjects up to this many bytes (a UUID without hyphens, most provider user ids) live
/// inside the slot.
const INLINE_SUBJECT: usize = 30;

const STATE_FREE: u8 = 0;
/// Handed out by `reserve_key`, not yet inserted. Swept like an expired record if no insert
/// follows.
const STATE_RESERVED: u8 = 1;
const STATE_PENDING: u8 = 2;
const STATE_USED: u8 = 3;
/// The challenge was started with a client IP, so a resend must name one too.
const FLAG_CLIENT_IP: u8 = 1 << 6;
/// The challenge's codes are bound to caller context bytes.
const FLAG_CONTEXT: u8 = 1 << 7;

/// A challenge's subject, inside the slot when it is short: storing it then allocates
/// nothing and reading it touches no other cache line.
enum StoredSubject {
    None,
    Inline {
        len: u8,
        bytes: [u8; INLINE_SUBJECT],
    },
    Heap(Box<str>),
}

impl StoredSubject {
    fn new(subject: Option<String>) -> Self {
        match subject {
            None => Self::None,
            Some(subject) if subject.len() <= INLINE_SUBJECT => {
                let mut bytes = [0; INLINE_SUBJECT];
                bytes[..subject.len()].copy_from_slice(subject.as_bytes());
                Self::Inline {
                    // At most INLINE_SUBJECT, which fits a u8.
                    len: subject.len() as u8,
                    bytes,
                }
            }
            Some(subject) => Self::Heap(subject.into_boxed_str()),
        }
    }

    fn to_owned_string(&self) -> Result<Option<String>, StoreError> {
        match self {
            Self::None => Ok(None),
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .map(|subject| Some(subject.to_owned()))
                .map_err(|_| StoreError::Corrupt("stored subject is not UTF-8")),
            Self::Heap(subject) => Ok(Some(subject.to_string())),
        }
    }
}

/// One challenge, 112 bytes, so that with its lock it fills a 128-byte [`SlotCell`].
struct Slot {
    expires_at: u64,
    /// E.164 digits as an integer (at most 15 digits fit in 50 bits).
    destination: u64,
    /// Older codes of a resent challenge and the tenant. Boxed (one thin pointer): most
    /// challenges have neither.
    extra: Option<Box<Extra>>,
    subject: StoredSubject,
    newest: Digest,
    key_tail: [u8; KEY_TAIL],
    /// The account whose failures its wrong codes count against (from its id).
    account: [u8; 8],
    purpose: u8,
    attempts_left: u8,
    /// `state | channel << 2 | locale << 4 | client_ip_given << 6 | context_bound << 7`
    /// (each tag fits in two bits).
    flags: u8,
}

impl Slot {
    fn free() -> Self {
        Self {
            expires_at: 0,
            destination: 0,
            extra: None,
            subject: StoredSubject::None,
            newest: Digest::from_parts(KeyId(0), [0; 32]),
            key_tail: [0; KEY_TAIL],
            account: [0; 8],
            purpose: 0,
            attempts_left: 0,
            flags: STATE_FREE,
        }
    }

    #[inline]
    fn state(&self) -> u8 {
        self.flags & 0b11
    }

    #[inline]
    fn set_state(&mut self, state: u8) {
        self.flags = (self.flags & !0b11) | state;
    }

    fn channel(&self) -> Option<Channel> {
        Channel::from_tag((self.flags >> 2) & 0b11)
    }

    fn locale(&self) -> Option<Locale> {
        Locale::from_tag((self.flags >> 4) & 0b11)
    }

    fn client_ip_given(&self) -> bool {
        self.flags & FLAG_CLIENT_IP != 0
    }

    fn context_bound(&self) -> bool {
        self.flags & FLAG_CONTEXT != 0
    }

    fn older_codes(&self) -> &[Digest] {
        self.extra.as_ref().map_or(&[], |extra| extra.older.live())
    }

    fn retain_until(&self) -> u64 {
        self.expires_at
            .saturating_add(duration_millis(RETAIN_AFTER_EXPIRY))
    }

    /// Whether this slot is in use under exactly `key` (whose first bytes are this slot's
    /// number), compared in constant time: ids are bearer handles.
    #[inline]
    fn is_keyed(&self, key: &[u8; 16]) -> bool {
        self.state() != STATE_FREE && bool::from(self.key_tail.ct_eq(&key[SLOT_BYTES..]))
    }

    /// The tenant it was started for.
    #[inline]
    fn tenant(&self) -> Option<&str> {
        self.extra
            .as_ref()
            .and_then(|extra| extra.tenant.as_deref())
    }

    /// Holds a challenge (pending or used), as opposed to free or merely reserved.
    #[inline]
    fn holds_challenge(&self) -> bool {
        self.state() == STATE_PENDING || self.state() == STATE_USED
    }

    /// Why this slot cannot verify or take a new code, if it cannot.
    #[inline]
    fn not_pending(&self, now: u64) -> Option<NotPending> {
        if self.state() == STATE_USED {
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

/// A slot with its own lock: exactly two cache lines, aligned to them, so verify fetches
/// two lines no other challenge uses and threads verifying different challenges never wait
/// on each other's lines.
#[repr(C, align(128))]
struct SlotCell {
    slot: Mutex<Slot>,
    /// Zero-sized and placed after the lock, so its address lies in the cell's second
    /// cache line: the only way safe code can name that line to prefetch it.
    second_line: (),
}

impl SlotCell {
    fn free() -> Self {
        Self {
            slot: Mutex::new(Slot::free()),
            second_line: (),
        }
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    /// The slot, locked, if it is reserved or holds a challenge under exactly `key`.
    #[inline]
    fn lock_keyed(&self, key: &[u8; 16]) -> Option<MutexGuard<'_, Slot>> {
        let slot = self.lock();
        slot.is_keyed(key).then_some(slot)
    }

    /// Starts loading both cache lines of the cell without waiting for them; the first
    /// (the lock's) for writing.
    #[inline]
    fn prefetch(&self) {
        #[cfg(all(
            any(target_arch = "x86", target_arch = "x86_64"),
            target_feature = "sse"
        ))]
        {
            safe_arch::prefetch_et0(self);
            safe_arch::prefetch_t0(&self.second_line);
        }
    }
}

/// What few challenges need: codes a resend pushed out, and a tenant.
#[derive(Default)]
struct Extra {
    older: OlderCodes,
    tenant: Option<Box<str>>,
}

/// The codes a resend pushed out of `Slot::newest`, newest first.
struct OlderCodes {
    digests: [Digest; CODES_PER_CHALLENGE - 1],
    len: usize,
}

impl Default for OlderCodes {
    fn default() -> Self {
        Self {
            digests: [Digest::from_parts(KeyId(0), [0; 32]); CODES_PER_CHALLENGE - 1],
            len: 0,
        }
    }
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

type Chunk = Box<[SlotCell; CHUNK_SLOTS]>;

fn new_chunk() -> Chunk {
    let cells: Box<[SlotCell]> = (0..CHUNK_SLOTS).map(|_| SlotCell::free()).collect();
    match cells.try_into() {
        Ok(chunk) => chunk,
        Err(_) => unreachable!("the iterator yields exactly CHUNK_SLOTS cells"),
    }
}

/// The bookkeeping of one shard, under its lock. The slots themselves are not: each has
/// its own.
#[derive(Default)]
struct ShardState {
    /// Slots ever handed out; every slot below this is in a chunk.
    high_water: usize,
    /// Slot numbers below `high_water` that are free again.
    free: Vec<u32>,
    /// Slots holding a challenge (pending or used).
    held: usize,
    next_sweep: u64,
}

/// Keeps a value on cache lines of its own (128 bytes: adjacent-line prefetch pairs 64-byte
/// lines), so writes to it do not slow readers of its neighbours.
#[repr(align(128))]
struct CachePadded<T>(T);

/// One shard: its chunks, which are only ever added (under the lock) and read without it,
/// and apart from them its lock, which starts and sweeps write but verify never takes.
struct Shard {
    chunks: CachePadded<Box<[OnceLock<Chunk>]>>,
    state: CachePadded<Mutex<ShardState>>,
}

impl Shard {
    fn new(chunks: usize) -> Self {
        Self {
            chunks: CachePadded((0..chunks).map(|_| OnceLock::new()).collect()),
            state: CachePadded(Mutex::new(ShardState::default())),
        }
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        lock(&self.state.0)
    }

    #[inline]
    fn cell(&self, number: usize) -> Option<&SlotCell> {
        self.chunks
            .0
            .get(number / CHUNK_SLOTS)
            .and_then(OnceLock::get)
            .map(|chunk| &chunk[number % CHUNK_SLOTS])
    }

    /// A free slot number, growing the shard by a chunk when none is left.
    fn allocate(&self, state: &mut ShardState) -> Result<usize, StoreError> {
        if let Some(number) = state.free.pop() {
            return Ok(number as usize);
        }
        let number = state.high_water;
        let chunk = self
            .chunks
            .0
            .get(number / CHUNK_SLOTS)
            .ok_or(StoreError::Full(
                "every slot of a memory store shard is in use (a store holds about 8.4 million challenges)",
            ))?;
        chunk.get_or_init(new_chunk);
        state.high_water += 1;
        Ok(number)
    }

    /// Frees slot `number` if it is in use and `dead` says so of its contents.
    fn release_if(&self, state: &mut ShardState, number: usize, dead: impl Fn(&Slot) -> bool) {
        let Some(cell) = self.cell(number) else {
            return;
        };
        let mut slot = cell.lock();
        if slot.state() == STATE_FREE || !dead(&slot) {
            return;
        }
        if slot.holds_challenge() {
            state.held -= 1;
        }
        *slot = Slot::free();
        // Slot numbers come from a u32.
        state.free.push(number as u32);
    }

    fn sweep_if_due(&self, state: &mut ShardState, now: u64) {
        if now < state.next_sweep {
            return;
        }
        state.next_sweep = now.saturating_add(SWEEP_INTERVAL_MS);
        self.sweep(state, now);
    }

    fn sweep(&self, state: &mut ShardState, now: u64) {
        for number in 0..state.high_water {
            self.release_if(state, number, |slot| slot.retain_until() <= now);
        }
    }
}

/// An in-process [`OtpStore`]: the default, and the right choice for one instance.
///
/// Clones share the same data. For several instances behind a load balancer use
/// `RedisStore` (feature `redis`).
///
/// Challenge ids of this store carry the number of the slot that holds the challenge (in
/// their first four key bytes; 96 bits stay random), so a lookup is one memory access. A
/// record is therefore only found through an id this store reserved with
/// [`OtpStore::reserve_key`], which [`OtpService`](crate::OtpService) always does. It holds
/// up to about 8.4 million challenges at once; past that, starts fail with a store error.
#[derive(Clone)]
pub struct MemoryStore {
    shards: Arc<[Shard]>,
    limits: Arc<LimitTable>,
    failures: Arc<FailureTable>,
    /// Authenticator-app factors, by account. Always taken after the account's failure
    /// shard, never before, so the two cannot deadlock.
    totp: Arc<Mutex<HashMap<AccountId, TotpFactor>>>,
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
            shards: (0..count).map(|_| Shard::new(MAX_CHUNKS / count)).collect(),
            limits: Arc::new(LimitTable::new(DEFAULT_LIMIT_KEY_CAPACITY)),
            failures: Arc::new(FailureTable::new()),
            totp: Arc::default(),
        }
    }

    /// Bounds the rate-limit keys held at once (default about a million, some 100 MB at
    /// worst). A send that would add a key past the bound fails with
    /// [`StoreError::Full`] until older state expires; refused sends add none.
    pub fn limit_key_capacity(mut self, keys: usize) -> Self {
        self.limits = Arc::new(LimitTable::new(keys));
        self
    }

    /// Challenges held, live or kept for a while after they ended.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().held).sum()
    }

    /// Whether no challenge is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rate-limit keys held.
    pub fn limit_keys(&self) -> usize {
        self.limits.len()
    }

    /// Drops every record and rate-limit state that no longer matters at `now`. Writes do
    /// this on their own every few seconds per shard; call it to free memory sooner.
    pub fn sweep(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            shard.sweep(&mut shard.lock(), now.as_millis());
        }
        self.limits.sweep(now);
        self.failures.sweep(now);
    }

    /// The one atomic step behind a TOTP check: refuses past the failure cap or without a
    /// factor, else lets `spend` consume the step or recovery code (`true`: accepted, and
    /// the account's failures cleared; `false`: used before). Failure shard first, then
    /// the factors, as everywhere.
    fn totp_gate(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
        spend: impl FnOnce(&mut TotpFactor) -> bool,
    ) -> StepDecision {
        let mut failures = self.failures.lock(account, now);
        if failures.count(account, now) >= cap.max_consecutive.get() {
            return StepDecision::AccountLocked;
        }
        let mut factors = lock_totp(&self.totp);
        let Some(factor) = factors.get_mut(&account).filter(|f| !f.is_disabled()) else {
            return StepDecision::NotEnrolled;
        };
        if !spend(factor) {
            return StepDecision::Replayed;
        }
        failures.clear(account);
        StepDecision::Accepted
    }

    /// Accounts with failed verifications on record.
    pub fn accounts_with_failures(&self) -> usize {
        self.failures.len()
    }

    #[inline]
    fn shard_for(&self, key: &[u8; 16]) -> &Shard {
        let mask = self.shards.len() - 1;
        &self.shards[usize::from(key[15]) & mask]
    }

    /// The cell `key`'s slot number names, if that slot exists.
    #[inline]
    fn cell(&self, key: &[u8; 16]) -> Option<&SlotCell> {
        self.shard_for(key).cell(slot_number(key))
    }

    /// The slot `key` names, locked, if it is reserved or holds a challenge under this key.
    #[inline]
    fn find(&self, key: &[u8; 16]) -> Option<MutexGuard<'_, Slot>> {
        self.cell(key)?.lock_keyed(key)
    }

    /// The slot `key` names, locked, if it holds a challenge under this key.
    #[inline]
    fn find_challenge(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
    ) -> Option<MutexGuard<'_, Slot>> {
        let key = id.store_key();
        challenge_in(self.cell(&key), &key, id.account(), tenant)
    }
}

/// A poisoned lock only means another thread panicked mid-operation; every operation
/// leaves a shard or slot consistent at each step, so carry on with its data.
#[inline]
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn destination_to_int(destination: &PhoneNumber) -> Result<u64, StoreError> {
    destination
        .e164_digits()
        .parse()
        .map_err(|_| StoreError::Corrupt("destination is not numeric"))
}

/// A poisoned lock only means a thread panicked mid-operation; each operation leaves the
/// map consistent, so carry on with its data.
fn lock_totp(
    mutex: &Mutex<HashMap<AccountId, TotpFactor>>,
) -> MutexGuard<'_, HashMap<AccountId, TotpFactor>> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn pending_from(slot: &Slot) -> Result<PendingRecord, StoreError> {
    let destination = PhoneNumber::parse(&format!("+{}", slot.destination))
        .map_err(|_| StoreError::Corrupt("stored destination no longer parses"))?;
    Ok(PendingRecord {
        destination: StoredDestination::Number(destination),
        channel: slot.channel().ok_or(StoreError::Corrupt("channel"))?,
        locale: slot.locale().ok_or(StoreError::Corrupt("locale"))?,
        purpose: Purpose::from_tag(slot.purpose).ok_or(StoreError::Corrupt("purpose"))?,
        subject: slot.subject.to_owned_string()?,
        tenant: slot.tenant().map(str::to_owned),
        client_ip_given: slot.client_ip_given(),
        context_bound: slot.context_bound(),
        expires_at: Timestamp::from_millis(slot.expires_at),
    })
}

/// The whole of `check`, given the cell `id`'s slot number names.
#[inline]
fn check_cell(
    cell: Option<&SlotCell>,
    id: &ChallengeId,
    tenant: Option<&str>,
    candidates: &[Digest],
    failures: &FailureTable,
    cap: FailureCap,
    now: Timestamp,
) -> Result<VerifyOutcome, StoreError> {
    let account = id.account();
    match challenge_in(cell, &id.store_key(), account, tenant) {
        Some(mut slot) => check_slot(&mut slot, account, candidates, failures, cap, now),
        None => Ok(VerifyOutcome::NotFound),
    }
}

/// `cell`'s slot, locked, if it holds a challenge (pending or used) under exactly `key`
/// for `account` and `tenant` (an id whose account bytes were changed finds nothing, and
/// neither does another tenant).
#[inline]
fn challenge_in<'a>(
    cell: Option<&'a SlotCell>,
    key: &[u8; 16],
    account: AccountId,
    tenant: Option<&str>,
) -> Option<MutexGuard<'a, Slot>> {
    cell?.lock_keyed(key).filter(|slot| {
        slot.holds_challenge() && slot.account == account.0 && slot.tenant() == tenant
    })
}

/// Under the slot's lock, and the account's failure shard's inside it (always in this
/// order): the account's cap, the compare, and the count of the outcome, in one step.
#[inline]
fn check_slot(
    slot: &mut Slot,
    account: AccountId,
    candidates: &[Digest],
    failures: &FailureTable,
    cap: FailureCap,
    now: Timestamp,
) -> Result<VerifyOutcome, StoreError> {
    if let Some(reason) = slot.not_pending(now.as_millis()) {
        return Ok(reason.into());
    }
    let mut account_failures = failures.lock(account, now);
    if account_failures.count(account, now) >= cap.max_consecutive.get() {
        return Ok(VerifyOutcome::AccountLocked);
    }
    let mut matched = Digest::any_match(std::slice::from_ref(&slot.newest), candidates);
    matched |= Digest::any_match(slot.older_codes(), candidates);
    if matched {
        account_failures.clear(account);
        drop(account_failures);
        slot.set_state(STATE_USED);
        let purpose = Purpose::from_tag(slot.purpose).ok_or(StoreError::Corrupt("purpose"))?;
        return Ok(VerifyOutcome::Verified {
            purpose,
            subject: slot.subject.to_owned_string()?,
        });
    }
    account_failures.record_failure(account, cap, now);
    slot.attempts_left -= 1;
    Ok(VerifyOutcome::Mismatch {
        attempts_left: slot.attempts_left,
    })
}

#[async_trait]
impl OtpStore for MemoryStore {
    fn reserve_key(&self, random: [u8; 16], now: Timestamp) -> Result<[u8; 16], StoreError> {
        let mut key = random;
        let shard = self.shard_for(&key);
        let mut state = shard.lock();
        shard.sweep_if_due(&mut state, now.as_millis());
        let number = shard.allocate(&mut state)?;
        let cell = shard
            .cell(number)
            .ok_or(StoreError::Corrupt("allocated slot is missing"))?;
        // Numbers below MAX_CHUNKS * CHUNK_SLOTS fit in a u32.
        key[..SLOT_BYTES].copy_from_slice(&(number as u32).to_le_bytes());
        let mut slot = cell.lock();
        slot.key_tail.copy_from_slice(&key[SLOT_BYTES..]);
        slot.set_state(STATE_RESERVED);
        // Kept like an expired record, then swept, if no insert follows.
        slot.expires_at = now.as_millis();
        Ok(key)
    }

    async fn insert(&self, challenge: ChallengeRecord, _now: Timestamp) -> Result<(), StoreError> {
        let key = challenge.id.store_key();
        let destination = destination_to_int(&challenge.destination)?;
        let mut state = self.shard_for(&key).lock();
        let mut slot = self.find(&key).ok_or(StoreError::UnreservedKey)?;
        if slot.state() != STATE_RESERVED {
            return Err(StoreError::Duplicate);
        }
        *slot = Slot {
            expires_at: challenge.expires_at.as_millis(),
            destination,
            extra: challenge.tenant.map(|tenant| {
                Box::new(Extra {
                    older: OlderCodes::default(),
                    tenant: Some(tenant.into_boxed_str()),
                })
            }),
            subject: StoredSubject::new(challenge.subject),
            newest: challenge.digest,
            key_tail: slot.key_tail,
            account: challenge.id.account().0,
            purpose: challenge.purpose.to_tag(),
            attempts_left: challenge.attempts_left,
            flags: STATE_PENDING
                | challenge.channel.to_tag() << 2
                | challenge.locale.to_tag() << 4
                | if challenge.client_ip_given {
                    FLAG_CLIENT_IP
                } else {
                    0
                }
                | if challenge.context_bound {
                    FLAG_CONTEXT
                } else {
                    0
                },
        };
        state.held += 1;
        Ok(())
    }

    async fn check(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        let cell = self.cell(&id.store_key());
        check_cell(cell, id, tenant, candidates, &self.failures, cap, now)
    }

    /// Prefetches the slot, then runs `prepare` (the HMAC and the clock) while it loads. No
    /// shard lock is taken, only the slot's own.
    #[inline]
    fn check_prepared(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        cap: FailureCap,
        prepare: &mut dyn FnMut() -> (Candidates, Timestamp),
    ) -> Option<Result<VerifyOutcome, StoreError>> {
        let cell = self.cell(&id.store_key());
        if let Some(cell) = cell {
            cell.prefetch();
            self.failures.prefetch(id.account());
        }
        let (candidates, now) = prepare();
        Some(check_cell(
            cell,
            id,
            tenant,
            candidates.as_slice(),
            &self.failures,
            cap,
            now,
        ))
    }

    async fn pending(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError> {
        let Some(slot) = self.find_challenge(id, tenant) else {
            return Ok(Err(NotPending::NotFound));
        };
        match slot.not_pending(now.as_millis()) {
            Some(reason) => Ok(Err(reason)),
            None => pending_from(&slot).map(Ok),
        }
    }

    async fn add_code(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        let Some(mut slot) = self.find_challenge(id, tenant) else {
            return Ok(Err(NotPending::NotFound));
        };
        if let Some(reason) = slot.not_pending(now.as_millis()) {
            return Ok(Err(reason));
        }
        let previous = std::mem::replace(&mut slot.newest, digest);
        slot.extra
            .get_or_insert_with(Box::default)
            .older
            .push_newest(previous);
        Ok(Ok(()))
    }

    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        let key = id.store_key();
        let shard = self.shard_for(&key);
        let mut state = shard.lock();
        shard.release_if(&mut state, slot_number(&key), |slot| slot.is_keyed(&key));
        Ok(())
    }

    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError> {
        self.limits.throttle(limits, now)
    }

    async fn release_limits(&self, keys: &[LimitKey]) -> Result<(), StoreError> {
        self.limits.release(keys);
        Ok(())
    }

    async fn credit_conversions(
        &self,
        keys: &[(LimitKey, u64)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.limits.credit(keys, now);
        Ok(())
    }

    async fn conversion_counts(
        &self,
        key: &LimitKey,
        bucket_millis: u64,
        now: Timestamp,
    ) -> Result<Counts, StoreError> {
        Ok(self.limits.counts(key, bucket_millis, now))
    }

    async fn budget_used(&self, keys: &[LimitKey], now: Timestamp) -> Result<Vec<u64>, StoreError> {
        Ok(self.limits.budget_used(keys, now))
    }

    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        Ok(lock_totp(&self.totp).get(&account).cloned())
    }

    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        Ok(lock_totp(&self.totp)
            .get(&account)
            .map(|factor| (factor.sealed_secret.clone(), factor.confirmed)))
    }

    async fn put_totp_factor(
        &self,
        account: AccountId,
        factor: TotpFactor,
        when: FactorWrite,
    ) -> Result<bool, StoreError> {
        let mut factors = lock_totp(&self.totp);
        let allowed = match (factors.get(&account), when) {
            (None, _) => true,
            (Some(_), FactorWrite::IfAbsent) => false,
            (Some(held), FactorWrite::UnlessConfirmed) => !held.confirmed,
            (Some(_), FactorWrite::Replace) => true,
        };
        if allowed {
            factors.insert(account, factor);
        }
        Ok(allowed)
    }

    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        lock_totp(&self.totp).remove(&account);
        Ok(())
    }

    async fn update_totp_factor(
        &self,
        account: AccountId,
        expected_secret: &[u8],
        confirm: bool,
        resealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let mut factors = lock_totp(&self.totp);
        let Some(factor) = factors
            .get_mut(&account)
            .filter(|f| f.sealed_secret == expected_secret)
        else {
            return Ok(false);
        };
        factor.confirmed |= confirm;
        if let Some(resealed) = resealed {
            factor.sealed_secret = resealed;
        }
        Ok(true)
    }

    async fn accept_totp_step(
        &self,
        account: AccountId,
        step: u64,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        Ok(self.totp_gate(account, cap, now, |factor| {
            if factor.last_step.is_some_and(|last| last >= step) {
                return false;
            }
            factor.last_step = Some(step);
            true
        }))
    }

    async fn use_recovery_code(
        &self,
        account: AccountId,
        digests: &[[u8; 32]],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        Ok(self.totp_gate(account, cap, now, |factor| {
            match factor
                .recovery
                .iter()
                .position(|held| digests.contains(held))
            {
                Some(at) => {
                    factor.recovery.swap_remove(at);
                    true
                }
                None => false,
            }
        }))
    }

    async fn count_failure(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let mut failures = self.failures.lock(account, now);
        failures.record_failure(account, cap, now);
        Ok(failures.count(account, now))
    }

    async fn destination(&self, id: &ChallengeId) -> Result<Option<StoredDestination>, StoreError> {
        let key = id.store_key();
        let slot = self
            .cell(&key)
            .and_then(|cell| cell.lock_keyed(&key))
            .filter(|slot| slot.holds_challenge() && slot.account == id.account().0);
        match slot {
            Some(slot) => pending_from(&slot).map(|record| Some(record.destination)),
            None => Ok(None),
        }
    }

    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError> {
        Ok(self.failures.lock(account, now).count(account, now))
    }

    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError> {
        self.failures.shard(account).clear(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_with_its_lock_is_two_aligned_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 112);
        assert_eq!(std::mem::size_of::<SlotCell>(), 128);
        assert_eq!(std::mem::align_of::<SlotCell>(), 128);
        // `prefetch` names the second line through this field.
        let offset = std::mem::offset_of!(SlotCell, second_line);
        assert!((64..128).contains(&offset), "second_line at {offset}");
    }

    #[test]
    fn flags_keep_state_channel_and_locale_apart() {
        let mut slot = Slot::free();
        slot.flags = STATE_PENDING | Channel::Voice.to_tag() << 2 | Locale::Ja.to_tag() << 4;
        slot.set_state(STATE_USED);
        assert_eq!(slot.state(), STATE_USED);
        assert_eq!(slot.channel(), Some(Channel::Voice));
        assert_eq!(slot.locale(), Some(Locale::Ja));
    }

    #[test]
    fn subjects_inline_up_to_the_limit_and_on_the_heap_beyond() -> Result<(), StoreError> {
        for len in [
            0,
            1,
            INLINE_SUBJECT - 1,
            INLINE_SUBJECT,
            INLINE_SUBJECT + 1,
            300,
        ] {
            let subject = "é".repeat(len / 2) + &"x".repeat(len % 2);
            assert_eq!(subject.len(), len);
            let stored = StoredSubject::new(Some(subject.clone()));
            assert_eq!(
                matches!(stored, StoredSubject::Inline { .. }),
                len <= INLINE_SUBJECT,
                "length {len}"
            );
            assert_eq!(stored.to_owned_string()?, Some(subject));
        }
        assert_eq!(StoredSubject::new(None).to_owned_string()?, None);
        Ok(())
    }
}
