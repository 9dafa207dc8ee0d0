//! `POST /hooks/okta/telephony`: Okta's telephony inline hook.
//!
//! Okta generates the code and asks us to deliver it within 3 seconds. The contract
//! (INTEGRATIONS.md section 1, from Okta's spec and reference page):
//! - auth: one static header (`authScheme` key and value), compared in constant time; a
//!   missing or wrong one is 401 and nothing is sent;
//! - success: 200 with a `com.okta.telephony.action` command;
//! - failure to deliver: 200 with Okta's error object, so Okta falls back to its own
//!   providers ("don't use the HTTP status code to return information");
//! - HTTP error statuses only when the request cannot be read (bad JSON, wrong content
//!   type, oversized body), still with the error object as body.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use phone_otp::{
    Channel, LimitKind, Locale, Purpose, RelayError, RelayRequest, Relayed, Timestamp,
};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::caller::{Peer, authorize, client_network, failed_authentication, guard_network};
use super::fields::{FieldError, Fields};
use crate::audit::{AuditHandle, attempt_label};
use crate::auth::scope::Scope;
use crate::outcome::Outcome;
use crate::state::AppState;
use crate::surfaces::{OktaAuth, OktaHook};

const COMMAND: &str = "com.okta.telephony.action";

/// The handler. Okta's answer is always its own shape; the audit's outcome is ours.
pub(crate) async fn telephony(
    State(state): State<AppState>,
    audit: AuditHandle,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (outcome, mut response) = answer(&state, peer, &headers, body, &audit).await;
    response.extensions_mut().insert(Outcome(outcome));
    response
}

async fn answer(
    state: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    audit: &AuditHandle,
) -> (&'static str, Response) {
    let Some(hook) = &state.okta else {
        return ("not_found", StatusCode::NOT_FOUND.into_response());
    };
    let authorized = match &hook.auth {
        OktaAuth::Header { header, secret } => {
            let network = client_network(state, headers, peer);
            if let Err(problem) = guard_network(state, network) {
                return ("throttled", throttled(&problem));
            }
            let matched = headers
                .get(header)
                .is_some_and(|value| secret.matches(value.as_bytes()));
            if !matched {
                failed_authentication(state, network);
            }
            matched
        }
        OktaAuth::OAuth => {
            match authorize(audit, state, headers, peer, Scope::HooksOkta, None).await {
                Ok(_) => true,
                Err(problem) if problem.status == StatusCode::TOO_MANY_REQUESTS => {
                    return ("throttled", throttled(&problem));
                }
                Err(problem) if problem.status == StatusCode::SERVICE_UNAVAILABLE => {
                    return (
                        "auth_unavailable",
                        error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "The hook's token cannot be checked now",
                            &[],
                        ),
                    );
                }
                Err(_) => false,
            }
        }
    };
    if !authorized {
        return (
            "unauthorized",
            error_response(StatusCode::UNAUTHORIZED, "Unauthorized", &[]),
        );
    }
    // Authenticated: from here on the request is Okta's, and its record is kept.
    audit.record().system(&hook.tenant);
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            return (
                "unreadable",
                error_response(status, "Could not read the request body", &[]),
            );
        }
    };
    if !super::is_json(headers) {
        return (
            "unreadable",
            error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
                &[],
            ),
        );
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return (
            "unreadable",
            error_response(
                StatusCode::BAD_REQUEST,
                "The request is not valid JSON",
                &[],
            ),
        );
    };
    if let Some(answer) = dry_run(&value, hook) {
        return ("dry_run", answer);
    }
    let request = match read_request(&value, hook, state.default_region.as_deref()) {
        Ok(request) => request,
        Err(cause) => {
            info!(field = cause.location, reason = %cause.reason, "okta hook: unusable request");
            return (
                "invalid",
                error_response(
                    StatusCode::OK,
                    "Failed to deliver OTP: the hook request is unusable",
                    &[cause.into_json("Invalid request")],
                ),
            );
        }
    };
    let channel = request.channel;
    {
        let mut record = audit.record();
        record.system(&hook.tenant);
        record.destination(&request.to, request.channel, request.purpose);
    }
    if audit.reserve().await.is_err() {
        // Fail closed; the error object makes Okta send the code through its own provider.
        return (
            "audit_unavailable",
            error_response(
                StatusCode::OK,
                "Failed to deliver OTP: the audit trail is unavailable",
                &[json!({"errorSummary": "Audit unavailable", "reason": "nothing was sent"})],
            ),
        );
    }
    let mut request = request;
    request.reference = audit.record().reference();
    let result = state.otp.relay(request).await;
    match &result {
        Ok(relayed) => audit.record().relayed(relayed),
        Err(RelayError::Delivery(failure)) => audit.record().failed(failure.attempts()),
        Err(_) => {}
    }
    match result {
        Ok(relayed) => ("delivered", success("SUCCESSFUL", &relayed)),
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            ..
        }) => {
            // Okta asked again for an eventId we already sent: no second message, and no
            // error either (that would make Okta send one through its own provider).
            ("duplicate", pending_duplicate())
        }
        Err(RelayError::Delivery(failure)) if failure.may_have_delivered() => {
            // A provider was reached and did not answer in time: the code may arrive. An
            // error would make Okta send a second one through its own provider.
            ("unknown", pending_unknown())
        }
        Err(error) => {
            if let Some(phone_otp::SendRefusal::Limited { limit, .. }) = error.refusal() {
                audit.record().refused_by(limit);
            }
            let (outcome, summary, reason) = describe(&error);
            let summary = format!("Failed to deliver {} OTP: {summary}", channel_name(channel));
            (
                outcome,
                error_response(
                    StatusCode::OK,
                    &summary,
                    &[json!({"errorSummary": summary, "reason": reason})],
                ),
            )
        }
    }
}

