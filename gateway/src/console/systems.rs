//! `/console/systems`: what each calling system requested, sent and cost over a chosen
//! range (default the last 30 days, at most 92): the same sums as `GET /v1/usage`, by day,
//! country and provider, with a CSV export; the system's daily budgets as bars; and its
//! keys. Every table is one grouped query on the audit trail's `(system, at)` index.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phone_otp::BudgetScope;

use super::html::{Html, Nav};
use super::i18n::Strings;
use super::keys::when;
use super::operator::Operator;
use crate::db::{Dimension, UsageQuery, UsageReport, micros_text};
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
/// The longest range a page or its export covers.
const MAX_DAYS: i64 = 92;

/// The range and system a page was asked for, read as `/v1/usage` reads them.
struct Range {
    query: UsageQuery,
    /// `from=...&to=...` as given, for links.
    text: String,
}

fn range(raw: &str, now: i64) -> Result<Range, String> {
    // Only the usage parameters: the page's own (`lang`) are not the report's.
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if matches!(name.as_ref(), "from" | "to" | "system") && !value.is_empty() {
            kept.append_pair(&name, &value);
        }
    }
    let text = kept.finish();
    let query = UsageQuery::parse(&text, now)?;
    if query.to - query.from > MAX_DAYS * DAY_MS {
        return Err(format!("at most {MAX_DAYS} days"));
    }
    Ok(Range { query, text })
}

/// `GET /console/systems[?system=&from=&to=]`.
pub(crate) async fn systems(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let t = operator.lang.text();
    let now = state.now_millis();
    let mut body = Html::default();
    let range = match range(raw.as_deref().unwrap_or(""), now) {
        Ok(range) => range,
        Err(reason) => {
            body.alert(&reason);
            return respond(&operator, t.systems, &body, StatusCode::BAD_REQUEST);
        }
    };
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (from, to) = (range.query.from, range.query.to);
    range_form(&mut body, t, &range);
    let Some(system) = range.query.system.clone() else {
        match db.usage(from, to, None, &[Dimension::System]).await {
            Ok(report) => usage_table(&mut body, t, t.system, &report, Some(&range)),
            Err(_) => return unavailable(&operator, body),
        }
        return respond(&operator, t.systems, &body, StatusCode::OK);
    };
    let mut reports = Vec::new();
    for dimension in [Dimension::Day, Dimension::Country, Dimension::Provider] {
        match db.usage(from, to, Some(&system), &[dimension]).await {
            Ok(report) => reports.push((dimension, report)),
            Err(_) => return unavailable(&operator, body),
        }
    }
    body.raw("<p><a href=\"/console/systems/usage.csv?")
        .text(&range.text)
        .raw("\" download>")
        .text(t.csv_export)
        .raw("</a></p>");
    for (dimension, report) in &reports {
        let heading = match dimension {
            Dimension::Day => t.by_day,
            Dimension::Country => t.by_country,
            _ => t.by_provider,
        };
        usage_table(&mut body, t, heading, report, None);
    }
    let (budgets, _) = state.budget_use().await;
    let own: Vec<_> = budgets
        .iter()
        .filter(|u| match (&u.budget.scope, &u.of) {
            (BudgetScope::EachTenant, Some(of)) => *of == system,
            (BudgetScope::Tenant(name), _) => *name == system,
            _ => false,
        })
        .collect();
    body.raw("<section aria-labelledby=\"budgets\"><h2 id=\"budgets\">")
        .text(t.budgets)
        .raw("</h2>");
    if own.is_empty() {
        body.raw("<p>").text(t.no_budgets).raw("</p>");
    }
    for u in own {
        let percent = (u.ratio() * 100.0).round().min(100.0);
        body.raw("<p><meter min=\"0\" max=\"100\" low=\"80\" high=\"95\" optimum=\"0\" value=\"")
            .number(percent)
            .raw("\" aria-label=\"")
            .text(t.budget)
            .raw("\"></meter> ")
            .number(u.used)
            .raw(" / ")
            .number(u.cap)
            .raw("</p>");
    }
    body.raw("</section>");
    if let Ok(keys) = db.keys().await {
        body.raw("<section aria-labelledby=\"keys\"><h2 id=\"keys\">")
            .text(t.keys)
            .raw("</h2><table><thead><tr>");
        for heading in [t.key_id, t.scopes, t.allowed, t.expires, t.last_used] {
            body.raw("<th scope=\"col\">").text(heading).raw("</th>");
        }
        body.raw("</tr></thead><tbody>");
        for key in keys.iter().filter(|k| k.owner == system && k.is_live(now)) {
            let allowed: Vec<String> = key.allowed.iter().map(ToString::to_string).collect();
            body.raw("<tr><td><code>")
                .text(&key.id)
                .raw("</code></td><td>")
                .text(&key.scopes.to_string())
                .raw("</td><td>")
                .text(if allowed.is_empty() {
                    t.any_address
                } else {
                    ""
                })
                .text(&allowed.join(", "))
                .raw("</td><td>")
                .text(&when(key.expires_at))
                .raw("</td><td>")
                .text(&when(key.last_used_at))
                .raw("</td></tr>");
        }
        body.raw("</tbody></table></section>");
    }
    let mut title = String::new();
    let _ = write!(title, "{}: {system}", t.systems);
    respond(&operator, &title, &body, StatusCode::OK)
}

