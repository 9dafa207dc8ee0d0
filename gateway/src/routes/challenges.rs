//! The library's own flow for backends in other languages: start a challenge, resend,
//! verify. The gateway generates and checks the code; the caller keeps the challenge id.
//!
//! - `POST /v1/challenges` -> 201 `{challenge_id, expires_at, channel, to, provider}`
//! - `POST /v1/challenges/{id}/resend` -> 200, same shape
//! - `POST /v1/challenges/{id}/verify` `{code}` -> 200 `{"outcome":"verified"}`, or the
//!   typed refusal with a fitting status (422 mismatch with `attempts_left`, 410 expired,
//!   409 already used, 429 attempts exhausted, 423 account locked, 404 not found).
//!
//! Start and resend take an `Idempotency-Key` (see [`super::idempotency`]).

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use phone_otp::{
    ChallengeId, ResendError, ResendRequest, StartError, StartRequest, Started, VerifyOutcome,
    VerifyRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Authorized, Json, JsonOrEmpty, need};
use super::idempotency;
use super::wire::{WireChannel, WirePurpose, parse_number};
use crate::audit::AuditHandle;
use crate::outcome::Outcome;
use crate::problem::Problem;
use crate::state::AppState;

/// `POST /v1/challenges`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Start {
    /// The number: E.164 (`+819012345678`), or national in the default region.
    #[schema(example = "+819012345678", min_length = 1, max_length = 32)]
    to: String,
    #[serde(default)]
    channel: WireChannel,
    #[serde(default)]
    purpose: WirePurpose,
    /// The user it is for (rate-limited per subject, returned on `verified`).
    #[schema(max_length = 256)]
    subject: Option<String>,
    /// The message language (`en`, `ja`; default English).
    locale: Option<String>,
    /// The end user's IP: without it the per-IP limits cannot apply.
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    client_ip: Option<IpAddr>,
    /// Base64 bytes bound into the code (e.g. a payment's amount and payee).
    context: Option<String>,
}

/// `POST /v1/challenges/{id}/resend`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resend {
    /// Another channel than the challenge's own (voice after SMS failed).
    channel: Option<WireChannel>,
    /// The resending client's IP (needed when the start gave one).
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    client_ip: Option<IpAddr>,
    /// The start's context, base64 (needed when the start gave one).
    context: Option<String>,
}

/// `POST /v1/challenges/{id}/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verify {
    /// The code the user typed.
    #[schema(example = "482913", max_length = 64)]
    code: String,
    /// The start's context, base64 (needed when the start gave one).
    context: Option<String>,
}

/// Starts a challenge.
#[utoipa::path(
    post,
    path = "/v1/challenges",
    operation_id = "challenges_start",
    tag = "challenges",
    request_body = Start,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer again (header `Idempotent-Replayed: true`) and sends no second code")),
    responses(
        (status = 201, description = "The code went out: keep `challenge_id`.", body = ChallengeSent),
        (status = 202, description = "A provider did not answer in time: the challenge is kept and its code may arrive.", body = super::Unknown),
        (status = 409, description = "`request_in_progress`: the first request with this key has not answered yet.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: too many wrong codes in a row.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "`delivery_failed`: no provider could deliver.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["challenges:start"]), ("access_token" = ["challenges:start"]))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    audit: AuditHandle,
    Authorized(caller, _): Authorized<need::ChallengesStart>,
    headers: HeaderMap,
    Json {
        value: start,
        bytes,
    }: Json<Start>,
) -> Result<Response, Problem> {
    let key = idempotency::header_key(&headers)?;
    let fingerprint = idempotency::fingerprint("challenges_start", "", &bytes);
    let to = parse_number(&start.to, state.default_region.as_deref())?;
    let (channel, purpose) = (start.channel.into(), start.purpose.into());
    audit.record().destination(&to, channel, purpose);
    let mut request = StartRequest::new(to, channel, purpose).tenant(&caller.system);
    if let Some(subject) = start.subject {
        request = request.subject(subject);
    }
    if let Some(locale) = start.locale {
        request = request.locale(super::okta::locale(&locale));
    }
    if let Some(ip) = start.client_ip {
        request = request.client_ip(ip);
    }
    if let Some(context) = start.context {
        request = request.context(decode_context(&context)?);
    }
    let send = start_challenge(&state, request, &audit);
    idempotency::once(&state, key, &caller.system, &fingerprint, send).await
}

