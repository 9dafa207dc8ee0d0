//! Rate-limit state of the [`MemoryStore`](super::MemoryStore): one GCRA arrival time or
//! one backoff streak per key, in shards, bounded and swept.
//!
//! A send's limits are decided together and charged together: the shards its keys live in
//! are locked in ascending order (so two sends never wait on each other in a cycle), every
//! limit is decided, and only if all allow is any state written. A refused request writes
//! nothing, so it cannot grow the table or spend anyone's budget.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use super::StoreError;
use crate::clock::Timestamp;
use crate::limit::{
    Admission, BackoffState, ConversionState, Counts, Decision, Limit, LimitKey, Rule, backoff,
    conversion, credit, gcra, spend,
};

/// Default bound on rate-limit keys held at once (about 100 MB at worst). Past it, sends
/// that need a new key fail with [`StoreError::Full`] until old state expires.
pub const DEFAULT_LIMIT_KEY_CAPACITY: usize = 1 << 20;
/// How often (in store time) a shard drops expired state when it is next written.
const SWEEP_INTERVAL_MS: u64 = 10_000;
const SHARDS: usize = 64;

/// One key's state, and until when it matters (after that it equals "never seen").
#[derive(Clone, Copy)]
enum State {
    /// A GCRA theoretical arrival time (ms), which is also its expiry.
    Tat(u64),
    /// A backoff streak.
    Backoff { state: BackoffState, expires: u64 },
    /// A budget's use in its window.
    Used { used: u64, expires: u64 },
    /// The conversion guard's counts.
    Conversion {
        state: ConversionState,
        expires: u64,
    },
}

impl State {
    fn expires(&self) -> u64 {
        match self {
            Self::Tat(tat) => *tat,
            Self::Backoff { expires, .. }
            | Self::Used { expires, .. }
            | Self::Conversion { expires, .. } => *expires,
        }
    }
}

#[derive(Default)]
struct LimitShard {
    tats: HashMap<Box<str>, State>,
    next_sweep: u64,
}

impl LimitShard {
    fn sweep(&mut self, now: u64) {
        self.tats.retain(|_, state| state.expires() > now);
        self.next_sweep = now.saturating_add(SWEEP_INTERVAL_MS);
    }
}

pub(super) struct LimitTable {
    shards: Box<[Mutex<LimitShard>]>,
    hasher: RandomState,
    capacity_per_shard: usize,
}

