//! `GET /console/overview`: the last 24 hours at a glance. Sends per hour by system
//! (stacked), each system's requests, sends, receipts and cost, refused requests by
//! outcome (from the audit trail, every instance), refusals per limit (this instance's
//! counters) and today's use of every daily budget. One grouped query on the audit
//! trail's `at` index (by hour, system and outcome: at most a few thousand rows, whatever
//! the trail's size); budgets come from the cached reading `/metrics` uses.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phone_otp::{BudgetCap, BudgetScope, BudgetUse};

use super::chart::{MAX_SERIES, Series, stacked_columns};
use super::html::{Html, Nav, page};
use super::i18n::Strings;
use super::operator::Operator;
use crate::db::{Dimension, UsageReport, micros_text};
use crate::state::AppState;

const HOUR_MS: i64 = 3_600_000;

/// The handler.
pub(crate) async fn overview(State(state): State<AppState>, operator: Operator) -> Response {
    let lang = operator.lang;
    let t = lang.text();
    let now = state.now_millis();
    // Twenty-four whole UTC hours, the current one last.
    let from = (now.div_euclid(HOUR_MS) - 23) * HOUR_MS;
    let to = from + 24 * HOUR_MS;
    let mut body = Html::default();
    let mut status = StatusCode::OK;
    let reports = match &state.db {
        Some(db) => {
            // One scan of the day; the three views are sums of it.
            let all = [Dimension::Hour, Dimension::System, Dimension::Outcome];
            match db.usage(from, to, None, &all).await {
                Ok(all) => Some((
                    all.regroup(&[Dimension::Hour, Dimension::System]),
                    all.regroup(&[Dimension::System]),
                    all.regroup(&[Dimension::Outcome]),
                )),
                Err(error) => {
                    tracing::error!(error = %error, "console: usage query failed");
                    None
                }
            }
        }
        None => None,
    };
    match reports {
        Some((hourly, systems, outcomes)) => {
            sends_chart(&mut body, t, from, &hourly);
            systems_table(&mut body, t, &systems);
            outcomes_table(&mut body, t, &outcomes);
        }
        None => {
            status = StatusCode::SERVICE_UNAVAILABLE;
            body.raw("<p class=\"error\" role=\"alert\">")
                .text(t.unavailable)
                .raw("</p>");
        }
    }
    limits_table(&mut body, t, &state.otp.refusals());
    let (budgets, _) = state.budget_use().await;
    budgets_table(&mut body, t, &budgets);
    let html = page(
        lang,
        t.overview,
        Nav::Overview,
        Some(&operator.session),
        "/console/overview",
        &body,
    );
    (status, axum::response::Html(html)).into_response()
}

/// Sends per hour, a series per system (the busiest first; the rest summed as "…").
fn sends_chart(body: &mut Html, t: &Strings, from: i64, hourly: &UsageReport) {
    body.raw("<section aria-labelledby=\"sends\"><h2 id=\"sends\">")
        .text(t.sends_per_hour)
        .raw("</h2><p class=\"note\">")
        .text(t.sends_per_hour_note)
        .raw("</p>");
    let hours: Vec<String> = (0..24).map(|i| hour_label(from + i * HOUR_MS)).collect();
    let mut per_system: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in &hourly.rows {
        let (Some(Some(hour)), system) = (row.key.first(), row.key.get(1)) else {
            continue;
        };
        let Some(index) = hours
            .iter()
            .position(|h| hour.get(11..16) == Some(h.as_str()))
        else {
            continue;
        };
        let name = system.cloned().flatten().unwrap_or_else(|| "-".to_owned());
        let values = per_system.entry(name).or_insert_with(|| vec![0; 24]);
        values[index] += u64::try_from(row.sends).unwrap_or(0);
    }
    let mut series: Vec<Series> = per_system
        .into_iter()
        .map(|(name, values)| Series { name, values })
        .filter(|s| s.values.iter().any(|v| *v > 0))
        .collect();
    if series.is_empty() {
        body.raw("<p>").text(t.no_sends).raw("</p></section>");
        return;
    }
    series.sort_by_key(|s| std::cmp::Reverse(s.values.iter().sum::<u64>()));
    if series.len() > MAX_SERIES {
        let rest = series.split_off(MAX_SERIES - 1);
        let mut other = vec![0u64; 24];
        for s in &rest {
            for (sum, v) in other.iter_mut().zip(&s.values) {
                *sum += v;
            }
        }
        series.push(Series {
            name: format!("… ({})", rest.len()),
            values: other,
        });
    }
    body.built(&stacked_columns(t.sends_per_hour, &hours, &series))
        .raw("</section>");
}

