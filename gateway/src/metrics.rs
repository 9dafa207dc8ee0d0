//! The gateway's own counters: requests by endpoint and outcome, and their durations.
//! Rendered with the provider router's metrics at `GET /metrics` (Prometheus text format
//! 0.0.4).
//!
//! Okta's own hook metrics map onto these: total = the sum of
//! `phone_otp_gateway_requests_total{endpoint="okta_telephony"}`, success = its
//! `outcome="delivered"` series, failure = the rest, mean duration =
//! `..._request_duration_seconds_sum / _count`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use phone_otp::{
    BreakerStatus, BudgetCap, BudgetScope, BudgetUse, LATENCY_BUCKETS as PROVIDER_BUCKETS,
    RouterMetrics,
};

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
    /// Delivery receipts by (provider, country, delivered).
    receipts: BTreeMap<(&'static str, String, bool), u64>,
    /// Receipt callbacks refused (bad signature or token), by provider.
    receipts_refused: BTreeMap<&'static str, u64>,
    /// Failed authentications (no, malformed, unknown or wrong credentials).
    auth_failures: u64,
    /// Requests refused because their network failed authentication too often.
    auth_throttled: u64,
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

    /// Counts one delivery receipt.
    pub(crate) fn record_receipt(&self, provider: &'static str, country: &str, delivered: bool) {
        let mut counters = self.lock();
        *counters
            .receipts
            .entry((provider, country.to_owned(), delivered))
            .or_default() += 1;
    }

    /// Counts a failed authentication.
    pub(crate) fn record_auth_failure(&self) {
        self.lock().auth_failures += 1;
    }

    /// Counts a request refused before authentication (its network failed too often).
    pub(crate) fn record_auth_throttled(&self) {
        self.lock().auth_throttled += 1;
    }

    /// Counts a receipt callback refused for its signature or token.
    pub(crate) fn record_receipt_refused(&self, provider: &'static str) {
        *self.lock().receipts_refused.entry(provider).or_default() += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Prometheus text of these counters, the library's refusals per limit, and, if
    /// given, a router's.
    pub fn render(
        &self,
        router: Option<&RouterMetrics>,
        refusals: &[(phone_otp::LimitKind, u64)],
    ) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "phone_otp_refusals_total",
            "counter",
            "Sends refused by each limit (conversion: the SMS-pumping guard).",
        );
        for (limit, n) in refusals {
            let _ = writeln!(out, "phone_otp_refusals_total{{limit=\"{limit}\"}} {n}");
        }
        {
            let counters = self
                .inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            header(
                &mut out,
                "phone_otp_gateway_requests_total",
                "counter",
                "Requests by endpoint and outcome.",
            );
            for ((endpoint, outcome), n) in &counters.requests {
                let _ = writeln!(
                    out,
                    "phone_otp_gateway_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}"
                );
            }
            header(
                &mut out,
                "phone_otp_gateway_request_duration_seconds",
                "histogram",
                "Time to answer, by endpoint.",
            );
            for (endpoint, histogram) in &counters.durations {
                let labels = format!("endpoint=\"{endpoint}\"");
                let bounds = LATENCY_BUCKETS.iter().map(|b| b.to_string());
                histogram_lines(
                    &mut out,
                    "phone_otp_gateway_request_duration_seconds",
                    &labels,
                    bounds.zip(histogram.buckets),
                    histogram.sum,
                    histogram.count,
                );
            }
            header(
                &mut out,
                "phone_otp_delivery_reports_total",
                "counter",
                "Delivery receipts by provider, country and result.",
            );
            for ((provider, country, delivered), n) in &counters.receipts {
                let result = if *delivered {
                    "delivered"
                } else {
                    "undelivered"
                };
                let _ = writeln!(
                    out,
                    "phone_otp_delivery_reports_total{{provider=\"{provider}\",country=\"{}\",result=\"{result}\"}} {n}",
                    label(country)
                );
            }
            header(
                &mut out,
                "phone_otp_gateway_auth_failures_total",
                "counter",
                "Failed authentications: no, malformed, unknown or wrong credentials.",
            );
            let _ = writeln!(
                out,
                "phone_otp_gateway_auth_failures_total {}",
                counters.auth_failures
            );
            header(
                &mut out,
                "phone_otp_gateway_auth_throttled_total",
                "counter",
                "Requests refused unread: their network failed authentication too often.",
            );
            let _ = writeln!(
                out,
                "phone_otp_gateway_auth_throttled_total {}",
                counters.auth_throttled
            );
            header(
                &mut out,
                "phone_otp_delivery_reports_refused_total",
                "counter",
                "Receipt callbacks refused for a bad signature or token.",
            );
            for (provider, n) in &counters.receipts_refused {
                let _ = writeln!(
                    out,
                    "phone_otp_delivery_reports_refused_total{{provider=\"{provider}\"}} {n}"
                );
            }
        }
        if let Some(router) = router {
            render_router(&mut out, router);
        }
        out
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

/// The conversion guard's refusals by the level that refused (prefix, range, country over
/// the short window, country over the day).
pub fn render_guard_levels(out: &mut String, levels: &[(phone_otp::GuardLevel, u64)]) {
    header(
        out,
        "phone_otp_guard_refusals_total",
        "counter",
        "Sends the conversion guard refused, by the level whose rule refused.",
    );
    for (level, n) in levels {
        let _ = writeln!(
            out,
            "phone_otp_guard_refusals_total{{level=\"{}\"}} {n}",
            level.as_str()
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram_lines(
    out: &mut String,
    name: &str,
    labels: &str,
    buckets: impl Iterator<Item = (String, u64)>,
    sum: f64,
    count: u64,
) {
    for (bound, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The database's write health: up or not (as the last write left it), and failed writes
/// per fault (`disk_full`, `unreachable`...), so a full disk shows before a client does.
pub(crate) fn render_database(out: &mut String, db: &crate::db::Db) {
    header(
        out,
        "phone_otp_gateway_database_up",
        "gauge",
        "1 while the last database write succeeded, 0 while writes fail (sends are refused).",
    );
    let up = u8::from(db.last_write() == crate::db::DbState::Up);
    let _ = writeln!(out, "phone_otp_gateway_database_up {up}");
    header(
        out,
        "phone_otp_gateway_database_write_failures_total",
        "counter",
        "Rows (audit records, probes) the database failed to write, by fault.",
    );
    for (fault, n) in db.write_failures() {
        let _ = writeln!(
            out,
            "phone_otp_gateway_database_write_failures_total{{fault=\"{}\"}} {n}",
            fault.as_str()
        );
    }
}

fn render_router(out: &mut String, router: &RouterMetrics) {
    header(
        out,
        "phone_otp_provider_attempts_total",
        "counter",
        "Sends handed to each provider.",
    );
    for p in &router.providers {
        let _ = writeln!(
            out,
            "phone_otp_provider_attempts_total{{provider=\"{}\"}} {}",
            label(&p.provider),
            p.attempts
        );
    }
    header(
        out,
        "phone_otp_provider_successes_total",
        "counter",
        "Sends each provider accepted.",
    );
    for p in &router.providers {
        let _ = writeln!(
            out,
            "phone_otp_provider_successes_total{{provider=\"{}\"}} {}",
            label(&p.provider),
            p.successes
        );
    }
    header(
        out,
        "phone_otp_provider_failures_total",
        "counter",
        "Failed sends by provider and kind.",
    );
    for p in &router.providers {
        for (kind, n) in &p.failures {
            let _ = writeln!(
                out,
                "phone_otp_provider_failures_total{{provider=\"{}\",kind=\"{kind}\"}} {n}",
                label(&p.provider)
            );
        }
    }
    header(
        out,
        "phone_otp_provider_skipped_total",
        "counter",
        "Sends that skipped a provider whose breaker was open.",
    );
    for p in &router.providers {
        let _ = writeln!(
            out,
            "phone_otp_provider_skipped_total{{provider=\"{}\"}} {}",
            label(&p.provider),
            p.skipped_breaker_open
        );
    }
    header(
        out,
        "phone_otp_provider_breaker_state",
        "gauge",
        "Each provider's circuit breaker now: 1 for its state (closed, open, half_open).",
    );
    for p in &router.providers {
        for (name, state) in [
            ("closed", BreakerStatus::Closed),
            ("open", BreakerStatus::Open),
            ("half_open", BreakerStatus::HalfOpen),
        ] {
            let _ = writeln!(
                out,
                "phone_otp_provider_breaker_state{{provider=\"{}\",state=\"{name}\"}} {}",
                label(&p.provider),
                u8::from(p.breaker == state)
            );
        }
    }
    header(
        out,
        "phone_otp_provider_country_breakers_open",
        "gauge",
        "Destination countries whose breaker for this provider is open or probing.",
    );
    for p in &router.providers {
        let _ = writeln!(
            out,
            "phone_otp_provider_country_breakers_open{{provider=\"{}\"}} {}",
            label(&p.provider),
            p.destination_breakers
                .values()
                .filter(|status| **status != BreakerStatus::Closed)
                .count()
        );
    }
    header(
        out,
        "phone_otp_provider_possible_duplicates_total",
        "counter",
        "Sends a provider delivered after an earlier one of the same send timed out (that one may have delivered too).",
    );
    for p in &router.providers {
        let _ = writeln!(
            out,
            "phone_otp_provider_possible_duplicates_total{{provider=\"{}\"}} {}",
            label(&p.provider),
            p.possible_duplicates
        );
    }
    header(
        out,
        "phone_otp_provider_latency_seconds",
        "histogram",
        "Provider call latency.",
    );
    for p in &router.providers {
        let labels = format!("provider=\"{}\"", label(&p.provider));
        let bounds = PROVIDER_BUCKETS.iter().map(|b| b.as_secs_f64().to_string());
        histogram_lines(
            out,
            "phone_otp_provider_latency_seconds",
            &labels,
            bounds.zip(p.latency_buckets),
            p.latency_sum.as_secs_f64(),
            p.attempts,
        );
    }
    header(
        out,
        "phone_otp_country_sends_total",
        "counter",
        "Sends by destination country and result.",
    );
    for c in &router.countries {
        let region = label(&c.region);
        let _ = writeln!(
            out,
            "phone_otp_country_sends_total{{country=\"{region}\",result=\"accepted\"}} {}",
            c.delivered
        );
        let _ = writeln!(
            out,
            "phone_otp_country_sends_total{{country=\"{region}\",result=\"failed\"}} {}",
            c.failed
        );
    }
}

/// Today's use and cap of each daily budget (the store's, shared by every instance), so
/// an alert can fire before a cap refuses sends.
pub(crate) fn render_budgets(out: &mut String, uses: &[BudgetUse]) {
    let labels = |u: &BudgetUse| {
        let scope = match &u.budget.scope {
            BudgetScope::EachTenant => "each_tenant",
            BudgetScope::Tenant(_) => "tenant",
            BudgetScope::EachCountry => "each_country",
            BudgetScope::Country(_) => "country",
            BudgetScope::OtherCountries => "other_countries",
            _ => "total",
        };
        let name = match (&u.budget.scope, &u.of) {
            (_, Some(of)) => of.as_str(),
            (BudgetScope::Tenant(name) | BudgetScope::Country(name), None) => name.as_str(),
            _ => "",
        };
        let unit = match u.budget.per_day {
            BudgetCap::Messages(_) => "messages",
            _ => "micros",
        };
        format!("scope=\"{scope}\",name=\"{}\",unit=\"{unit}\"", label(name))
    };
    header(
        out,
        "phone_otp_budget_used",
        "gauge",
        "Used today under each daily budget: messages, or estimated micros of the price table's currency.",
    );
    for u in uses {
        let _ = writeln!(out, "phone_otp_budget_used{{{}}} {}", labels(u), u.used);
    }
    header(
        out,
        "phone_otp_budget_cap",
        "gauge",
        "Each daily budget's cap, in the unit of phone_otp_budget_used.",
    );
    for u in uses {
        let _ = writeln!(out, "phone_otp_budget_cap{{{}}} {}", labels(u), u.cap);
    }
}