impl LimitTable {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LimitShard::default()))
                .collect(),
            hasher: RandomState::new(),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).tats.len()).sum()
    }

    /// Forgets `keys`' state, as if they had never been charged.
    pub(super) fn release(&self, keys: &[LimitKey]) {
        for key in keys {
            lock(&self.shards[self.shard_of(key.as_str())])
                .tats
                .remove(key.as_str());
        }
    }

    pub(super) fn sweep(&self, now: Timestamp) {
        for shard in self.shards.iter() {
            lock(shard).sweep(now.as_millis());
        }
    }

    pub(super) fn throttle(
        &self,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<Admission, StoreError> {
        let now_ms = now.as_millis();
        let shard_of: Vec<usize> = limits
            .iter()
            .map(|limit| self.shard_of(limit.key.as_str()))
            .collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, LimitShard>)> = order
            .into_iter()
            .map(|index| (index, lock(&self.shards[index])))
            .collect();
        for (_, shard) in &mut guards {
            if now_ms >= shard.next_sweep {
                shard.sweep(now_ms);
            }
        }
        let guard_of = |shard: usize| guards.iter().position(|(index, _)| *index == shard);

        // Decide every limit before writing any.
        let mut new_tats = Vec::with_capacity(limits.len());
        for (limit, &shard) in limits.iter().zip(&shard_of) {
            let Some(at) = guard_of(shard) else {
                return Err(StoreError::Corrupt("limit shard was not locked"));
            };
            let stored = guards[at].1.tats.get(limit.key.as_str()).copied();
            let live = stored.filter(|state| state.expires() > now_ms);
            let (decision, state) = match limit.rule {
                Rule::Rate(quota) => {
                    let tat = match live {
                        Some(State::Tat(tat)) => Some(tat),
                        _ => None,
                    };
                    let step = gcra(tat, quota, now);
                    (step.decision, State::Tat(step.new_tat_millis))
                }
                Rule::Backoff {
                    schedule,
                    jitter_permille,
                } => {
                    let streak = match live {
                        Some(State::Backoff { state, .. }) => Some(state),
                        _ => None,
                    };
                    let step = backoff(streak, &schedule, jitter_permille, now);
                    let expires = now_ms.saturating_add(step.ttl_millis);
                    (
                        step.decision,
                        State::Backoff {
                            state: step.state,
                            expires,
                        },
                    )
                }
                Rule::Budget {
                    cap,
                    amount,
                    resets_at_millis,
                } => {
                    let used = match live {
                        Some(State::Used { used, .. }) => Some(used),
                        _ => None,
                    };
                    let step = spend(used, cap, amount, resets_at_millis, now);
                    let expires = now_ms.saturating_add(step.ttl_millis);
                    (
                        step.decision,
                        State::Used {
                            used: step.used,
                            expires,
                        },
                    )
                }
                Rule::Conversion(rule) => {
                    let counts = match live {
                        Some(State::Conversion { state, .. }) => Some(state),
                        _ => None,
                    };
                    let step = conversion(counts, rule, now);
                    let expires = now_ms.saturating_add(step.ttl_millis);
                    (
                        step.decision,
                        State::Conversion {
                            state: step.state,
                            expires,
                        },
                    )
                }
            };
            if let Decision::Limited { retry_after } = decision {
                return Ok(Admission::Limited {
                    limit: limit.key.kind(),
                    retry_after,
                    index: new_tats.len(),
                });
            }
            new_tats.push((at, state));
        }

        // Room for the keys this send adds, or nothing is written.
        for (at, shard) in guards.iter_mut().enumerate() {
            let shard = &mut shard.1;
            let added = |shard: &LimitShard| {
                limits
                    .iter()
                    .zip(&new_tats)
                    .filter(|(limit, (owner, _))| {
                        *owner == at && !shard.tats.contains_key(limit.key.as_str())
                    })
                    .count()
            };
            if shard.tats.len() + added(shard) > self.capacity_per_shard {
                shard.sweep(now_ms);
                if shard.tats.len() + added(shard) > self.capacity_per_shard {
                    return Err(StoreError::Full(
                        "the memory store holds as many rate-limit keys as it may",
                    ));
                }
            }
        }

        for (limit, (at, tat)) in limits.iter().zip(new_tats) {
            let tats = &mut guards[at].1.tats;
            match tats.get_mut(limit.key.as_str()) {
                Some(stored) => *stored = tat,
                None => {
                    tats.insert(limit.key.as_str().into(), tat);
                }
            }
        }
        Ok(Admission::Allowed)
    }

    /// Counts one verification on each guard key.
    pub(super) fn credit(&self, keys: &[(LimitKey, u64)], now: Timestamp) {
        let now_ms = now.as_millis();
        for (key, bucket_millis) in keys {
            let mut shard = lock(&self.shards[self.shard_of(key.as_str())]);
            let stored = match shard.tats.get(key.as_str()) {
                Some(State::Conversion { state, expires }) if *expires > now_ms => Some(*state),
                _ => None,
            };
            let state = credit(stored, *bucket_millis, now);
            let expires = now_ms.saturating_add(state.ttl_millis(*bucket_millis, now));
            // A verification for a key the table has no room for is dropped: it can only
            // make the guard stricter, never let a send through.
            if shard.tats.len() < self.capacity_per_shard || shard.tats.contains_key(key.as_str()) {
                shard
                    .tats
                    .insert(key.as_str().into(), State::Conversion { state, expires });
            }
        }
    }

    /// What each budget key has used in its window now (0 for one never charged or
    /// expired). Reads only: it never creates state.
    pub(super) fn budget_used(&self, keys: &[LimitKey], now: Timestamp) -> Vec<u64> {
        keys.iter()
            .map(|key| {
                let shard = lock(&self.shards[self.shard_of(key.as_str())]);
                match shard.tats.get(key.as_str()) {
                    Some(State::Used { used, expires }) if *expires > now.as_millis() => *used,
                    _ => 0,
                }
            })
            .collect()
    }

    /// One guard key's counts now.
    pub(super) fn counts(&self, key: &LimitKey, bucket_millis: u64, now: Timestamp) -> Counts {
        let shard = lock(&self.shards[self.shard_of(key.as_str())]);
        match shard.tats.get(key.as_str()) {
            Some(State::Conversion { state, expires }) if *expires > now.as_millis() => {
                state.rolled(bucket_millis, now).counts(bucket_millis, now)
            }
            _ => Counts::default(),
        }
    }
}

/// A poisoned lock only means another thread panicked mid-operation; the table is
/// consistent between statements, so carry on with its data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