async fn start_challenge(
    state: &AppState,
    mut request: StartRequest,
    audit: &AuditHandle,
) -> Result<Response, Problem> {
    request.reference = audit.record().reference();
    audit.reserve().await?;
    match state.otp.start(request).await {
        Ok(started) => {
            audit.record().challenge_sent(&started);
            audit.record().challenge(&started.challenge_id);
            Ok((StatusCode::CREATED, axum::Json(started_body(&started))).into_response())
        }
        Err(StartError::DeliveryUnknown {
            challenge_id,
            expires_at,
            error,
        }) => {
            // The code may arrive: the challenge is kept and its id answered, so the user
            // can enter the code or ask for a resend; starting again would send a second
            // code.
            audit.record().failed(error.attempts());
            audit.record().challenge(&challenge_id);
            Ok(super::unknown_outcome(
                &error,
                Some((challenge_id, expires_at)),
                "a provider was reached and did not answer in time: the code may arrive; verify it with this id, or resend if it does not",
            ))
        }
        Err(error) => {
            if let StartError::Delivery(failure) = &error {
                audit.record().failed(failure.attempts());
            }
            Err(error.into())
        }
    }
}

/// Sends a new code for a live challenge.
#[utoipa::path(
    post,
    path = "/v1/challenges/{id}/resend",
    operation_id = "challenges_resend",
    tag = "challenges",
    request_body(content = Option<Resend>, description = "Optional: an empty body resends on the challenge's own channel."),
    params(
        ("id" = String, Path, description = "The challenge id a start answered"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer again and sends no further code"),
    ),
    responses(
        (status = 200, description = "A new code went out (the last three stay valid).", body = ChallengeSent),
        (status = 202, description = "A provider did not answer in time: the code may arrive.", body = super::Unknown),
        (status = 404, description = "`not_found`: no such challenge for this system.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "`already_used` or `request_in_progress`.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 410, description = "`expired`.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "`delivery_failed`.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["challenges:start"]), ("access_token" = ["challenges:start"]))
)]
pub(crate) async fn resend(
    State(state): State<AppState>,
    audit: AuditHandle,
    Authorized(caller, _): Authorized<need::ChallengesStart>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonOrEmpty {
        value: resend,
        bytes,
    }: JsonOrEmpty<Resend>,
) -> Result<Response, Problem> {
    let id = challenge_id(&id)?;
    audit.record().challenge(&id);
    let key = idempotency::header_key(&headers)?;
    let fingerprint = idempotency::fingerprint("challenges_resend", &id.to_string(), &bytes);
    // Only the system that started the challenge may resend it: for any other the library
    // answers not found, before anything is charged or sent.
    let mut request = ResendRequest::new(id).tenant(&caller.system);
    if let Some(channel) = resend.channel {
        request = request.channel(channel.into());
    }
    if let Some(ip) = resend.client_ip {
        request = request.client_ip(ip);
    }
    if let Some(context) = resend.context {
        request = request.context(decode_context(&context)?);
    }
    let send = resend_challenge(&state, request, &audit);
    idempotency::once(&state, key, &caller.system, &fingerprint, send).await
}

async fn resend_challenge(
    state: &AppState,
    mut request: ResendRequest,
    audit: &AuditHandle,
) -> Result<Response, Problem> {
    request.reference = audit.record().reference();
    audit.reserve().await?;
    match state.otp.resend_with(request).await {
        Ok(started) => {
            audit.record().challenge_sent(&started);
            Ok((StatusCode::OK, axum::Json(started_body(&started))).into_response())
        }
        Err(ResendError::Delivery(failure)) if failure.may_have_delivered() => {
            audit.record().failed(failure.attempts());
            Ok(super::unknown_outcome(
                &failure,
                None,
                "a provider was reached and did not answer in time: the code may arrive; wait before resending",
            ))
        }
        Err(error) => {
            if let ResendError::Delivery(failure) = &error {
                audit.record().failed(failure.attempts());
            }
            Err(error.into())
        }
    }
}

