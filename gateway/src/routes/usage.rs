//! `GET /v1/usage?from=&to=&group_by=system,country,provider,day&system=`: requests,
//! sends, SMS parts and estimated cost per group, as JSON or (`format=csv` or
//! `Accept: text/csv`) as CSV. With the `usage:read` scope a caller reads its own system's
//! usage only; `usage:read:all` reads every system's (or one, with `system=`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::{Authorized, need};
use crate::auth::scope::Scope;
use crate::db::UsageQuery;
use crate::problem::Problem;
use crate::state::AppState;

/// The handler.
#[utoipa::path(
    get,
    path = "/v1/usage",
    operation_id = "usage_read",
    tag = "usage",
    params(
        ("from" = Option<String>, Query, description = "Start: a UTC day (`2026-11-01`) or an RFC 3339 time; default 30 days ago"),
        ("to" = Option<String>, Query, description = "End: a day (included) or an RFC 3339 time (excluded); default now"),
        ("group_by" = Option<String>, Query, description = "Comma-separated: system, country, provider, day, channel, endpoint, hour (a range of at most 31 days), outcome, refused_by (the limit that refused), prefix (calling code and two digits) (default system)"),
        ("system" = Option<String>, Query, description = "One system's rows (another's needs `usage:read:all`)"),
        ("format" = Option<String>, Query, description = "`csv` for CSV (or send `Accept: text/csv`)"),
    ),
    responses(
        (status = 200, description = "The totals per group.", content(
            (crate::db::UsageDocument = "application/json"),
            (String = "text/csv"),
        )),
        (status = 404, description = "`not_found`: usage needs a database.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["usage:read"]), ("access_token" = ["usage:read"]))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Authorized(caller, _): Authorized<need::UsageRead>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let query = query.unwrap_or_default();
    let query = UsageQuery::parse(&query, state.now_millis())
        .map_err(|reason| Problem::new(StatusCode::BAD_REQUEST, "invalid_request", reason))?;
    let system = if caller.scopes.contains(Scope::UsageReadAll) {
        query.system.as_deref()
    } else if query.system.as_ref().is_none_or(|s| *s == caller.system) {
        Some(caller.system.as_str())
    } else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "reading another system's usage needs the usage:read:all scope",
        ));
    };
    let Some(db) = &state.db else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "usage needs a database",
        ));
    };
    let report = db
        .usage(query.from, query.to, system, &query.group_by)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "usage query failed");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "usage cannot be read now",
            )
        })?;
    let csv = query.csv || wants_csv(&headers);
    Ok(if csv {
        let mut response = report.to_csv().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
        );
        response
    } else {
        axum::Json(report.to_json()).into_response()
    })
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}
