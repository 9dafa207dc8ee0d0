//! `/console/abuse`: the view that tells an operator "someone is pumping +44 7xxx". Over a
//! chosen range (default the last 7 days, at most 31): refusals per day by the limit that
//! refused, verification conversion per country, the most-sent number prefixes with their
//! conversion and guard refusals, and sends per day to them; and, from this instance, the
//! prefixes the conversion guard throttles now and why (conversion against the floor).
//! Every table is one grouped query on the audit trail's indexes.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::chart::{MAX_SERIES, Series, stacked_columns};
use super::html::{Html, Nav};
use super::i18n::Strings;
use super::keys::when;
use super::operator::Operator;
use super::table::{Cell, section};
use crate::db::{ConversionBy, ConversionRow, Db, DbError, Dimension, UsageReport, instant};
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
/// The longest range (a column per day).
const MAX_DAYS: i64 = 31;
/// Prefixes shown.
const TOP_PREFIXES: usize = 10;

/// `GET /console/abuse[?from=&to=]`.
pub(crate) async fn abuse(
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
    range_form(&mut body, t, "/console/abuse", from, to);
    if state.otp.guards_conversion() {
        throttled_now(&mut body, t, &state.otp.guard_refusals());
    } else {
        body.raw("<p class=\"note\">").text(t.guard_off).raw("</p>");
    }
    let status = match Reports::read(db, from, to).await {
        Ok(reports) => {
            reports.write(&mut body, t, from, to);
            StatusCode::OK
        }
        Err(error) => {
            tracing::error!(error = %error, "console: abuse queries failed");
            body.alert(t.unavailable);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    respond(&operator, &body, status)
}

/// `from` and `to` as `/v1/usage` reads them; by default the last 7 UTC days.
pub(super) fn range(raw: &str, now: i64) -> Result<(i64, i64), String> {
    let mut to = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
    let mut from = None;
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        match name.as_ref() {
            "from" if !value.is_empty() => {
                from = Some(instant(&value, false).ok_or("from: not a date")?)
            }
            "to" if !value.is_empty() => to = instant(&value, true).ok_or("to: not a date")?,
            "from" | "to" | "lang" => {}
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    let from = from.unwrap_or(to - 7 * DAY_MS);
    if to <= from {
        return Err("to must be after from".to_owned());
    }
    if to - from > MAX_DAYS * DAY_MS {
        return Err(format!("at most {MAX_DAYS} days"));
    }
    Ok((from, to))
}

/// What the page reads from the database.
struct Reports {
    /// Refused requests by day, limit and system: the chart and the table, one scan.
    refusals: UsageReport,
    countries: Vec<ConversionRow>,
    /// Requests by prefix, country and refusing limit: sends and guard refusals.
    prefixes: UsageReport,
    prefix_days: UsageReport,
    prefix_conversion: Vec<ConversionRow>,
}

impl Reports {
    /// Three reads (each from the day sums and today's records): refusals, requests per
    /// prefix, conversion; the page's other views are sums of them.
    async fn read(db: &Db, from: i64, to: i64) -> Result<Self, DbError> {
        let refusals = db
            .usage(
                from,
                to,
                None,
                &[Dimension::Day, Dimension::RefusedBy, Dimension::System],
            )
            .await?;
        let prefixes = db
            .usage(
                from,
                to,
                None,
                &[
                    Dimension::Day,
                    Dimension::Prefix,
                    Dimension::Country,
                    Dimension::RefusedBy,
                ],
            )
            .await?;
        let conversion = db.conversion_table(from, to, None).await?;
        Ok(Self {
            refusals,
            countries: conversion.by(ConversionBy::Country, 50),
            prefix_days: prefixes.regroup(&[Dimension::Day, Dimension::Prefix]),
            prefixes: prefixes.regroup(&[
                Dimension::Prefix,
                Dimension::Country,
                Dimension::RefusedBy,
            ]),
            prefix_conversion: conversion.by(ConversionBy::Prefix, 200),
        })
    }

    fn write(&self, body: &mut Html, t: &Strings, from: i64, to: i64) {
        let days: Vec<String> = (from.div_euclid(DAY_MS)
            ..to.div_euclid(DAY_MS).max(from.div_euclid(DAY_MS) + 1))
            .map(|day| when(Some(day * DAY_MS)).get(..10).unwrap_or("").to_owned())
            .collect();
        // Refusals per day, a series per limit (summed over systems).
        let refused = per_day(&days, &self.refusals, |row| row.requests);
        body.raw("<section aria-labelledby=\"refused\"><h2 id=\"refused\">")
            .text(t.refusals_by_day)
            .raw("</h2>");
        if refused.is_empty() {
            body.raw("<p>").text(t.none).raw("</p>");
        } else {
            body.built(&stacked_columns(t.refusals_by_day, &short(&days), &refused));
        }
        body.raw("</section>");
        // Per limit and system, summed over days.
        let mut by_limit: BTreeMap<(String, String), i64> = BTreeMap::new();
        for row in &self.refusals.rows {
            if let Some(Some(limit)) = row.key.get(1) {
                *by_limit
                    .entry((limit.clone(), name(row.key.get(2))))
                    .or_default() += row.requests;
            }
        }
        let rows: Vec<Vec<Cell>> = by_limit
            .into_iter()
            .map(|((limit, system), n)| {
                vec![Cell::text(limit), Cell::text(system), Cell::number(n)]
            })
            .collect();
        section(
            body,
            "by-limit",
            t.refused_by,
            None,
            &[(t.limit, false), (t.system, false), (t.count, true)],
            &rows,
            t.none,
        );
        // Conversion per country.
        let rows: Vec<Vec<Cell>> = self
            .countries
            .iter()
            .map(|row| {
                vec![
                    Cell::text(name(Some(&row.key))),
                    Cell::number(row.started),
                    Cell::number(row.verified),
                    Cell::percent(row.verified as f64, row.started as f64),
                ]
            })
            .collect();
        section(
            body,
            "conversion",
            t.conversion_by_country,
            Some(t.conversion_note),
            &[
                (t.country, false),
                (t.started, true),
                (t.verified, true),
                (t.conversion, true),
            ],
            &rows,
            t.none,
        );
        // The most-sent prefixes. Per prefix (with its country): requests, sends and the guard's refusals. Requests
        // without a destination (sign-ins, verifications) have no prefix and are left out.
        let mut per_prefix: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
        for row in &self.prefixes.rows {
            let Some(Some(prefix)) = row.key.first() else {
                continue;
            };
            let sums = per_prefix
                .entry((prefix.clone(), name(row.key.get(1))))
                .or_default();
            sums.0 += row.requests;
            sums.1 += row.sends;
            if row.key.get(2) == Some(&Some("conversion".to_owned())) {
                sums.2 += row.requests;
            }
        }
        let mut top: Vec<_> = per_prefix.into_iter().collect();
        top.sort_by_key(|(_, (requests, sends, _))| std::cmp::Reverse((*sends, *requests)));
        top.truncate(TOP_PREFIXES);
        let rows: Vec<Vec<Cell>> = top
            .iter()
            .map(|((prefix, country), (requests, sends, guarded))| {
                let prefix = Some(prefix.clone());
                let conversion = self.prefix_conversion.iter().find(|c| c.key == prefix);
                let (started, verified) = conversion.map_or((0, 0), |c| (c.started, c.verified));
                vec![
                    Cell::text(name(Some(&prefix))),
                    Cell::text(country),
                    Cell::number(requests),
                    Cell::number(sends),
                    Cell::number(guarded),
                    Cell::number(started),
                    Cell::percent(verified as f64, started as f64),
                ]
            })
            .collect();
        section(
            body,
            "prefixes",
            t.top_prefixes,
            None,
            &[
                (t.prefix, false),
                (t.country, false),
                (t.requests, true),
                (t.sends, true),
                (t.guard_refusals, true),
                (t.started, true),
                (t.conversion, true),
            ],
            &rows,
            t.none,
        );
        // Sends per day to them.
        let names: Vec<&String> = top.iter().map(|((prefix, _), _)| prefix).collect();
        let mut series = per_day(&days, &self.prefix_days, |row| row.sends);
        series.retain(|s| names.contains(&&s.name));
        series.truncate(MAX_SERIES);
        body.raw("<section aria-labelledby=\"prefix-days\"><h2 id=\"prefix-days\">")
            .text(t.prefix_sends_per_day)
            .raw("</h2>");
        if series.is_empty() {
            body.raw("<p>").text(t.no_sends).raw("</p>");
        } else {
            body.built(&stacked_columns(
                t.prefix_sends_per_day,
                &short(&days),
                &series,
            ));
        }
        body.raw("</section>");
    }
}

/// One series per second key of `report` (grouped by day first), over `days`, the
/// biggest first; rows whose second key is empty are left out.
fn per_day(
    days: &[String],
    report: &UsageReport,
    value: impl Fn(&crate::db::UsageRow) -> i64,
) -> Vec<Series> {
    let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in &report.rows {
        let (Some(Some(day)), Some(Some(name))) = (row.key.first(), row.key.get(1)) else {
            continue;
        };
        let Some(index) = days.iter().position(|d| d == day) else {
            continue;
        };
        by_name
            .entry(name.clone())
            .or_insert_with(|| vec![0; days.len()])[index] +=
            u64::try_from(value(row)).unwrap_or(0);
    }
    let mut series: Vec<Series> = by_name
        .into_iter()
        .map(|(name, values)| Series { name, values })
        .filter(|s| s.values.iter().any(|v| *v > 0))
        .collect();
    series.sort_by_key(|s| std::cmp::Reverse(s.values.iter().sum::<u64>()));
    series.truncate(MAX_SERIES);
    series
}

/// `12-01` for `2026-12-01`.
fn short(days: &[String]) -> Vec<String> {
    days.iter()
        .map(|d| d.get(5..).unwrap_or(d).to_owned())
        .collect()
}

fn name(value: Option<&Option<String>>) -> String {
    value.cloned().flatten().unwrap_or_else(|| "-".to_owned())
}

fn throttled_now(body: &mut Html, t: &Strings, refusals: &[phone_otp::GuardRefusal]) {
    let rows: Vec<Vec<Cell>> = refusals
        .iter()
        .map(|r| {
            let level = match r.level {
                phone_otp::GuardLevel::Prefix => t.level_prefix,
                phone_otp::GuardLevel::Range => t.level_range,
                phone_otp::GuardLevel::Country => t.level_country,
                phone_otp::GuardLevel::CountryDay => t.level_country_day,
            };
            vec![
                Cell::text(format!("+{}", r.prefix)),
                Cell::text(level),
                Cell::text(&r.country),
                Cell::number(format!("{:.0}", r.sends)),
                Cell::number(format!("{:.0}", r.verified)),
                Cell::number(format!("{:.1}%", f64::from(r.rate_permille) / 10.0)),
                Cell::number(format!("{:.1}%", f64::from(r.floor_permille) / 10.0)),
                Cell::text(when(i64::try_from(r.at.as_millis()).ok())),
                Cell::number(r.refusals),
            ]
        })
        .collect();
    section(
        body,
        "throttled",
        t.throttled_now,
        Some(t.throttled_note),
        &[
            (t.prefix, false),
            (t.level, false),
            (t.country, false),
            (t.sends, true),
            (t.verified, true),
            (t.conversion, true),
            (t.floor, true),
            (t.last_refused, false),
            (t.refusals, true),
        ],
        &rows,
        t.none,
    );
}

/// The range's form, submitted to `action` (a page's own path).
pub(super) fn range_form(body: &mut Html, t: &Strings, action: &'static str, from: i64, to: i64) {
    let day = |at: i64| when(Some(at)).get(..10).unwrap_or("").to_owned();
    body.raw("<form class=\"range\" method=\"get\" action=\"")
        .raw(action)
        .raw("\"><label class=\"inline\">")
        .text(t.from)
        .raw(" <input type=\"date\" name=\"from\" value=\"")
        .text(&day(from))
        .raw("\"></label> <label class=\"inline\">")
        .text(t.to)
        .raw(" <input type=\"date\" name=\"to\" value=\"")
        .text(&day(to - 1))
        .raw("\"></label> <button type=\"submit\">")
        .text(t.show)
        .raw("</button></form>");
}

fn respond(operator: &Operator, body: &Html, status: StatusCode) -> Response {
    let t = operator.lang.text();
    operator.page(t.abuse, Nav::Abuse, "/console/abuse", body, status)
}
