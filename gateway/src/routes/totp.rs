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

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phone_otp::totp::{TotpError, TotpOutcome, TotpService};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Authorized, Json, need};
use crate::problem::{Problem, set_retry_after, whole_seconds};
use crate::state::AppState;

/// `POST /v1/totp/enroll`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enroll {
    /// The user.
    #[schema(min_length = 1, max_length = 256)]
    subject: String,
    /// What the app shows under the issuer (e.g. the user's email); the subject if absent.
    label: Option<String>,
}

/// `POST /v1/totp/confirm` and `/verify` (a code or a recovery code, not both).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    /// The user.
    #[schema(min_length = 1, max_length = 256)]
    subject: String,
    /// The authenticator's code.
    #[schema(pattern = "^[0-9]{6,8}$", example = "123456")]
    code: Option<String>,
    /// Or one of the recovery codes (verify only).
    recovery_code: Option<String>,
}

/// `POST /v1/totp/disable`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Disable {
    /// The user.
    #[schema(min_length = 1, max_length = 256)]
    subject: String,
}

/// A new factor, shown once (`Cache-Control: no-store`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Enrollment<'a> {
    /// The `otpauth://` key URI for the app.
    uri: &'a str,
    /// The URI as a QR code (SVG).
    qr_svg: Option<&'a str>,
    /// The secret in base32, for typing in.
    secret: &'a str,
    /// Ten single-use recovery codes.
    recovery_codes: Vec<&'a str>,
}

/// An authenticator check's outcome: `verified` (200), `mismatch` (422), `already_used`
/// (409), `account_locked` (423), `limited` (429, with `retry_after`) or `not_enrolled`
/// (404).
#[derive(Serialize, ToSchema)]
pub(crate) struct TotpVerdict {
    /// The outcome.
    outcome: &'static str,
    /// `limited`: seconds to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// The factor service, on a gateway configured with one (404 otherwise).
pub(crate) struct Factors(TotpService);

impl FromRequestParts<AppState> for Factors {
    type Rejection = Problem;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        state.totp.clone().map(Self).ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "authenticator codes are not configured",
            )
        })
    }
}

/// Starts enrollment: a new secret, its key URI and ten recovery codes, shown once.
#[utoipa::path(
    post,
    path = "/v1/totp/enroll",
    operation_id = "totp_enroll",
    tag = "totp",
    request_body = Enroll,
    responses(
        (status = 201, description = "Shown once (`Cache-Control: no-store`).", body = Enrollment),
        (status = 404, description = "`not_found`: authenticator codes are not configured.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`already_enrolled`: disable the confirmed factor first.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["totp:enroll"]), ("access_token" = ["totp:enroll"]))
)]
pub(crate) async fn enroll(
    Authorized(caller, _): Authorized<need::TotpEnroll>,
    Factors(totp): Factors,
    Json { value: enroll, .. }: Json<Enroll>,
) -> Result<Response, Problem> {
    let label = enroll.label.as_deref().unwrap_or(&enroll.subject);
    let enrollment = totp
        .enroll(Some(&caller.system), &enroll.subject, label)
        .await?;
    let codes: Vec<&str> = enrollment
        .recovery_codes
        .iter()
        .map(|code| code.expose_secret())
        .collect();
    let qr_svg = enrollment.qr_svg();
    let body = Enrollment {
        uri: enrollment.uri.expose_secret(),
        qr_svg: qr_svg.as_ref().map(ExposeSecret::expose_secret),
        secret: enrollment.secret_base32.expose_secret(),
        recovery_codes: codes,
    };
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    // Secrets in the body: no cache may keep them.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Activates a factor with its first correct code.
#[utoipa::path(
    post,
    path = "/v1/totp/confirm",
    operation_id = "totp_confirm",
    tag = "totp",
    request_body = Check,
    responses(
        (status = 200, description = "`verified`: the factor is active.", body = TotpVerdict),
        (status = 404, description = "`not_enrolled`, or authenticator codes are not configured.", body = TotpVerdict),
        (status = 409, description = "`already_used`: this time step was accepted before.", body = TotpVerdict),
        (status = 422, description = "`mismatch`.", body = TotpVerdict),
        (status = 423, description = "`account_locked`.", body = TotpVerdict),
        (status = 429, description = "`limited`, with `retry_after`.", body = TotpVerdict),
    ),
    security(("api_key" = ["totp:enroll"]), ("access_token" = ["totp:enroll"]))
)]
pub(crate) async fn confirm(
    Authorized(caller, _): Authorized<need::TotpEnroll>,
    Factors(totp): Factors,
    Json { value: check, .. }: Json<Check>,
) -> Result<Response, Problem> {
    let (Some(code), None) = (check.code, check.recovery_code) else {
        return Err(invalid("confirm takes a code"));
    };
    let outcome = totp
        .confirm(Some(&caller.system), &check.subject, &code)
        .await?;
    Ok(verdict(outcome))
}

/// Checks an authenticator code (a time step is accepted once) or a recovery code.
#[utoipa::path(
    post,
    path = "/v1/totp/verify",
    operation_id = "totp_verify",
    tag = "totp",
    request_body = Check,
    responses(
        (status = 200, description = "`verified`.", body = TotpVerdict),
        (status = 404, description = "`not_enrolled`, or authenticator codes are not configured.", body = TotpVerdict),
        (status = 409, description = "`already_used`: a replayed code.", body = TotpVerdict),
        (status = 422, description = "`mismatch`.", body = TotpVerdict),
        (status = 423, description = "`account_locked`.", body = TotpVerdict),
        (status = 429, description = "`limited`, with `retry_after`.", body = TotpVerdict),
    ),
    security(("api_key" = ["totp:verify"]), ("access_token" = ["totp:verify"]))
)]
pub(crate) async fn verify(
    Authorized(caller, _): Authorized<need::TotpVerify>,
    Factors(totp): Factors,
    Json { value: check, .. }: Json<Check>,
) -> Result<Response, Problem> {
    let (tenant, subject) = (Some(caller.system.as_str()), check.subject.as_str());
    let outcome = match (check.code, check.recovery_code) {
        (Some(code), None) => totp.verify(tenant, subject, &code).await,
        (None, Some(code)) => totp.verify_recovery(tenant, subject, &code).await,
        _ => return Err(invalid("give exactly one of code and recovery_code")),
    }?;
    Ok(verdict(outcome))
}

/// Removes a user's factor (after they proved themselves another way).
#[utoipa::path(
    post,
    path = "/v1/totp/disable",
    operation_id = "totp_disable",
    tag = "totp",
    request_body = Disable,
    responses(
        (status = 204, description = "Removed (or there was none)."),
        (status = 404, description = "`not_found`: authenticator codes are not configured.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["totp:enroll"]), ("access_token" = ["totp:enroll"]))
)]
pub(crate) async fn disable(
    Authorized(caller, _): Authorized<need::TotpEnroll>,
    Factors(totp): Factors,
    Json { value: disable, .. }: Json<Disable>,
) -> Result<Response, Problem> {
    totp.disable(Some(&caller.system), &disable.subject).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
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
    let body = TotpVerdict {
        outcome: name,
        retry_after: wait.map(whole_seconds),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(wait) = wait {
        set_retry_after(&mut response, wait);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl From<TotpError> for Problem {
    fn from(error: TotpError) -> Self {
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
}