/// Okta's console preview (a fictional number) answered as a delivery, with nothing
/// sent, when the hook is configured for it ([`OktaHook::dry_run_for`]).
fn dry_run(value: &Value, hook: &OktaHook) -> Option<Response> {
    let number = match value.pointer("/data/messageProfile/phoneNumber")? {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    if !hook.is_dry_run(&number) {
        return None;
    }
    info!("okta hook: a dry-run number (Okta's preview): answered without sending");
    let channel = value
        .pointer("/data/messageProfile/deliveryChannel")
        .and_then(Value::as_str)
        .and_then(delivery_channel)
        .unwrap_or(Channel::Sms);
    let event = value.get("eventId").and_then(Value::as_str).unwrap_or("");
    let id: String = event
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    Some(success(
        "SUCCESSFUL",
        &Relayed {
            provider: "dry-run".to_owned(),
            message_id: format!("dry-run-{id}"),
            channel,
            masked_destination: String::new(),
            segments: None,
            attempts: Vec::new(),
            elapsed: std::time::Duration::ZERO,
        },
    ))
}

/// What Okta asked for, as a relay request.
fn read_request(
    value: &Value,
    hook: &OktaHook,
    default_region: Option<&str>,
) -> Result<RelayRequest, FieldError> {
    let fields = Fields::new(value);
    let profile = "data.messageProfile";
    let to = super::wire::number(
        &fields.scalar(&format!("{profile}.phoneNumber"))?,
        default_region,
    )
    .map_err(|reason| FieldError::new("data.messageProfile.phoneNumber", reason))?;
    let channel_text = fields.string(&format!("{profile}.deliveryChannel"))?;
    let channel = delivery_channel(&channel_text).ok_or_else(|| {
        FieldError::new(
            "data.messageProfile.deliveryChannel",
            "unknown delivery channel (expected SMS, CALL or voice call)",
        )
    })?;
    let code = fields.scalar(&format!("{profile}.otpCode"))?;
    let purpose = fields
        .optional_string("requestType")?
        .map_or(Purpose::SignIn, |t| purpose(&t));
    let mut request = RelayRequest::new(to, channel, code, purpose)
        .deadline(hook.deadline)
        .tenant(hook.tenant.clone());
    if let Some(locale) = fields.optional_string(&format!("{profile}.locale"))? {
        request = request.locale(self::locale(&locale));
    }
    if let Some(expires) = fields.optional_string(&format!("{profile}.otpExpires"))? {
        let at = timestamp(&expires).ok_or_else(|| {
            FieldError::new("data.messageProfile.otpExpires", "not an RFC 3339 time")
        })?;
        request = request.expires_at(at);
    }
    // "Not applicable for voice call": a call speaks our own voice template.
    if channel == Channel::Sms
        && let Some(text) = fields.optional_string(&format!("{profile}.msgTemplate"))?
        && !text.is_empty()
    {
        request = request.text(text);
    }
    if let Some(user) = fields.optional_string("data.userProfile.userId")? {
        request = request.subject(user);
    }
    if let Some(ip) = fields.optional_string("data.context.request.ipAddress")? {
        match ip.parse::<IpAddr>() {
            Ok(ip) => request = request.client_ip(ip),
            Err(_) => warn!("okta hook: ipAddress is not an IP address; per-IP limit skipped"),
        }
    }
    if let Some(event) = fields.optional_string("eventId")? {
        request = request.once(event);
    }
    Ok(request)
}

/// `SMS`/`sms` is SMS; anything naming a voice call (`CALL`, `voice call`, `Voice`) is
/// voice; the sources disagree on the spelling (INTEGRATIONS.md 1.4).
fn delivery_channel(raw: &str) -> Option<Channel> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower == "sms" {
        Some(Channel::Sms)
    } else if lower.contains("voice") || lower.contains("call") {
        Some(Channel::Voice)
    } else {
        None
    }
}

