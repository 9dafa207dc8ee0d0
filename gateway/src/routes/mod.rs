//! One file per endpoint group.

pub(crate) mod auth0;
pub(crate) mod callbacks;
pub(crate) mod challenges;
pub(crate) mod fields;
pub(crate) mod idempotency;
pub(crate) mod json;
pub(crate) mod messages;
pub(crate) mod okta;
pub(crate) mod ops;
pub(crate) mod totp;
pub(crate) mod usage;
pub(crate) mod wire;

use axum::http::{HeaderMap, header};

use crate::audit::Audit;
use crate::problem::Problem;
use crate::state::AppState;

/// Finishes a request: writes its audit record (before the response leaves), counts it by
/// endpoint and outcome (`ok`, or the error code), and turns the result into the response.
pub(crate) async fn respond(
    state: &AppState,
    audit: Audit,
    result: Result<axum::response::Response, Problem>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (outcome, response) = match result {
        Ok(response) => (
            response
                .extensions()
                .get::<Outcome>()
                .map_or("ok", |outcome| outcome.0),
            response,
        ),
        Err(problem) => (problem.code, problem.into_response()),
    };
    let (started, endpoint) = (audit.started(), endpoint_name(audit.endpoint()));
    audit.finish(response.status(), outcome).await;
    state.metrics.record(endpoint, outcome, started.elapsed());
    response
}

/// What a successful response's audit record and metrics call its outcome when not `ok`
/// (a verification's `mismatch` or `not_found` is an answer, not an error body).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome(pub(crate) &'static str);

/// Relays `request` and answers what was sent, recording providers and segments.
pub(crate) async fn relay_answer(
    state: &AppState,
    mut request: phone_otp::RelayRequest,
    audit: &mut Audit,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse as _;
    request.reference = audit.reference();
    match state.otp.relay(request).await {
        Ok(relayed) => {
            audit.relayed(&relayed);
            Ok((
                axum::http::StatusCode::OK,
                axum::Json(messages::sent_body(&relayed)),
            )
                .into_response())
        }
        Err(phone_otp::RelayError::Delivery(failure)) if failure.may_have_delivered() => {
            audit.failed(failure.attempts());
            // The request's key (`Idempotency-Key`, `request_id`) stays spent.
            Ok(unknown_outcome(
                &failure,
                serde_json::Map::new(),
                "a provider was reached and did not answer in time: the message may have been delivered; do not send another code at once (a retry of this request sends nothing)",
            ))
        }
        Err(error) => {
            if let phone_otp::RelayError::Delivery(failure) = &error {
                audit.failed(failure.attempts());
            }
            Err(crate::problem::relay_problem(&error))
        }
    }
}

/// 202: a provider was reached and gave no answer in time, so the message may have been
/// delivered. Not an error, which would invite a retry and a second code. `body` (the
/// challenge id, for a challenge) and `detail` say what to do next. Audited
/// and counted in the ledger as `unknown`.
pub(crate) fn unknown_outcome(
    failure: &phone_otp::ProviderError,
    mut body: serde_json::Map<String, serde_json::Value>,
    detail: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let attempts: Vec<String> = failure
        .attempts()
        .iter()
        .map(crate::audit::attempt_label)
        .collect();
    body.insert("outcome".to_owned(), "unknown".into());
    body.insert("detail".to_owned(), detail.into());
    body.insert("attempts".to_owned(), attempts.into());
    let mut response = (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(serde_json::Value::Object(body)),
    )
        .into_response();
    response.extensions_mut().insert(Outcome("unknown"));
    response
}

/// The `'static` name of an endpoint, for metric labels.
fn endpoint_name(name: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|e| **e == name)
        .copied()
        .unwrap_or("other")
}

const ENDPOINTS: &[&str] = &[
    "okta_telephony",
    "auth0_phone_message",
    "messages",
    "challenges_start",
    "challenges_resend",
    "challenges_verify",
    "totp_enroll",
    "totp_confirm",
    "totp_verify",
    "totp_disable",
    "usage",
];

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
