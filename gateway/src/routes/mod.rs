//! One file per endpoint group.

pub(crate) mod auth0;
pub(crate) mod callbacks;
pub(crate) mod caller;
pub(crate) mod challenges;
pub(crate) mod extract;
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

use crate::audit::AuditHandle;
use crate::outcome::Outcome;
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
                axum::Json(messages::Sent::of(&relayed)),
            )
                .into_response())
        }
        Err(phone_otp::RelayError::Delivery(failure)) if failure.may_have_delivered() => {
            audit.record().failed(failure.attempts());
            // The request's key (`Idempotency-Key`, `request_id`) stays spent.
            Ok(unknown_outcome(
                &failure,
                None,
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
/// delivered. Not an error, which would invite a retry and a second code. `kept` (the
/// challenge, for a start) and `detail` say what to do next. Audited and counted in the
/// ledger as `unknown`.
pub(crate) fn unknown_outcome(
    failure: &phone_otp::ProviderError,
    kept: Option<(phone_otp::ChallengeId, phone_otp::Timestamp)>,
    detail: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = Unknown {
        outcome: "unknown".to_owned(),
        detail: detail.to_owned(),
        attempts: failure
            .attempts()
            .iter()
            .map(crate::audit::attempt_label)
            .collect(),
        challenge_id: kept.map(|(id, _)| id.to_string()),
        expires_at: kept.map(|(_, at)| rfc3339(at)),
    };
    let mut response = (axum::http::StatusCode::ACCEPTED, axum::Json(body)).into_response();
    response.extensions_mut().insert(Outcome("unknown"));
    response
}

/// A send whose outcome is not known: a provider was reached and did not answer in time.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Unknown {
    /// Always `unknown`.
    outcome: String,
    /// What to do next.
    detail: String,
    /// Each provider tried and what it did (`primary:timeout`).
    attempts: Vec<String>,
    /// A start: the challenge, kept (verify with it if the code arrives).
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge_id: Option<String>,
    /// A start: when its code stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
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
