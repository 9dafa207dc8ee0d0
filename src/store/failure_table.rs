//! Consecutive failed verifications per account in the [`MemoryStore`](super::MemoryStore).
//!
//! Only accounts with failures have an entry, and each failure needs a challenge someone
//! paid to start, so the table stays small; a shard drops forgotten entries as it is
//! written, every few seconds of store time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::clock::{Timestamp, duration_millis};
use crate::limit::FailureCap;
use crate::otp::AccountId;

const SHARDS: usize = 64;
const SWEEP_INTERVAL_MS: u64 = 10_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    forget_at: u64,
}

/// One shard of the table, locked.
#[derive(Default)]
pub(super) struct AccountShard {
    counts: HashMap<[u8; 8], Failures>,
    next_sweep: u64,
}

impl AccountShard {
    /// `account`'s live count.
    pub(super) fn count(&self, account: AccountId, now: Timestamp) -> u32 {
        self.counts
            .get(&account.0)
            .filter(|failures| failures.forget_at > now.as_millis())
            .map_or(0, |failures| failures.count)
    }

    /// Counts one more failure; it is forgotten `cap.forget_after` from now.
    pub(super) fn record_failure(&mut self, account: AccountId, cap: FailureCap, now: Timestamp) {
        let now_ms = now.as_millis();
        if now_ms >= self.next_sweep {
            self.sweep(now_ms);
        }
        let count = self.count(account, now).saturating_add(1);
        let forget_at = now_ms.saturating_add(duration_millis(cap.forget_after));
        self.counts.insert(account.0, Failures { count, forget_at });
    }

    /// Forgets `account`'s failures (a code verified, or a reset).
    pub(super) fn clear(&mut self, account: AccountId) {
        self.counts.remove(&account.0);
    }

    fn sweep(&mut self, now_ms: u64) {
        self.counts
            .retain(|_, failures| failures.forget_at > now_ms);
        self.next_sweep = now_ms.saturating_add(SWEEP_INTERVAL_MS);
    }
}

pub(super) struct FailureTable {
    shards: Box<[Mutex<AccountShard>]>,
}

impl FailureTable {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(AccountShard::default()))
                .collect(),
        }
    }

    /// The shard holding `account`, locked. Account ids are keyed hashes, so any byte
    /// spreads them evenly.
    pub(super) fn lock(&self, account: AccountId) -> MutexGuard<'_, AccountShard> {
        lock(&self.shards[usize::from(account.0[0]) % SHARDS])
    }

    pub(super) fn sweep(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            lock(shard).sweep(now.as_millis());
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).counts.len())
            .sum()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
