//! Failed authentications per source network, in this process's memory. A network that
//! keeps presenting wrong credentials (guessing a key, a hook secret or a receipt token)
//! is refused before any credential check or database work until its rate falls back;
//! each network's failures are logged once a minute, never one line per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use phone_otp::{Decision, Quota, Timestamp, gcra};
use tracing::warn;

/// Default: 30 failed authentications a minute per network, then refused until the rate
/// falls back (a real client that mistyped a key fails a few times, not thirty).
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: NonZeroU32 = match NonZeroU32::new(30) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Networks tracked at once; past this, stale ones are swept and new ones wait.
const CAPACITY: usize = 65_536;

/// The source network a failure is counted under: an IPv4 /24 or an IPv6 /48 (what one
/// client can easily hold), or "unknown" when the gateway cannot see the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Network {
    V4([u8; 3]),
    V6([u8; 6]),
    Unknown,
}

impl Network {
    pub(crate) fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Self::V4([a, b, c])
            }
            Some(IpAddr::V6(v6)) => {
                let o = v6.octets();
                Self::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
            None => Self::Unknown,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Self::V6(o) => write!(
                f,
                "{:x}:{:x}:{:x}::/48",
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
                u16::from_be_bytes([o[4], o[5]])
            ),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// GCRA theoretical arrival time of the next failure (ms).
    tat: u64,
    /// The minute (ms / 60,000) the count below is for, and its failures.
    minute: u64,
    in_minute: u32,
}

/// Failed authentications per network.
#[derive(Debug)]
pub(crate) struct AuthFailures {
    quota: Quota,
    table: Mutex<HashMap<Network, Entry>>,
    /// Networks in the table: with none (the usual state) no request takes the lock.
    tracked: AtomicUsize,
}

impl AuthFailures {
    pub(crate) fn new(per_minute: NonZeroU32) -> Self {
        Self {
            quota: Quota::per_minute(per_minute),
            table: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Network, Entry>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long `network` must wait, if it has failed too often to be heard now.
    pub(crate) fn throttled(&self, network: Network, now: Timestamp) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut table = self.lock();
        let tat = table.get(&network)?.tat;
        if tat <= now.as_millis() {
            // Fully recovered: forget it, so the table empties and the fast path returns.
            table.remove(&network);
            self.tracked.store(table.len(), Ordering::Relaxed);
            return None;
        }
        match gcra(Some(tat), self.quota, now).decision {
            Decision::Limited { retry_after } => Some(retry_after),
            _ => None,
        }
    }

    /// Counts one failed authentication from `network`; the first of each minute is
    /// logged with the previous minute's count.
    pub(crate) fn record(&self, network: Network, now: Timestamp) {
        let mut table = self.lock();
        let at = now.as_millis();
        if table.len() >= CAPACITY && !table.contains_key(&network) {
            table.retain(|_, entry| entry.tat > at);
            if table.len() >= CAPACITY {
                return;
            }
        }
        // Stale networks go now and then, so the table does not stay full of them.
        if table.len().is_power_of_two() {
            table.retain(|_, entry| entry.tat > at);
        }
        let minute = at / 60_000;
        let entry = table.entry(network).or_insert(Entry {
            tat: at,
            minute,
            in_minute: 0,
        });
        let step = gcra(Some(entry.tat), self.quota, now);
        entry.tat = step.new_tat_millis;
        if entry.minute != minute {
            if entry.in_minute > 1 {
                warn!(network = %network, failures = entry.in_minute, "failed authentications in the last minute");
            }
            entry.minute = minute;
            entry.in_minute = 0;
        }
        entry.in_minute = entry.in_minute.saturating_add(1);
        if entry.in_minute == 1 {
            warn!(network = %network, "authentication failed");
        }
        if matches!(step.decision, Decision::Limited { .. }) && entry.in_minute % 100 == 1 {
            warn!(network = %network, "too many failed authentications: refusing this network for now");
        }
        // Failures past the quota still push the TAT on, so a flood stays refused.
        if let Decision::Limited { .. } = step.decision {
            entry.tat = entry.tat.saturating_add(interval_millis(self.quota));
        }
        self.tracked.store(table.len(), Ordering::Relaxed);
    }
}

fn interval_millis(quota: Quota) -> u64 {
    u64::try_from(quota.refill_interval().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_throttled_after_its_quota_and_recovers() {
        let failures = AuthFailures::new(NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN));
        let net = Network::of("203.0.113.9".parse().ok());
        assert_eq!(net, Network::of("203.0.113.200".parse().ok()));
        assert_eq!(net.to_string(), "203.0.113.0/24");
        let other = Network::of("2001:db8:1::7".parse().ok());
        assert_eq!(other.to_string(), "2001:db8:1::/48");
        let now = Timestamp::from_millis(1_000_000);
        for _ in 0..3 {
            assert_eq!(failures.throttled(net, now), None);
            failures.record(net, now);
        }
        assert_eq!(failures.throttled(net, now), Some(Duration::from_secs(20)));
        assert_eq!(failures.throttled(other, now), None);
        // Guessing on while throttled keeps it throttled.
        failures.record(net, now);
        assert_eq!(failures.throttled(net, now), Some(Duration::from_secs(40)));
        let later = Timestamp::from_millis(1_000_000 + 40_000);
        assert_eq!(failures.throttled(net, later), None);
        // Once fully recovered it is forgotten, and requests skip the lock again.
        let recovered = Timestamp::from_millis(1_000_000 + 80_000);
        assert_eq!(failures.throttled(net, recovered), None);
        assert_eq!(failures.tracked.load(Ordering::Relaxed), 0);
    }
}
