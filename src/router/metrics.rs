//! Per-provider and per-country counters, and their snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use super::health::BreakerStatus;
use crate::provider::ProviderErrorKind;

/// Upper bounds of the provider latency histogram (Prometheus-style, cumulative).
pub const LATENCY_BUCKETS: [Duration; 10] = [
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(300),
    Duration::from_millis(500),
    Duration::from_millis(750),
    Duration::from_millis(1000),
    Duration::from_millis(1500),
    Duration::from_millis(3000),
];

/// One provider's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetrics {
    /// The provider's name.
    pub provider: String,
    /// Sends handed to it.
    pub attempts: u64,
    /// Sends it accepted.
    pub successes: u64,
    /// Failed sends, by kind name (`"timeout"`, `"auth"`, ...).
    pub failures: BTreeMap<&'static str, u64>,
    /// Sends that skipped it because its breaker was open.
    pub skipped_breaker_open: u64,
    /// Sends it delivered after an earlier provider of the same send timed out (that one
    /// may have delivered too): possible duplicates. Zero unless timeouts move on
    /// ([`Failover::move_on`](crate::Failover::move_on)).
    pub possible_duplicates: u64,
    /// Mean latency of successful sends.
    pub mean_latency: Option<Duration>,
    /// Slowest successful send.
    pub max_latency: Duration,
    /// Calls (successful or not) that took at most each of [`LATENCY_BUCKETS`]:
    /// cumulative, as a Prometheus histogram's buckets.
    pub latency_buckets: [u64; LATENCY_BUCKETS.len()],
    /// Total time of all calls (the histogram's sum; `attempts` is its count).
    pub latency_sum: Duration,
    /// Its circuit breaker for failures of the provider itself, now.
    pub breaker: BreakerStatus,
    /// Destination regions whose breaker for this provider is not closed (refusals about
    /// those destinations, such as geo permissions, opened it).
    pub destination_breakers: BTreeMap<String, BreakerStatus>,
}

impl ProviderMetrics {
    /// Failures of one kind.
    pub fn failures_of(&self, kind: ProviderErrorKind) -> u64 {
        self.failures.get(kind.as_str()).copied().unwrap_or(0)
    }
}

/// One destination country's counters (router sends, not provider attempts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountryMetrics {
    /// ISO region, or `"001"` for non-geographic numbers.
    pub region: String,
    /// Sends routed there.
    pub sends: u64,
    /// Sends some provider accepted.
    pub delivered: u64,
    /// Sends no provider accepted.
    pub failed: u64,
}

/// A snapshot of a router's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterMetrics {
    /// Per provider, in registration order.
    pub providers: Vec<ProviderMetrics>,
    /// Per country, by region code.
    pub countries: Vec<CountryMetrics>,
}

impl RouterMetrics {
    /// The counters of the provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderMetrics> {
        self.providers.iter().find(|p| p.provider == name)
    }

    /// The counters of one region.
    pub fn country(&self, region: &str) -> Option<&CountryMetrics> {
        self.countries.iter().find(|c| c.region == region)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderCounters {
    pub(crate) attempts: u64,
    pub(crate) successes: u64,
    pub(crate) failures: BTreeMap<&'static str, u64>,
    pub(crate) skipped_breaker_open: u64,
    pub(crate) possible_duplicates: u64,
    pub(crate) latency_total: Duration,
    pub(crate) latency_max: Duration,
    pub(crate) latency_buckets: [u64; LATENCY_BUCKETS.len()],
    pub(crate) latency_sum: Duration,
}

impl ProviderCounters {
    /// Adds one call's latency to the histogram.
    pub(crate) fn observe(&mut self, latency: Duration) {
        for (count, bound) in self.latency_buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if latency <= bound {
                *count += 1;
            }
        }
        self.latency_sum += latency;
    }

    pub(crate) fn snapshot(
        &self,
        provider: &str,
        breaker: BreakerStatus,
        destination_breakers: BTreeMap<String, BreakerStatus>,
    ) -> ProviderMetrics {
        let mean_latency = u32::try_from(self.successes)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| self.latency_total / n);
        ProviderMetrics {
            provider: provider.to_owned(),
            attempts: self.attempts,
            successes: self.successes,
            failures: self.failures.clone(),
            skipped_breaker_open: self.skipped_breaker_open,
            possible_duplicates: self.possible_duplicates,
            mean_latency,
            max_latency: self.latency_max,
            latency_buckets: self.latency_buckets,
            latency_sum: self.latency_sum,
            breaker,
            destination_breakers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_is_cumulative() {
        let mut counters = ProviderCounters::default();
        counters.observe(Duration::from_millis(120));
        counters.observe(Duration::from_millis(25));
        counters.observe(Duration::from_secs(10));
        // <=25ms, <=50, <=100: one; <=200 and up to 3 s: two; the 10 s call only in +Inf.
        assert_eq!(counters.latency_buckets, [1, 1, 1, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(counters.latency_sum, Duration::from_millis(10_145));
    }
}