/// `GET /console/systems/usage.csv?system=&from=&to=`: by day, country and provider.
pub(crate) async fn usage_csv(
    State(state): State<AppState>,
    _operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let range = match range(raw.as_deref().unwrap_or(""), state.now_millis()) {
        Ok(range) => range,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let group_by = [
        Dimension::System,
        Dimension::Day,
        Dimension::Country,
        Dimension::Provider,
    ];
    match db
        .usage(
            range.query.from,
            range.query.to,
            range.query.system.as_deref(),
            &group_by,
        )
        .await
    {
        Ok(report) => {
            let mut response = report.to_csv().into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"usage.csv\""),
            );
            response
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "usage cannot be read now").into_response(),
    }
}

fn range_form(body: &mut Html, t: &Strings, range: &Range) {
    let day = |at: i64| {
        crate::console::keys::when(Some(at))
            .get(..10)
            .unwrap_or("")
            .to_owned()
    };
    body.raw("<form class=\"range\" method=\"get\" action=\"/console/systems\">");
    if let Some(system) = &range.query.system {
        body.raw("<input type=\"hidden\" name=\"system\" value=\"")
            .text(system)
            .raw("\">");
    }
    body.raw("<label class=\"inline\">")
        .text(t.from)
        .raw(" <input type=\"date\" name=\"from\" value=\"")
        .text(&day(range.query.from))
        .raw("\"></label> <label class=\"inline\">")
        .text(t.to)
        .raw(" <input type=\"date\" name=\"to\" value=\"")
        .text(&day(range.query.to - 1))
        .raw("\"></label> <button type=\"submit\">")
        .text(t.show)
        .raw("</button></form>");
}

/// One usage table; `links` makes each first cell a link to that system's page.
fn usage_table(
    body: &mut Html,
    t: &Strings,
    heading: &str,
    report: &UsageReport,
    links: Option<&Range>,
) {
    body.raw("<section><h2>")
        .text(heading)
        .raw("</h2><table><thead><tr><th scope=\"col\">")
        .text(heading);
    for h in [
        t.requests,
        t.sends,
        t.segments,
        t.delivered,
        t.undelivered,
        t.cost,
    ] {
        body.raw("</th><th scope=\"col\" class=\"n\">").text(h);
    }
    body.raw("</th></tr></thead><tbody>");
    for row in &report.rows {
        let name = row
            .key
            .first()
            .cloned()
            .flatten()
            .unwrap_or_else(|| "-".to_owned());
        body.raw("<tr><th scope=\"row\">");
        match links {
            Some(range) => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("system", &name);
                for (k, v) in form_urlencoded::parse(range.text.as_bytes()) {
                    if k != "system" {
                        query.append_pair(&k, &v);
                    }
                }
                body.raw("<a href=\"/console/systems?")
                    .text(&query.finish())
                    .raw("\">")
                    .text(&name)
                    .raw("</a>");
            }
            None => {
                body.text(&name);
            }
        }
        body.raw("</th>");
        for value in [
            row.requests,
            row.sends,
            row.segments,
            row.delivered,
            row.undelivered,
        ] {
            body.raw("<td class=\"n\">").number(value).raw("</td>");
        }
        body.raw("<td class=\"n\">");
        match &row.currency {
            Some(currency) => body
                .text(&micros_text(row.cost_micros))
                .raw(" ")
                .text(currency),
            None => body.raw("-"),
        };
        body.raw("</td></tr>");
    }
    if report.rows.is_empty() {
        body.raw("<tr><td colspan=\"7\">")
            .text(t.none)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table></section>");
}

fn respond(operator: &Operator, title: &str, body: &Html, status: StatusCode) -> Response {
    operator.page(title, Nav::Systems, "/console/systems", body, status)
}

fn unavailable(operator: &Operator, mut body: Html) -> Response {
    let t = operator.lang.text();
    body.alert(t.unavailable);
    respond(operator, t.systems, &body, StatusCode::SERVICE_UNAVAILABLE)
}
