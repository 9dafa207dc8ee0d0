//! One file per endpoint group.

pub(crate) mod auth0;
pub(crate) mod callbacks;
pub(crate) mod challenges;
mod extract;
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

use crate::audit::{AuditHandle, Outcome};
use crate::problem::Problem;
use crate::state::AppState;

/// Relays `request` and answers what was sent, recording providers and segments.
pub(crate) async fn relay_answer(
    state: &AppState,
    mut request: phone_otp::RelayRequest,
    audit: &AuditHandle,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse as _;
    request.reference = audit.record().reference();
    match state.otp.relay(request).await {
        Ok(relayed) => {
            audit.record().relayed(&relayed);
            Ok((
                axum::http::StatusCode::OK,
                axum::Json(messages::sent_body(&relayed)),
            )
                .into_response())
        }
        Err(phone_otp::RelayError::Delivery(failure)) if failure.may_have_delivered() => {
            audit.record().failed(failure.attempts());
            // The request's key (`Idempotency-Key`, `request_id`) stays spent.
            Ok(unknown_outcome(
                &failure,
                serde_json::Map::new(),
                "a provider was reached and did not answer in time: the message may have been delivered; do not send another code at once (a retry of this request sends nothing)",
            ))
        }
        Err(error) => {
            if let phone_otp::RelayError::Delivery(failure) = &error {
                audit.record().failed(failure.attempts());
            }
            Err(error.into())
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
