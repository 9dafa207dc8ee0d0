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
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Authorized, Json, JsonOrEmpty, need};
use super::idempotency;
use super::wire::{WireChannel, WirePurpose, parse_number};
use crate::audit::{AuditHandle, Outcome};
use crate::problem::Problem;
use crate::state::AppState;

/// `POST /v1/challenges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Start {
    to: String,
    #[serde(default)]
    channel: WireChannel,
    #[serde(default)]
    purpose: WirePurpose,
    subject: Option<String>,
    locale: Option<String>,
    /// The end user's IP: without it the per-IP limits cannot apply.
    client_ip: Option<IpAddr>,
    /// Base64 bytes bound into the code (e.g. a payment's amount and payee).
    context: Option<String>,
}

/// `POST /v1/challenges/{id}/resend`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resend {
    channel: Option<WireChannel>,
    client_ip: Option<IpAddr>,
    context: Option<String>,
}

/// `POST /v1/challenges/{id}/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verify {
    code: String,
    context: Option<String>,
}

/// Starts a challenge.
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
            let mut body = serde_json::Map::new();
            body.insert("challenge_id".to_owned(), challenge_id.to_string().into());
            body.insert("expires_at".to_owned(), super::rfc3339(expires_at).into());
            Ok(super::unknown_outcome(
                &error,
                body,
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
                serde_json::Map::new(),
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
pub(crate) async fn verify(
    State(state): State<AppState>,
    Authorized(caller, _): Authorized<need::ChallengesVerify>,
    Path(id): Path<String>,
    Json { value: verify, .. }: Json<Verify>,
) -> Result<Response, Problem> {
    let id = challenge_id(&id)?;
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

fn started_body(started: &Started) -> Value {
    json!({
        "challenge_id": started.challenge_id.to_string(),
        "expires_at": super::rfc3339(started.expires_at),
        "channel": started.channel.as_str(),
        "to": started.masked_destination,
        "provider": started.provider,
    })
}

/// A verification outcome as status and body.
fn verdict(outcome: &VerifyOutcome) -> Response {
    let name = outcome.as_str();
    let (status, body) = match outcome {
        VerifyOutcome::Verified { purpose, subject } => (
            StatusCode::OK,
            json!({"outcome": name, "purpose": purpose.as_str(), "subject": subject}),
        ),
        VerifyOutcome::Mismatch { attempts_left } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"outcome": name, "attempts_left": attempts_left}),
        ),
        VerifyOutcome::Expired => (StatusCode::GONE, json!({"outcome": name})),
        VerifyOutcome::AlreadyUsed => (StatusCode::CONFLICT, json!({"outcome": name})),
        VerifyOutcome::AttemptsExhausted => {
            (StatusCode::TOO_MANY_REQUESTS, json!({"outcome": name}))
        }
        VerifyOutcome::AccountLocked => (StatusCode::LOCKED, json!({"outcome": name})),
        _ => (StatusCode::NOT_FOUND, json!({"outcome": "not_found"})),
    };
    let audited = match outcome {
        VerifyOutcome::Verified { .. } => "ok",
        _ if status == StatusCode::NOT_FOUND => "not_found",
        _ => name,
    };
    let audited = axum::Extension(Outcome(audited));
    (status, audited, axum::Json(body)).into_response()
}
