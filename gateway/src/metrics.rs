//! The gateway's own counters: requests by endpoint and outcome, and their durations.
//! Rendered with the provider router's metrics at `GET /metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
pub(crate) const LATENCY_BUCKETS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Requests per endpoint and outcome, and per-endpoint duration histograms.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Histogram>,
}

/// A Prometheus histogram: cumulative bucket counts, sum and count.
#[derive(Debug, Default, Clone)]
pub(crate) struct Histogram {
    pub(crate) buckets: [u64; LATENCY_BUCKETS.len()],
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

impl GatewayMetrics {
    /// Counts one request to `endpoint` that ended as `outcome`, after `elapsed`.
    pub(crate) fn record(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        let mut counters = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *counters.requests.entry((endpoint, outcome)).or_default() += 1;
        counters
            .durations
            .entry(endpoint)
            .or_default()
            .observe(elapsed);
    }

    /// Requests to `endpoint` that ended as `outcome` so far.
    pub fn requests(&self, endpoint: &str, outcome: &str) -> u64 {
        let counters = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counters
            .requests
            .iter()
            .filter(|((e, o), _)| *e == endpoint && *o == outcome)
            .map(|(_, n)| *n)
            .sum()
    }
}