fn purpose(request_type: &str) -> Purpose {
    match request_type {
        "com.okta.user.telephony.pre-enrollment" => Purpose::SignUp,
        "com.okta.user.telephony.account-unlock" => Purpose::AccountUnlock,
        "com.okta.user.telephony.password-reset" => Purpose::PasswordReset,
        // `mfa-verification`, and anything newer: a sign-in code.
        _ => Purpose::SignIn,
    }
}

/// `EN-US`, `en`, `ja-JP`, `ja_JP`: Japanese for `ja`, English otherwise.
pub(crate) fn locale(raw: &str) -> Locale {
    if raw.len() >= 2 && raw[..2].eq_ignore_ascii_case("ja") {
        Locale::Ja
    } else {
        Locale::En
    }
}

/// An RFC 3339 time (`2022-01-28T21:48:34.321Z`) as a [`Timestamp`].
pub(crate) fn timestamp(raw: &str) -> Option<Timestamp> {
    let parsed =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()?;
    let millis = parsed.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis).ok().map(Timestamp::from_millis)
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => "voice",
        _ => "SMS",
    }
}

/// The outcome label, Okta's summary and the reason for a relay that sent nothing.
fn describe(error: &RelayError) -> (&'static str, String, String) {
    match error {
        RelayError::Expired => (
            "expired",
            "the code has expired".into(),
            "otpExpires is in the past; an expired code is never delivered".into(),
        ),
        RelayError::Refused(refusal) => (
            "refused",
            "the destination is refused by policy".into(),
            refusal.to_string(),
        ),
        RelayError::Limited { limit, retry_after } => (
            "limited",
            format!("the {limit} send limit is reached"),
            format!(
                "{limit} rate limit reached, retry after {}s",
                crate::problem::whole_seconds(*retry_after)
            ),
        ),
        RelayError::InvalidRequest(reason) => (
            "invalid",
            "the request is unusable".into(),
            (*reason).into(),
        ),
        RelayError::TextRefused(refusal) => (
            "text_refused",
            "the message template is refused".into(),
            format!("{refusal}: the gateway relays codes, never free text"),
        ),
        RelayError::ChannelUnsupported(channel) => (
            "unsupported",
            "no provider for this channel".into(),
            format!("no configured provider delivers {channel}"),
        ),
        RelayError::Delivery(failure) => (
            "failed",
            "no provider could deliver".into(),
            if failure.attempts().is_empty() {
                format!("provider failed: {}", failure.kind().as_str())
            } else {
                format!("providers tried: {}", tried(failure.attempts()))
            },
        ),
        RelayError::Store(_) | RelayError::Random(_) => (
            "error",
            "internal error".into(),
            "the gateway could not check its limits".into(),
        ),
        _ => (
            "error",
            "internal error".into(),
            "unexpected failure".into(),
        ),
    }
}