/// `13:00` for the UTC hour holding `at`.
fn hour_label(at: i64) -> String {
    format!("{:02}:00", at.div_euclid(HOUR_MS).rem_euclid(24))
}

fn systems_table(body: &mut Html, t: &Strings, report: &UsageReport) {
    body.raw("<section aria-labelledby=\"systems\"><h2 id=\"systems\">")
        .text(t.last_24h)
        .raw("</h2><table><thead><tr><th scope=\"col\">")
        .text(t.system);
    for heading in [
        t.requests,
        t.sends,
        t.delivered,
        t.undelivered,
        t.unknown,
        t.delivery_rate,
        t.cost,
    ] {
        body.raw("</th><th scope=\"col\" class=\"n\">")
            .text(heading);
    }
    body.raw("</th></tr></thead><tbody>");
    let mut total = [0i64; 5];
    let mut cost: BTreeMap<String, i64> = BTreeMap::new();
    for row in &report.rows {
        let system = row
            .key
            .first()
            .cloned()
            .flatten()
            .unwrap_or_else(|| "-".to_owned());
        body.raw("<tr><th scope=\"row\">")
            .text(&system)
            .raw("</th>");
        let values = [
            row.requests,
            row.sends,
            row.delivered,
            row.undelivered,
            row.unknown,
        ];
        for (sum, value) in total.iter_mut().zip(values) {
            *sum += value;
            body.raw("<td class=\"n\">").number(value).raw("</td>");
        }
        body.raw("<td class=\"n\">")
            .text(&rate(row.delivered, row.undelivered))
            .raw("</td><td class=\"n\">")
            .text(&money(row.cost_micros, row.currency.as_deref()))
            .raw("</td></tr>");
        // Unpriced sends add nothing to any currency's total.
        if let Some(currency) = &row.currency {
            *cost.entry(currency.clone()).or_default() += row.cost_micros;
        }
    }
    body.raw("</tbody><tfoot><tr><th scope=\"row\">")
        .text(t.total)
        .raw("</th>");
    for value in total {
        body.raw("<td class=\"n\">").number(value).raw("</td>");
    }
    let costs: Vec<String> = cost
        .iter()
        .map(|(currency, micros)| money(*micros, Some(currency)))
        .collect();
    let costs = if costs.is_empty() {
        "-".to_owned()
    } else {
        costs.join(" + ")
    };
    body.raw("<td class=\"n\">")
        .text(&rate(total[2], total[3]))
        .raw("</td><td class=\"n\">")
        .text(&costs)
        .raw("</td></tr></tfoot></table></section>");
}

