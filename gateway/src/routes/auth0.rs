//! `POST /hooks/auth0/phone-message`: what an Auth0 Action posts to have Auth0's code
//! delivered.
//!
//! Auth0 defines only the Action's `event`; the HTTP body is ours. Two shapes are read:
//! - ours, sent by the Actions in `examples/auth0/`: `recipient`, `delivery_method`
//!   (`text`/`voice`), `message_type` (`otp_verify`, `otp_enroll`, or the security notices
//!   `blocked_account`, `change_password`, `password_breach`, sent in the gateway's own
//!   words), `code`, `as_text`, `as_voice`, `locale`, `user_id`, `client_ip`, and an
//!   optional `request_id`;
//! - Auth0's documented sample Action's (INTEGRATIONS.md 2.3): `recipient`,
//!   `message_type` (`text`/`voice`), `action`, `text`, `code`, `language`, `from`.
//!
//! Answers: 200 when a provider accepted; 4xx when retrying cannot help (the Action calls
//! `api.notification.drop()`); 429 or 5xx when it can (`api.notification.retry()`).

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use phone_otp::{Channel, Notice, Purpose, RelayRequest};
use serde::Deserialize;
use serde_json::Value;

use super::extract::{AnyJson, Authorized, need};
use super::wire::parse_number;
use crate::audit::AuditHandle;
use crate::problem::Problem;
use crate::state::AppState;

/// The body our shipped Actions send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notification {
    recipient: String,
    delivery_method: String,
    message_type: String,
    code: Option<String>,
    as_text: Option<String>,
    as_voice: Option<String>,
    locale: Option<String>,
    user_id: Option<String>,
    client_ip: Option<String>,
    request_id: Option<String>,
    #[allow(dead_code)]
    from: Option<String>,
}

/// The body of Auth0's documented sample custom-phone-provider Action.
#[derive(Debug, Deserialize)]
struct SampleBody {
    recipient: String,
    /// `text` or `voice` (sic: the sample puts the delivery method here).
    message_type: String,
    /// `second-factor-authenticator` (sic) or `enrollment`.
    action: Option<String>,
    text: Option<String>,
    code: Option<String>,
    language: Option<String>,
}

/// The handler.
pub(crate) async fn phone_message(
    State(state): State<AppState>,
    audit: AuditHandle,
    Authorized(caller, _): Authorized<need::HooksAuth0>,
    // Auth0's published sample Action posts JSON without a Content-Type (Node's fetch
    // then says text/plain): a body that parses is read whatever its type claims.
    AnyJson(value): AnyJson,
) -> Result<Response, Problem> {
    let region = state.default_region.as_deref();
    let request = if value.get("delivery_method").is_some() {
        from_notification(parse(value)?, region, state.auth0_notices)?
    } else {
        from_sample(parse(value)?, region)?
    };
    {
        let mut record = audit.record();
        record.destination(&request.to, request.channel, request.purpose);
        if let Some(notice) = request.notice {
            record.notice(notice);
        }
    }
    let request = request.tenant(caller.system);
    audit.reserve().await?;
    super::relay_answer(&state, request, &audit).await
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Problem> {
    serde_json::from_value(value).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
    })
}

fn from_notification(
    n: Notification,
    region: Option<&str>,
    notices: bool,
) -> Result<RelayRequest, Problem> {
    let channel = match n.delivery_method.as_str() {
        "text" | "sms" => Channel::Sms,
        "voice" => Channel::Voice,
        _ => return Err(invalid("delivery_method must be text or voice")),
    };
    let purpose = match n.message_type.as_str() {
        "otp_enroll" => Some(Purpose::SignUp),
        "otp_verify" => Some(Purpose::SignIn),
        _ => None,
    };
    // Auth0 says E.164, but its own Twilio sample strips spaces first: both are read.
    let to = parse_number(&n.recipient, region)?;
    let mut request = match (purpose, Notice::parse(&n.message_type)) {
        (Some(purpose), _) => {
            let code = n.code.ok_or_else(|| invalid("code is required"))?;
            let text = match channel {
                Channel::Voice => n.as_voice,
                _ => n.as_text,
            };
            let request = RelayRequest::new(to, channel, code, purpose);
            match text.filter(|t| !t.is_empty()) {
                Some(text) => request.text(text),
                None => request,
            }
        }
        // A security notice: the gateway's own words for it, never Auth0's text.
        (None, Some(_)) if n.code.is_some() => {
            return Err(invalid("a security notice carries no code"));
        }
        (None, Some(notice)) if notices => RelayRequest::notice(to, channel, notice),
        (None, Some(_)) => {
            return Err(invalid(
                "security notices are switched off on this gateway ([auth0] notices = false)",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "message_type must be otp_verify, otp_enroll, blocked_account, change_password or password_breach",
            ));
        }
    };
    if let Some(locale) = n.locale {
        request = request.locale(super::okta::locale(&locale));
    }
    if let Some(user) = n.user_id {
        request = request.subject(user);
    }
    if let Some(ip) = n.client_ip {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| invalid("client_ip is not an IP address"))?;
        request = request.client_ip(ip);
    }
    if let Some(id) = n.request_id {
        request = request.once(id);
    }
    Ok(request)
}

fn from_sample(s: SampleBody, region: Option<&str>) -> Result<RelayRequest, Problem> {
    let channel = match s.message_type.as_str() {
        "text" | "sms" => Channel::Sms,
        "voice" => Channel::Voice,
        _ => return Err(invalid("message_type must be text or voice")),
    };
    let purpose = match s.action.as_deref() {
        Some("enrollment") => Purpose::SignUp,
        _ => Purpose::SignIn,
    };
    let code = s.code.ok_or_else(|| invalid("code is required"))?;
    let mut request =
        RelayRequest::new(parse_number(&s.recipient, region)?, channel, code, purpose);
    if let Some(text) = s.text.filter(|t| !t.is_empty()) {
        request = request.text(text);
    }
    if let Some(language) = s.language {
        request = request.locale(super::okta::locale(&language));
    }
    Ok(request)
}

fn invalid(message: &'static str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
}
