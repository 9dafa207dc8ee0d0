//! Consecutive failed verifications per account in the [`MemoryStore`](super::MemoryStore).
//!
//! Every verify reads its account's count, and most find none, so the table is built for
//! that: account ids are already uniform keyed hashes, so they index an open-addressing
//! array of 16-byte cells directly (linear probing, no hashing, no tombstones), kept at
//! most half full so a miss ends within a probe or two. Only accounts with failures have a
//! cell; forgotten ones are swept as the table is written, and it grows only when a sweep
//! leaves it over half full.

use std::sync::{Mutex, MutexGuard};

use crate::challenge::AccountId;
use crate::clock::{Timestamp, duration_millis};
use crate::limit::FailureCap;

const SHARDS: usize = 64;
const INITIAL_CELLS: usize = 64;
const SWEEP_INTERVAL_MS: u64 = 10_000;

/// One account's failures. `account == 0` marks an empty cell.
#[derive(Clone, Copy, Default)]
struct Cell {
    account: u64,
    count: u32,
    /// Unix seconds (rounded up) when the count is forgotten: fits a `u32` until 2106.
    forget_at: u32,
}

impl Cell {
    fn live(&self, now_ms: u64) -> bool {
        self.account != 0 && u64::from(self.forget_at) * 1000 > now_ms
    }
}

/// Whether a table of `cells` cells holding `len` accounts needs room for one more.
fn crowded(len: usize, cells: usize) -> bool {
    (len + 1) * 2 > cells
}

/// The key of an account in the table: its id as a number, never 0 (the empty mark).
fn key_of(account: AccountId) -> u64 {
    u64::from_le_bytes(account.0).max(1)
}

/// One shard of the table, locked.
pub(super) struct AccountShard {
    cells: Box<[Cell]>,
    len: usize,
    next_sweep: u64,
}

impl AccountShard {
    fn new() -> Self {
        Self {
            cells: vec![Cell::default(); INITIAL_CELLS].into_boxed_slice(),
            len: 0,
            next_sweep: 0,
        }
    }

    fn mask(&self) -> usize {
        self.cells.len() - 1
    }

    /// Where `key` is, or the empty cell that ends its probe run.
    fn position(&self, key: u64) -> usize {
        // The shard was picked by the low byte; the high bits pick the cell.
        let mut at = (key >> 8) as usize & self.mask();
        loop {
            let cell = &self.cells[at];
            if cell.account == key || cell.account == 0 {
                return at;
            }
            at = (at + 1) & self.mask();
        }
    }

    /// Starts loading the cell where `account`'s probe run starts.
    #[inline]
    fn prefetch(&self, account: AccountId) {
        let home = &self.cells[(key_of(account) >> 8) as usize & self.mask()];
        #[cfg(all(
            any(target_arch = "x86", target_arch = "x86_64"),
            target_feature = "sse"
        ))]
        safe_arch::prefetch_t0(home);
        #[cfg(not(all(
            any(target_arch = "x86", target_arch = "x86_64"),
            target_feature = "sse"
        )))]
        let _ = home;
    }

    /// `account`'s live count.
    #[inline]
    pub(super) fn count(&self, account: AccountId, now: Timestamp) -> u32 {
        let cell = &self.cells[self.position(key_of(account))];
        if cell.live(now.as_millis()) {
            cell.count
        } else {
            0
        }
    }

    /// Counts one more failure; it is forgotten `cap.forget_after` from now.
    pub(super) fn record_failure(&mut self, account: AccountId, cap: FailureCap, now: Timestamp) {
        let now_ms = now.as_millis();
        let count = self.count(account, now).saturating_add(1);
        let forget_at_ms = now_ms.saturating_add(duration_millis(cap.forget_after));
        let forget_at = u32::try_from(forget_at_ms.div_ceil(1000)).unwrap_or(u32::MAX);
        let key = key_of(account);
        let mut at = self.position(key);
        if self.cells[at].account == 0 {
            if crowded(self.len, self.cells.len()) {
                self.make_room(now_ms);
                at = self.position(key);
            }
            self.len += 1;
        }
        self.cells[at] = Cell {
            account: key,
            count,
            forget_at,
        };
    }

    /// Forgets `account`'s failures (a code verified, or a reset).
    #[inline]
    pub(super) fn clear(&mut self, account: AccountId) {
        let at = self.position(key_of(account));
        if self.cells[at].account != 0 {
            self.remove_at(at);
        }
    }

    /// Empties cell `at` and shifts the rest of its probe run back, so every key stays
    /// reachable without tombstones.
    fn remove_at(&mut self, mut hole: usize) {
        self.cells[hole] = Cell::default();
        self.len -= 1;
        let mut at = (hole + 1) & self.mask();
        while self.cells[at].account != 0 {
            let home = (self.cells[at].account >> 8) as usize & self.mask();
            // Move the cell into the hole if the hole lies between its home and it.
            let distance_to_hole = hole.wrapping_sub(home) & self.mask();
            let distance_to_cell = at.wrapping_sub(home) & self.mask();
            if distance_to_hole < distance_to_cell {
                self.cells[hole] = self.cells[at];
                self.cells[at] = Cell::default();
                hole = at;
            }
            at = (at + 1) & self.mask();
        }
    }

    /// Drops forgotten accounts, and doubles the table if it is still crowded.
    fn make_room(&mut self, now_ms: u64) {
        self.sweep(now_ms);
        if crowded(self.len, self.cells.len()) {
            self.rebuild(self.cells.len() * 2, now_ms);
        }
    }

    fn sweep(&mut self, now_ms: u64) {
        self.next_sweep = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        if self
            .cells
            .iter()
            .any(|cell| cell.account != 0 && !cell.live(now_ms))
        {
            self.rebuild(self.cells.len(), now_ms);
        }
    }

    /// Reinserts every live cell into a table of `size` cells.
    fn rebuild(&mut self, size: usize, now_ms: u64) {
        let old = std::mem::replace(
            &mut self.cells,
            vec![Cell::default(); size].into_boxed_slice(),
        );
        self.len = 0;
        for cell in old.iter().filter(|cell| cell.live(now_ms)) {
            let at = self.position(cell.account);
            self.cells[at] = *cell;
            self.len += 1;
        }
    }

    fn sweep_if_due(&mut self, now_ms: u64) {
        if now_ms >= self.next_sweep {
            self.sweep(now_ms);
        }
    }
}

