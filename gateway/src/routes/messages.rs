//! `POST /v1/messages`: deliver a code an internal system generated ("code, number,
//! subject"), through the templates and the provider router, under policy and limits.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use phone_otp::{RelayRequest, Relayed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Authorized, Json, need};
use super::wire::{WireChannel, WirePurpose, parse_number};
use crate::audit::AuditHandle;
use crate::problem::Problem;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    /// The number: E.164 (`+819012345678`), or national in the default region.
    #[schema(example = "+819012345678", min_length = 1, max_length = 32)]
    to: String,
    /// The code your system generated: 4 to 10 digits.
    #[schema(pattern = "^[0-9]{4,10}$", example = "482913")]
    code: String,
    #[serde(default)]
    channel: WireChannel,
    #[serde(default)]
    purpose: WirePurpose,
    /// The message language (`en`, `ja`; default English).
    locale: Option<String>,
    /// The user it is for (rate-limited per subject).
    #[schema(max_length = 256)]
    subject: Option<String>,
    /// The end user's IP, for the per-IP limit.
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    client_ip: Option<IpAddr>,
    /// Sends at most one message per id while the code lives (as `Idempotency-Key`).
    #[schema(min_length = 1, max_length = 256)]
    request_id: Option<String>,
}

/// The handler.
#[utoipa::path(
    post,
    path = "/v1/messages",
    operation_id = "messages_send",
    tag = "messages",
    request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries of the same request (up to 256 visible ASCII characters) send nothing again")),
    responses(
        (status = 200, description = "A provider accepted the message.", body = Sent),
        (status = 202, description = "A provider was reached and did not answer in time: the message may arrive. Do not send another code at once.", body = super::Unknown),
        (status = 409, description = "`duplicate_request`: this request's key was already sent; nothing was sent again.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "`delivery_failed`: no provider could deliver; retry later.", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["messages:send"]), ("access_token" = ["messages:send"]))
)]
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
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Sent {
    /// The provider that accepted it.
    provider: String,
    /// The provider's id for the message or call.
    message_id: String,
    /// `sms` or `voice`.
    channel: String,
    /// The number, masked (`+8190****5678`).
    to: String,
    /// SMS parts billed (null for a call).
    segments: Option<usize>,
    /// `gsm7` or `ucs2` (null for a call).
    encoding: Option<String>,
    /// Providers tried, this one included.
    attempts: usize,
}

impl Sent {
    pub(crate) fn of(relayed: &Relayed) -> Self {
        Self {
            provider: relayed.provider.clone(),
            message_id: relayed.message_id.clone(),
            channel: relayed.channel.as_str().to_owned(),
            to: relayed.masked_destination.clone(),
            segments: relayed.segments.map(|s| s.segments),
            encoding: relayed.segments.map(|s| {
                match s.encoding {
                    phone_otp::SmsEncoding::Gsm7 => "gsm7",
                    _ => "ucs2",
                }
                .to_owned()
            }),
            attempts: relayed.attempts.len() + 1,
        }
    }
}
