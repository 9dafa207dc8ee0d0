//! `POST /v1/messages`: deliver a code an internal system generated ("code, number,
//! subject"), through the templates and the provider router, under policy and limits.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use phone_otp::{RelayRequest, Relayed};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Authorized, Json, need};
use super::wire::{WireChannel, WirePurpose, parse_number};
use crate::audit::AuditHandle;
use crate::problem::Problem;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    to: String,
    code: String,
    #[serde(default)]
    channel: WireChannel,
    #[serde(default)]
    purpose: WirePurpose,
    locale: Option<String>,
    subject: Option<String>,
    /// The end user's IP, for the per-IP limit.
    client_ip: Option<IpAddr>,
    /// Sends at most one message per id while the code lives.
    request_id: Option<String>,
}

/// The handler.
pub(crate) async fn send(
    State(state): State<AppState>,
    audit: AuditHandle,
    Authorized(caller, _): Authorized<need::MessagesSend>,
    headers: HeaderMap,
    Json { value: message, .. }: Json<SendMessage>,
) -> Result<Response, Problem> {
    let to = parse_number(&message.to, state.default_region.as_deref())?;
    let (channel, purpose) = (message.channel.into(), message.purpose.into());
    audit.record().destination(&to, channel, purpose);
    let mut request = RelayRequest::new(to, channel, message.code, purpose).tenant(caller.system);
    if let Some(locale) = message.locale {
        request = request.locale(super::okta::locale(&locale));
    }
    if let Some(subject) = message.subject {
        request = request.subject(subject);
    }
    if let Some(ip) = message.client_ip {
        request = request.client_ip(ip);
    }
    if let Some(key) = idempotency_key(&headers, message.request_id)? {
        request = request.once(key);
    }
    audit.reserve().await?;
    super::relay_answer(&state, request, &audit).await
}

/// The request's key: the `Idempotency-Key` header or the body's `request_id` (the same
/// value if both are given). A repeat of a key the system already used sends nothing.
fn idempotency_key(
    headers: &HeaderMap,
    request_id: Option<String>,
) -> Result<Option<String>, Problem> {
    use crate::problem::invalid_request;
    let header = super::idempotency::header_key(headers)?;
    match (header, request_id) {
        (Some(header), Some(id)) if header != id => Err(invalid_request(
            "Idempotency-Key and request_id differ: give one, or the same value",
        )),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

/// What a relay answers: provider, message id, channel, masked number, SMS parts.
pub(crate) fn sent_body(relayed: &Relayed) -> Value {
    json!({
        "provider": relayed.provider,
        "message_id": relayed.message_id,
        "channel": relayed.channel.as_str(),
        "to": relayed.masked_destination,
        "segments": relayed.segments.map(|s| s.segments),
        "encoding": relayed.segments.map(|s| match s.encoding {
            phone_otp::SmsEncoding::Gsm7 => "gsm7",
            _ => "ucs2",
        }),
        "attempts": relayed.attempts.len() + 1,
    })
}