/// Refused requests by the outcome the audit trail recorded (every instance).
fn outcomes_table(body: &mut Html, t: &Strings, report: &UsageReport) {
    let refused: Vec<(&str, i64)> = report
        .rows
        .iter()
        .filter_map(|row| Some((row.key.first()?.as_deref()?, row.requests)))
        .filter(|(outcome, _)| !matches!(*outcome, "ok" | "pending"))
        .collect();
    body.raw("<section aria-labelledby=\"outcomes\"><h2 id=\"outcomes\">")
        .text(t.refused_requests)
        .raw("</h2><p class=\"note\">")
        .text(t.refused_requests_note)
        .raw("</p><table><thead><tr><th scope=\"col\">")
        .text(t.outcome)
        .raw("</th><th scope=\"col\" class=\"n\">")
        .text(t.count)
        .raw("</th></tr></thead><tbody>");
    for (outcome, count) in &refused {
        body.raw("<tr><td>")
            .text(outcome)
            .raw("</td><td class=\"n\">")
            .number(count)
            .raw("</td></tr>");
    }
    if refused.is_empty() {
        body.raw("<tr><td colspan=\"2\">")
            .text(t.none)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table></section>");
}

fn limits_table(body: &mut Html, t: &Strings, refusals: &[(phone_otp::LimitKind, u64)]) {
    body.raw("<section aria-labelledby=\"limits\"><h2 id=\"limits\">")
        .text(t.refusals)
        .raw("</h2><p class=\"note\">")
        .text(t.refusals_note)
        .raw("</p><table><thead><tr><th scope=\"col\">")
        .text(t.limit)
        .raw("</th><th scope=\"col\" class=\"n\">")
        .text(t.count)
        .raw("</th></tr></thead><tbody>");
    let mut any = false;
    for (kind, count) in refusals.iter().filter(|(_, count)| *count > 0) {
        any = true;
        body.raw("<tr><td>")
            .text(kind.as_str())
            .raw("</td><td class=\"n\">")
            .number(count)
            .raw("</td></tr>");
    }
    if !any {
        body.raw("<tr><td colspan=\"2\">")
            .text(t.none)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table></section>");
}

fn budgets_table(body: &mut Html, t: &Strings, uses: &[BudgetUse]) {
    body.raw("<section aria-labelledby=\"budgets\"><h2 id=\"budgets\">")
        .text(t.budgets)
        .raw("</h2><p class=\"note\">")
        .text(t.budgets_note)
        .raw("</p>");
    if uses.is_empty() {
        body.raw("<p>").text(t.no_budgets).raw("</p></section>");
        return;
    }
    body.raw("<table><thead><tr><th scope=\"col\">")
        .text(t.budget);
    for heading in [t.used, t.cap] {
        body.raw("</th><th scope=\"col\" class=\"n\">")
            .text(heading);
    }
    body.raw("</th><th scope=\"col\"></th></tr></thead><tbody>");
    for u in uses {
        let whose = match (&u.budget.scope, &u.of) {
            (_, Some(of)) => of.clone(),
            (BudgetScope::Tenant(name) | BudgetScope::Country(name), None) => name.clone(),
            (BudgetScope::EachTenant, None) => t.each_system.to_owned(),
            (BudgetScope::EachCountry | BudgetScope::OtherCountries, None) => {
                t.each_country.to_owned()
            }
            _ => t.all_sends.to_owned(),
        };
        let (used, cap) = match u.budget.per_day {
            BudgetCap::Messages(_) => (
                format!("{} {}", u.used, t.messages),
                format!("{} {}", u.cap, t.messages),
            ),
            _ => (
                micros_text(i64::try_from(u.used).unwrap_or(i64::MAX)),
                micros_text(i64::try_from(u.cap).unwrap_or(i64::MAX)),
            ),
        };
        let percent = (u.ratio() * 100.0).round();
        body.raw("<tr><th scope=\"row\">")
            .text(&whose)
            .raw("</th><td class=\"n\">")
            .text(&used)
            .raw("</td><td class=\"n\">")
            .text(&cap)
            .raw("</td><td><meter min=\"0\" max=\"100\" low=\"80\" high=\"95\" optimum=\"0\" value=\"")
            .number(percent.min(100.0))
            .raw("\" aria-label=\"")
            .text(&whose)
            .raw("\">")
            .number(percent)
            .raw("%</meter> ")
            .number(percent)
            .raw("%</td></tr>");
    }
    body.raw("</tbody></table></section>");
}

/// `97.5%` of receipts that say delivered, or `-` with no receipts.
fn rate(delivered: i64, undelivered: i64) -> String {
    let receipts = delivered + undelivered;
    if receipts == 0 {
        return "-".to_owned();
    }
    #[allow(clippy::cast_precision_loss)]
    let percent = delivered as f64 * 100.0 / receipts as f64;
    format!("{percent:.1}%")
}

/// `1.250000 USD`, or `-` when nothing was priced.
fn money(micros: i64, currency: Option<&str>) -> String {
    match currency {
        Some(currency) => format!("{} {currency}", micros_text(micros)),
        None => "-".to_owned(),
    }
}
