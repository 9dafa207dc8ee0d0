//! Authenticator-app codes (TOTP) for backends in other languages. The gateway keeps the
//! factor (sealed secret, last step, recovery digests) in its store under the calling
//! system's tenant; the caller names its user by `subject`.
//!
//! - `POST /v1/totp/enroll` `{subject, label?}` -> 201 `{uri, qr_svg, secret,
//!   recovery_codes}` (shown once; `Cache-Control: no-store`), 409 if a confirmed factor
//!   exists
//! - `POST /v1/totp/confirm` `{subject, code}` -> 200 `{"outcome":"verified"}` activates it
//! - `POST /v1/totp/verify` `{subject, code}` or `{subject, recovery_code}` -> 200
//!   `{"outcome":"verified"}`, or 422 mismatch, 409 already used (a replayed code), 404 not
//!   enrolled, 423 account locked, 429 limited (`Retry-After`)
//! - `POST /v1/totp/disable` `{subject}` -> 204

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phone_otp::totp::{TotpError, TotpOutcome, TotpService};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::json::read_json;
use crate::audit::Audit;
use crate::auth::scope::Scope;
use crate::auth::{Caller, Peer, authorize};
use crate::problem::{Problem, set_retry_after, whole_seconds};
use crate::state::AppState;

/// `POST /v1/totp/enroll`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enroll {
    subject: String,
    /// What the app shows under the issuer (e.g. the user's email); the subject if absent.
    label: Option<String>,
}

/// `POST /v1/totp/confirm` and `/verify` (a code or a recovery code, not both).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    subject: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// `POST /v1/totp/disable`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    subject: String,
}

/// Who calls, the factor service, and the audit record: what every handler starts with.
async fn open(
    state: &AppState,
    audit: &mut Audit,
    headers: &HeaderMap,
    peer: Peer,
    scope: Scope,
) -> Result<(Caller, TotpService), Problem> {
    let caller = authorize(audit, state, headers, peer, scope, state.api.as_ref()).await?;
    let totp = state.totp.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "authenticator codes are not configured",
        )
    })?;
    Ok((caller, totp))
}

/// Starts enrollment: a new secret, its key URI and ten recovery codes, shown once.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut audit = Audit::start(&state, &headers, "totp_enroll");
    let result = async {
        let (caller, totp) = open(&state, &mut audit, &headers, peer, Scope::TotpEnroll).await?;
        let enroll: Enroll = read_json(&headers, body)?;
        let label = enroll.label.as_deref().unwrap_or(&enroll.subject);
        let enrollment = totp
            .enroll(Some(&caller.system), &enroll.subject, label)
            .await
            .map_err(|error| totp_problem(&error))?;
        let codes: Vec<&str> = enrollment
            .recovery_codes
            .iter()
            .map(|code| code.expose_secret())
            .collect();
        let qr_svg = enrollment.qr_svg();
        let body = json!({
            "uri": enrollment.uri.expose_secret(),
            "qr_svg": qr_svg.as_ref().map(ExposeSecret::expose_secret),
            "secret": enrollment.secret_base32.expose_secret(),
            "recovery_codes": codes,
        });
        let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
        // Secrets in the body: no cache may keep them.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    super::respond(&state, audit, result).await
}

/// Activates a factor with its first correct code.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut audit = Audit::start(&state, &headers, "totp_confirm");
    let result = async {
        let (caller, totp) = open(&state, &mut audit, &headers, peer, Scope::TotpEnroll).await?;
        let check: Check = read_json(&headers, body)?;
        let (Some(code), None) = (check.code, check.recovery_code) else {
            return Err(invalid("confirm takes a code"));
        };
        let outcome = totp
            .confirm(Some(&caller.system), &check.subject, &code)
            .await
            .map_err(|error| totp_problem(&error))?;
        Ok(verdict(outcome))
    }
    .await;
    super::respond(&state, audit, result).await
}

/// Checks an authenticator code (a time step is accepted once) or a recovery code.
pub(crate) async fn verify(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut audit = Audit::start(&state, &headers, "totp_verify");
    let result = async {
        let (caller, totp) = open(&state, &mut audit, &headers, peer, Scope::TotpVerify).await?;
        let check: Check = read_json(&headers, body)?;
        let (tenant, subject) = (Some(caller.system.as_str()), check.subject.as_str());
        let outcome = match (check.code, check.recovery_code) {
            (Some(code), None) => totp.verify(tenant, subject, &code).await,
            (None, Some(code)) => totp.verify_recovery(tenant, subject, &code).await,
            _ => return Err(invalid("give exactly one of code and recovery_code")),
        }
        .map_err(|error| totp_problem(&error))?;
        Ok(verdict(outcome))
    }
    .await;
    super::respond(&state, audit, result).await
}

/// Removes a user's factor (after they proved themselves another way).
pub(crate) async fn disable(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut audit = Audit::start(&state, &headers, "totp_disable");
    let result = async {
        let (caller, totp) = open(&state, &mut audit, &headers, peer, Scope::TotpEnroll).await?;
        let disable: Disable = read_json(&headers, body)?;
        totp.disable(Some(&caller.system), &disable.subject)
            .await
            .map_err(|error| totp_problem(&error))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    super::respond(&state, audit, result).await
}

fn invalid(message: &'static str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
}

/// An outcome as status and body; `Limited` carries `Retry-After`.
fn verdict(outcome: TotpOutcome) -> Response {
    let name = outcome.as_str();
    let status = match outcome {
        TotpOutcome::Verified => StatusCode::OK,
        TotpOutcome::Mismatch => StatusCode::UNPROCESSABLE_ENTITY,
        TotpOutcome::AlreadyUsed => StatusCode::CONFLICT,
        TotpOutcome::AccountLocked => StatusCode::LOCKED,
        TotpOutcome::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::NOT_FOUND,
    };
    let wait = match outcome {
        TotpOutcome::Limited { retry_after } => Some(retry_after),
        _ => None,
    };
    let mut body = json!({"outcome": name});
    if let Some(wait) = wait {
        body["retry_after"] = json!(whole_seconds(wait));
    }
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(wait) = wait {
        set_retry_after(&mut response, wait);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn totp_problem(error: &TotpError) -> Problem {
    match error {
        TotpError::InvalidRequest(reason) => invalid(reason),
        TotpError::AlreadyEnrolled => Problem::new(
            StatusCode::CONFLICT,
            "already_enrolled",
            "a confirmed authenticator is enrolled; disable it first",
        ),
        TotpError::Unreadable => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "secret_unreadable",
            "the stored secret does not open with the configured TOTP keys; treat as not verified",
        ),
        TotpError::Store(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot be reached; treat as not verified",
        ),
        _ => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request could not be completed; treat as not verified",
        ),
    }
}
