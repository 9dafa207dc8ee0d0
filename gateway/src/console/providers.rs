//! `/console/providers`: each provider now, from this instance's router (calls, accepted,
//! latency p50/p95 from its histogram, failures by kind, its breaker and the destinations
//! whose breaker is not closed); and over a chosen range from the audit trail (every
//! instance): sends and delivery receipts per provider and country, and failed attempts
//! per provider, country and kind.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phone_otp::{BreakerStatus, LATENCY_BUCKETS, ProviderMetrics};

use super::abuse::{range, range_form};
use super::html::{Html, Nav};
use super::i18n::Strings;
use super::operator::Operator;
use super::table::{Cell, section};
use crate::db::{AttemptCount, Dimension, UsageReport};
use crate::state::AppState;

/// `GET /console/providers[?from=&to=]`.
pub(crate) async fn providers(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    let (from, to) = match range(raw.as_deref().unwrap_or(""), state.now_millis()) {
        Ok(range) => range,
        Err(reason) => {
            body.alert(&reason);
            return respond(&operator, &body, StatusCode::BAD_REQUEST);
        }
    };
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match &state.router {
        Some(router) => now_table(&mut body, t, &router.metrics().providers),
        None => {
            body.raw("<p class=\"note\">").text(t.no_router).raw("</p>");
        }
    }
    range_form(&mut body, t, "/console/providers", from, to);
    let usage = db
        .usage(from, to, None, &[Dimension::Provider, Dimension::Country])
        .await;
    let attempts = db.attempt_counts(from, to).await;
    let status = match (usage, attempts) {
        (Ok(usage), Ok(attempts)) => {
            receipts_table(&mut body, t, &usage);
            failures_table(&mut body, t, &attempts);
            StatusCode::OK
        }
        (usage, attempts) => {
            for error in [usage.err(), attempts.err()].into_iter().flatten() {
                tracing::error!(error = %error, "console: provider queries failed");
            }
            body.alert(t.unavailable);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    respond(&operator, &body, status)
}

/// The bucket bound at or under which `share` of the calls finished (`≤ 100 ms`), from
/// the cumulative histogram; `> 3000 ms` past its last bound.
fn percentile(p: &ProviderMetrics, share: f64) -> String {
    if p.attempts == 0 {
        return "-".to_owned();
    }
    let wanted = (p.attempts as f64 * share).ceil() as u64;
    match p.latency_buckets.iter().position(|count| *count >= wanted) {
        Some(index) => format!("≤ {} ms", LATENCY_BUCKETS[index].as_millis()),
        None => format!(
            "> {} ms",
            LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1].as_millis()
        ),
    }
}

fn breaker(t: &Strings, status: BreakerStatus) -> &'static str {
    match status {
        BreakerStatus::Open => t.breaker_open,
        BreakerStatus::HalfOpen => t.breaker_half_open,
        _ => t.breaker_closed,
    }
}

fn now_table(body: &mut Html, t: &Strings, providers: &[ProviderMetrics]) {
    let rows: Vec<Vec<Cell>> = providers
        .iter()
        .map(|p| {
            let failures: Vec<String> = p
                .failures
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            let mut state = breaker(t, p.breaker).to_owned();
            for (region, status) in &p.destination_breakers {
                state.push_str(&format!(", {region}: {}", breaker(t, *status)));
            }
            vec![
                Cell::text(&p.provider),
                Cell::number(p.attempts),
                Cell::number(p.successes),
                Cell::number(percentile(p, 0.5)),
                Cell::number(percentile(p, 0.95)),
                Cell::text(if failures.is_empty() {
                    "-".to_owned()
                } else {
                    failures.join(", ")
                }),
                Cell::text(state),
            ]
        })
        .collect();
    section(
        body,
        "now",
        t.providers_now,
        None,
        &[
            (t.provider, false),
            (t.attempts, true),
            (t.accepted, true),
            (t.latency_p50, true),
            (t.latency_p95, true),
            (t.failures, false),
            (t.breaker, false),
        ],
        &rows,
        t.none,
    );
}

fn receipts_table(body: &mut Html, t: &Strings, usage: &UsageReport) {
    let rows: Vec<Vec<Cell>> = usage
        .rows
        .iter()
        .filter(|row| row.sends > 0)
        .map(|row| {
            let key = |i: usize| {
                row.key
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "-".to_owned())
            };
            vec![
                Cell::text(key(0)),
                Cell::text(key(1)),
                Cell::number(row.sends),
                Cell::number(row.delivered),
                Cell::number(row.undelivered),
                Cell::percent(
                    row.delivered as f64,
                    (row.delivered + row.undelivered) as f64,
                ),
            ]
        })
        .collect();
    section(
        body,
        "receipts",
        t.by_provider_country,
        None,
        &[
            (t.provider, false),
            (t.country, false),
            (t.sends, true),
            (t.delivered, true),
            (t.undelivered, true),
            (t.delivery_rate, true),
        ],
        &rows,
        t.none,
    );
}

fn failures_table(body: &mut Html, t: &Strings, attempts: &[AttemptCount]) {
    let mut counts: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for row in attempts {
        let country = row.country.clone().unwrap_or_else(|| "-".to_owned());
        for (provider, kind) in row.failures() {
            *counts
                .entry((provider.to_owned(), country.clone(), kind.to_owned()))
                .or_default() += row.count;
        }
    }
    let rows: Vec<Vec<Cell>> = counts
        .into_iter()
        .map(|((provider, country, kind), n)| {
            vec![
                Cell::text(provider),
                Cell::text(country),
                Cell::text(kind),
                Cell::number(n),
            ]
        })
        .collect();
    section(
        body,
        "failures",
        t.failures_by_country,
        None,
        &[
            (t.provider, false),
            (t.country, false),
            (t.kind, false),
            (t.count, true),
        ],
        &rows,
        t.none,
    );
}

fn respond(operator: &Operator, body: &Html, status: StatusCode) -> Response {
    let t = operator.lang.text();
    operator.page(
        t.providers,
        Nav::Providers,
        "/console/providers",
        body,
        status,
    )
}
