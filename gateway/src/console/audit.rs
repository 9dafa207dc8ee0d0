//! `/console/audit`: the audit trail searched by system, endpoint, outcome and range
//! (default the last 7 days, at most 92), newest first, 50 a page (keyset pages: the
//! thousandth costs what the first does); one record's detail; the same search as CSV
//! (at most [`MAX_SEARCH_ROWS`] records).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::html::{Html, Nav};
use super::i18n::Strings;
use super::keys::when;
use super::operator::Operator;
use crate::db::{AuditRecord, AuditSearch, MAX_SEARCH_ROWS, csv_cell, instant, micros_text};
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
/// The longest range one search covers.
const MAX_DAYS: i64 = 92;
/// Records per page.
const PAGE: u32 = 50;
/// The longest filter value read (names and codes are short).
const MAX_FILTER: usize = 64;

/// A search as the page's form and links spell it.
struct Query {
    search: AuditSearch,
    /// The filters and range (not the cursor), for links and the export.
    text: String,
}

fn parse(raw: &str, now: i64) -> Result<Query, String> {
    let mut search = AuditSearch {
        from: now - 7 * DAY_MS,
        to: now + 1,
        limit: PAGE,
        ..AuditSearch::default()
    };
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if value.is_empty() || name == "lang" {
            continue;
        }
        if value.len() > MAX_FILTER {
            return Err(format!("{name}: at most {MAX_FILTER} characters"));
        }
        match name.as_ref() {
            "from" => search.from = instant(&value, false).ok_or("from: not a date")?,
            "to" => search.to = instant(&value, true).ok_or("to: not a date")?,
            "system" => search.system = Some(value.to_string()),
            "endpoint" => search.endpoint = Some(value.to_string()),
            "outcome" => search.outcome = Some(value.to_string()),
            "before" => {
                let (at, id) = value.split_once('.').ok_or("before: not a page cursor")?;
                let at = at.parse().map_err(|_| "before: not a page cursor")?;
                search.before = Some((at, id.to_owned()));
                continue;
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
        kept.append_pair(&name, &value);
    }
    if search.to <= search.from {
        return Err("to must be after from".to_owned());
    }
    if search.to - search.from > MAX_DAYS * DAY_MS + 1 {
        return Err(format!("at most {MAX_DAYS} days"));
    }
    Ok(Query {
        search,
        text: kept.finish(),
    })
}

/// `GET /console/audit[?system=&endpoint=&outcome=&from=&to=&before=]`.
pub(crate) async fn search(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    let query = match parse(raw.as_deref().unwrap_or(""), state.now_millis()) {
        Ok(query) => query,
        Err(reason) => {
            body.alert(&reason);
            return respond(&operator, t.audit, &body, StatusCode::BAD_REQUEST);
        }
    };
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    search_form(&mut body, t, &query);
    // One more than a page: whether an older page exists.
    let mut search = query.search.clone();
    search.limit = PAGE + 1;
    let mut records = match db.search_audit(&search).await {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(error = %error, "console: audit search failed");
            body.alert(t.unavailable);
            return respond(&operator, t.audit, &body, StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let more = records.len() > PAGE as usize;
    records.truncate(PAGE as usize);
    body.raw("<p><a href=\"/console/audit.csv?")
        .text(&query.text)
        .raw("\" download>")
        .text(t.audit_csv)
        .raw("</a></p>");
    records_table(&mut body, t, &records);
    body.raw("<nav class=\"pages\" aria-label=\"pages\">");
    if query.search.before.is_some() {
        body.raw("<a href=\"/console/audit?")
            .text(&query.text)
            .raw("\">")
            .text(t.newest)
            .raw("</a> ");
    }
    if let (true, Some(last)) = (more, records.last()) {
        let mut next = form_urlencoded::Serializer::new(query.text.clone());
        next.append_pair("before", &format!("{}.{}", last.at, last.id));
        body.raw("<a rel=\"next\" href=\"/console/audit?")
            .text(&next.finish())
            .raw("\">")
            .text(t.older)
            .raw("</a>");
    }
    body.raw("</nav>");
    respond(&operator, t.audit, &body, StatusCode::OK)
}

/// `GET /console/audit/{id}`: one record.
pub(crate) async fn record(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Ids are 32 hex digits: anything else names no record, without a query.
    let found = if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        db.audit_record(&id).await
    } else {
        Ok(None)
    };
    let record = match found {
        Ok(Some(record)) => record,
        Ok(None) => {
            body.raw("<p role=\"alert\">").text(t.no_record).raw("</p>");
            return respond(&operator, t.record, &body, StatusCode::NOT_FOUND);
        }
        Err(error) => {
            tracing::error!(error = %error, "console: audit record read failed");
            body.alert(t.unavailable);
            return respond(&operator, t.record, &body, StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    body.raw("<dl class=\"record\">");
    let cost = cost_text(&record);
    let latency = format!("{} ms", record.latency_ms);
    let status = record.status.to_string();
    let segments = record.segments.map(|s| s.to_string());
    let fields: [(&str, Option<&str>); 17] = [
        (t.at, Some(&when(Some(record.at)))),
        (t.system, record.system.as_deref()),
        (t.key_id, record.key_id.as_deref()),
        (t.endpoint, Some(&record.endpoint)),
        (t.purpose, record.purpose.as_deref()),
        (t.country, record.country.as_deref()),
        (t.number, record.masked_to.as_deref()),
        (t.channel, record.channel.as_deref()),
        (t.provider, record.provider.as_deref()),
        (t.segments, segments.as_deref()),
        (t.cost, cost.as_deref()),
        (t.status, Some(&status)),
        (t.outcome, Some(&record.outcome)),
        (t.refused_by, record.refused_by.as_deref()),
        (t.receipt, record.receipt.as_deref()),
        (t.latency, Some(&latency)),
        (
            t.request_id,
            Some(&record.request_id)
                .filter(|id| !id.is_empty())
                .map(String::as_str),
        ),
    ];
    for (name, value) in fields {
        body.raw("<dt>")
            .text(name)
            .raw("</dt><dd>")
            .text(value.unwrap_or("-"))
            .raw("</dd>");
    }
    body.raw("</dl><section aria-labelledby=\"attempts\"><h2 id=\"attempts\">")
        .text(t.attempts)
        .raw("</h2><ol>");
    for attempt in record.providers.as_deref().unwrap_or("").split_whitespace() {
        let (provider, outcome) = attempt.split_once(':').unwrap_or((attempt, ""));
        body.raw("<li><code>")
            .text(provider)
            .raw("</code>: ")
            .text(outcome)
            .raw("</li>");
    }
    body.raw("</ol></section><p><a href=\"/console/audit\">")
        .text(t.audit)
        .raw("</a></p>");
    let title = format!("{} {}", t.record, record.id);
    respond(&operator, &title, &body, StatusCode::OK)
}

/// `GET /console/audit.csv?...`: the search's records, newest first.
pub(crate) async fn export(
    State(state): State<AppState>,
    _operator: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut query = match parse(raw.as_deref().unwrap_or(""), state.now_millis()) {
        Ok(query) => query,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let Some(db) = &state.db else {
        return StatusCode::NOT_FOUND.into_response();
    };
    query.search.limit = MAX_SEARCH_ROWS;
    let records = match db.search_audit(&query.search).await {
        Ok(records) => records,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit trail cannot be read now",
            )
                .into_response();
        }
    };
    let mut response = to_csv(&records).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit.csv\""),
    );
    response
}

/// The records as CSV, one per line; text cells guarded against spreadsheet formulas.
fn to_csv(records: &[AuditRecord]) -> String {
    let mut out = String::from(
        "id,at,system,key_id,endpoint,purpose,country,masked_to,channel,providers,provider,segments,cost,currency,status,outcome,refused_by,receipt,latency_ms\r\n",
    );
    for r in records {
        let text = |value: &Option<String>| csv_cell(value.as_deref().unwrap_or(""));
        let cells = [
            csv_cell(&r.id),
            r.at.to_string(),
            text(&r.system),
            text(&r.key_id),
            csv_cell(&r.endpoint),
            text(&r.purpose),
            text(&r.country),
            text(&r.masked_to),
            text(&r.channel),
            text(&r.providers),
            text(&r.provider),
            r.segments.map(|s| s.to_string()).unwrap_or_default(),
            r.cost_micros.map(micros_text).unwrap_or_default(),
            text(&r.currency),
            r.status.to_string(),
            csv_cell(&r.outcome),
            text(&r.refused_by),
            text(&r.receipt),
            r.latency_ms.to_string(),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cost_text(record: &AuditRecord) -> Option<String> {
    let (micros, currency) = (record.cost_micros?, record.currency.as_deref()?);
    Some(format!("{} {currency}", micros_text(micros)))
}

fn search_form(body: &mut Html, t: &Strings, query: &Query) {
    let day = |at: i64| when(Some(at)).get(..10).unwrap_or("").to_owned();
    let s = &query.search;
    body.raw("<p class=\"note\">")
        .text(t.audit_note)
        .raw("</p><form class=\"range\" method=\"get\" action=\"/console/audit\">");
    let fields: [(&str, &'static str, &str, Option<&String>); 3] = [
        (t.system, "system", "text", s.system.as_ref()),
        (t.endpoint, "endpoint", "text", s.endpoint.as_ref()),
        (t.outcome, "outcome", "text", s.outcome.as_ref()),
    ];
    for (label, name, kind, value) in fields {
        body.raw("<label class=\"inline\">")
            .text(label)
            .raw(" <input name=\"")
            .raw(name)
            .raw("\" type=\"")
            .raw(kind)
            .raw("\" size=\"14\" value=\"")
            .text(value.map_or("", String::as_str))
            .raw("\"></label> ");
    }
    body.raw("<label class=\"inline\">")
        .text(t.from)
        .raw(" <input type=\"date\" name=\"from\" value=\"")
        .text(&day(s.from))
        .raw("\"></label> <label class=\"inline\">")
        .text(t.to)
        .raw(" <input type=\"date\" name=\"to\" value=\"")
        .text(&day(s.to - 1))
        .raw("\"></label> <button type=\"submit\">")
        .text(t.search)
        .raw("</button></form>");
}

fn records_table(body: &mut Html, t: &Strings, records: &[AuditRecord]) {
    body.raw("<table class=\"audit\"><thead><tr>");
    for heading in [
        t.at, t.system, t.endpoint, t.outcome, t.country, t.number, t.provider, t.cost,
    ] {
        body.raw("<th scope=\"col\">").text(heading).raw("</th>");
    }
    body.raw("</tr></thead><tbody>");
    for r in records {
        body.raw("<tr><td><a href=\"/console/audit/")
            .text(&r.id)
            .raw("\">")
            .text(&when(Some(r.at)))
            .raw("</a></td>");
        let outcome = match &r.refused_by {
            Some(limit) => format!("{} ({limit})", r.outcome),
            None => r.outcome.clone(),
        };
        let cost = cost_text(r);
        for cell in [
            r.system.as_deref(),
            Some(r.endpoint.as_str()),
            Some(outcome.as_str()),
            r.country.as_deref(),
            r.masked_to.as_deref(),
            r.provider.as_deref(),
            cost.as_deref(),
        ] {
            body.raw("<td>").text(cell.unwrap_or("-")).raw("</td>");
        }
        body.raw("</tr>");
    }
    if records.is_empty() {
        body.raw("<tr><td colspan=\"8\">")
            .text(t.none)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table>");
}

fn respond(operator: &Operator, title: &str, body: &Html, status: StatusCode) -> Response {
    operator.page(title, Nav::Audit, "/console/audit", body, status)
}