/// A shard's lock and the table's header (where its cells are) on a cache line of their
/// own, so two threads on different shards never share one.
#[repr(align(64))]
struct PaddedShard(Mutex<AccountShard>);

pub(super) struct FailureTable {
    shards: Box<[PaddedShard]>,
}

impl FailureTable {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| PaddedShard(Mutex::new(AccountShard::new())))
                .collect(),
        }
    }

    /// The shard holding `account`, locked.
    #[inline]
    pub(super) fn shard(&self, account: AccountId) -> MutexGuard<'_, AccountShard> {
        lock(&self.shards[key_of(account) as usize % SHARDS].0)
    }

    /// The shard holding `account`, locked, swept if due.
    #[inline]
    pub(super) fn lock(&self, account: AccountId, now: Timestamp) -> MutexGuard<'_, AccountShard> {
        let mut shard = self.shard(account);
        shard.sweep_if_due(now.as_millis());
        shard
    }

    /// Starts loading `account`'s cell, so verify finds its count in cache after the code's
    /// HMAC. Takes the shard lock only for the moment it takes to find the cell's address.
    #[inline]
    pub(super) fn prefetch(&self, account: AccountId) {
        self.shard(account).prefetch(account);
    }

    pub(super) fn sweep(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            lock(&shard.0).sweep(now.as_millis());
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(&shard.0).len).sum()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn cap() -> FailureCap {
        FailureCap::new(NonZeroU32::MIN, Duration::from_secs(60))
    }

    /// Many accounts in one shard (same low byte), so probe runs are long and removals
    /// shift cells back: every account must keep its own count throughout.
    #[test]
    fn counts_survive_collisions_removals_growth_and_sweeps() {
        let mut shard = AccountShard::new();
        let now = Timestamp::from_millis(1_000);
        let account = |i: u64| AccountId(((i << 8) | 7).to_le_bytes());
        // Low byte 0x47 picks the same shard as 7 (71 % 64) but never equals an `account`.
        let colliding = |i: u64| AccountId((((i % 4) << 8) | ((i / 4) << 40) | 0x47).to_le_bytes());
        for i in 0..500 {
            for _ in 0..=(i % 3) {
                shard.record_failure(account(i), cap(), now);
            }
            shard.record_failure(colliding(i), cap(), now);
        }
        for i in (0..500).step_by(2) {
            shard.clear(account(i));
        }
        for i in 0..500 {
            let expected = if i % 2 == 0 { 0 } else { (i % 3 + 1) as u32 };
            assert_eq!(shard.count(account(i), now), expected, "account {i}");
            assert_eq!(shard.count(colliding(i), now), 1, "colliding {i}");
        }
        assert_eq!(shard.len, 750);
        // A minute later all are forgotten, and a sweep empties the table.
        let later = Timestamp::from_millis(61_000);
        assert_eq!(shard.count(account(1), later), 0);
        shard.sweep(later.as_millis());
        assert_eq!(shard.len, 0);
    }
}
