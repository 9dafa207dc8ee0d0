//! One file per endpoint group.

pub(crate) mod auth0;
pub(crate) mod callbacks;
pub(crate) mod challenges;
pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod messages;
pub(crate) mod okta;
pub(crate) mod ops;
pub(crate) mod wire;

use axum::http::{HeaderMap, header};

use crate::app::AppState;
use crate::problem::Problem;

/// Counts a request to `endpoint` by its outcome (`ok`, or the error code) and duration,
/// and turns the result into the response.
pub(crate) fn respond(
    state: &AppState,
    endpoint: &'static str,
    started: std::time::Instant,
    result: Result<axum::response::Response, Problem>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (outcome, response) = match result {
        Ok(response) => ("ok", response),
        Err(problem) => (problem.code, problem.into_response()),
    };
    state.metrics.record(endpoint, outcome, started.elapsed());
    response
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A timestamp as RFC 3339 UTC with milliseconds (`2022-01-28T21:48:34.321Z`).
pub(crate) fn rfc3339(at: phone_otp::Timestamp) -> String {
    let nanos = i128::from(at.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