/// `first:unavailable, second:timeout` for the providers tried.
fn tried(attempts: &[phone_otp::Attempt]) -> String {
    attempts
        .iter()
        .map(attempt_label)
        .collect::<Vec<_>>()
        .join(", ")
}

fn success(status: &str, relayed: &Relayed) -> Response {
    let mut metadata = format!(
        "Duration={}ms; Attempts={}",
        relayed.elapsed.as_millis(),
        relayed.attempts.len() + 1
    );
    if !relayed.attempts.is_empty() {
        metadata.push_str("; Failover=");
        metadata.push_str(&tried(&relayed.attempts));
    }
    command(json!({
        "status": status,
        "provider": relayed.provider,
        "transactionId": relayed.message_id,
        "transactionMetadata": metadata,
    }))
}

fn pending_duplicate() -> Response {
    command(json!({
        "status": "PENDING",
        "transactionMetadata": "Duplicate eventId: the first request's message stands",
    }))
}

fn pending_unknown() -> Response {
    command(json!({
        "status": "PENDING",
        "transactionMetadata": "A provider did not answer in time: the code may have been delivered",
    }))
}

fn command(value: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"commands": [{"type": COMMAND, "value": [value]}]})),
    )
        .into_response()
}

/// A network refused for its failed authentications, in Okta's error shape, with
/// `Retry-After`.
fn throttled(problem: &crate::problem::Problem) -> Response {
    let mut response = error_response(problem.status, "Too many failed requests", &[]);
    if let Some(wait) = problem.retry_after {
        crate::problem::set_retry_after(&mut response, wait);
    }
    response
}

/// Okta's inline-hook error object.
fn error_response(status: StatusCode, summary: &str, causes: &[Value]) -> Response {
    let mut error = json!({"errorSummary": summary});
    if !causes.is_empty() {
        error["errorCauses"] = Value::Array(causes.to_vec());
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_channel_spelling() {
        for sms in ["SMS", "sms", " Sms "] {
            assert_eq!(delivery_channel(sms), Some(Channel::Sms), "{sms}");
        }
        for voice in ["CALL", "voice call", "Voice call", "Voice", "call"] {
            assert_eq!(delivery_channel(voice), Some(Channel::Voice), "{voice}");
        }
        for unknown in ["", "email", "push", "smss"] {
            assert_eq!(delivery_channel(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn okta_times_and_locales() {
        assert_eq!(
            timestamp("2022-01-28T21:48:34.321Z"),
            Some(Timestamp::from_millis(1_643_406_514_321))
        );
        assert_eq!(
            timestamp("2022-01-28T22:48:34.321+01:00"),
            Some(Timestamp::from_millis(1_643_406_514_321))
        );
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(locale("EN-US"), Locale::En);
        assert_eq!(locale("ja_JP"), Locale::Ja);
        assert_eq!(locale("JA"), Locale::Ja);
        assert_eq!(locale("e"), Locale::En);
    }

    #[test]
    fn request_types_map_to_purposes() {
        assert_eq!(
            purpose("com.okta.user.telephony.pre-enrollment"),
            Purpose::SignUp
        );
        assert_eq!(
            purpose("com.okta.user.telephony.mfa-verification"),
            Purpose::SignIn
        );
        assert_eq!(
            purpose("com.okta.user.telephony.account-unlock"),
            Purpose::AccountUnlock
        );
        assert_eq!(
            purpose("com.okta.user.telephony.password-reset"),
            Purpose::PasswordReset
        );
        assert_eq!(
            purpose("com.okta.user.telephony.new-thing"),
            Purpose::SignIn
        );
    }
}