/// Checks a code.
#[utoipa::path(
    post,
    path = "/v1/challenges/{id}/verify",
    operation_id = "challenges_verify",
    tag = "challenges",
    request_body = Verify,
    params(("id" = String, Path, description = "The challenge id a start answered")),
    responses(
        (status = 200, description = "`verified`.", body = Verdict),
        (status = 404, description = "`not_found`: no such challenge for this system (no attempt spent).", body = Verdict),
        (status = 409, description = "`already_used`.", body = Verdict),
        (status = 410, description = "`expired`.", body = Verdict),
        (status = 422, description = "`mismatch`, with `attempts_left`.", body = Verdict),
        (status = 423, description = "`account_locked`.", body = Verdict),
        (status = 429, description = "`attempts_exhausted`.", body = Verdict),
    ),
    security(("api_key" = ["challenges:verify"]), ("access_token" = ["challenges:verify"]))
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    audit: AuditHandle,
    Authorized(caller, _): Authorized<need::ChallengesVerify>,
    Path(id): Path<String>,
    Json { value: verify, .. }: Json<Verify>,
) -> Result<Response, Problem> {
    let id = challenge_id(&id)?;
    audit.record().challenge(&id);
    let context = match verify.context {
        Some(context) => decode_context(&context)?,
        None => Vec::new(),
    };
    // Another system's challenge is not found, and no attempt is spent on it.
    let request = VerifyRequest::new(id, &verify.code)
        .context(&context)
        .tenant(&caller.system);
    let outcome = state.otp.verify_with(request).await.map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the code could not be checked; treat as not verified",
        )
    })?;
    Ok(verdict(&outcome))
}

fn challenge_id(raw: &str) -> Result<ChallengeId, Problem> {
    raw.parse()
        .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", "no such challenge"))
}

fn decode_context(raw: &str) -> Result<Vec<u8>, Problem> {
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "context must be base64",
            )
        })
}

/// A challenge's code went out.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChallengeSent {
    /// Keep it in the session: verify and resend name it.
    challenge_id: String,
    /// When the code stops working (RFC 3339).
    expires_at: String,
    /// `sms` or `voice`.
    channel: String,
    /// The number, masked.
    to: String,
    /// The provider that accepted it.
    provider: String,
}

fn started_body(started: &Started) -> ChallengeSent {
    ChallengeSent {
        challenge_id: started.challenge_id.to_string(),
        expires_at: super::rfc3339(started.expires_at),
        channel: started.channel.as_str().to_owned(),
        to: started.masked_destination.clone(),
        provider: started.provider.clone(),
    }
}

/// A verification's outcome: `verified` (200), `mismatch` (422), `expired` (410),
/// `already_used` (409), `attempts_exhausted` (429), `account_locked` (423) or `not_found`
/// (404).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verdict {
    /// The outcome.
    outcome: String,
    /// `verified`: what the code was for.
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<String>,
    /// `verified`: the challenge's subject (null if it had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    subject: Option<Option<String>>,
    /// `mismatch`: wrong codes still allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u8>,
}

/// A verification outcome as status and body.
fn verdict(outcome: &VerifyOutcome) -> Response {
    let name = outcome.as_str();
    let answer = |outcome: &str| Verdict {
        outcome: outcome.to_owned(),
        purpose: None,
        subject: None,
        attempts_left: None,
    };
    let (status, body) = match outcome {
        VerifyOutcome::Verified { purpose, subject } => (
            StatusCode::OK,
            Verdict {
                purpose: Some(purpose.as_str().to_owned()),
                subject: Some(subject.clone()),
                ..answer(name)
            },
        ),
        VerifyOutcome::Mismatch { attempts_left } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Verdict {
                attempts_left: Some(*attempts_left),
                ..answer(name)
            },
        ),
        VerifyOutcome::Expired => (StatusCode::GONE, answer(name)),
        VerifyOutcome::AlreadyUsed => (StatusCode::CONFLICT, answer(name)),
        VerifyOutcome::AttemptsExhausted => (StatusCode::TOO_MANY_REQUESTS, answer(name)),
        VerifyOutcome::AccountLocked => (StatusCode::LOCKED, answer(name)),
        _ => (StatusCode::NOT_FOUND, answer("not_found")),
    };
    let audited = match outcome {
        VerifyOutcome::Verified { .. } => "ok",
        _ if status == StatusCode::NOT_FOUND => "not_found",
        _ => name,
    };
    let audited = axum::Extension(Outcome(audited));
    (status, audited, axum::Json(body)).into_response()
}
