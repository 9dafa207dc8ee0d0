//! Delivery receipts: providers tell us, after the send, whether the message reached the
//! handset. Counted per provider and country as delivered or undelivered (`/metrics`).
//!
//! - `POST /callbacks/twilio/status`: Twilio's status callback (form POST), checked with
//!   `X-Twilio-Signature` against the configured public URL; unsigned or wrong is 403.
//! - `POST /callbacks/ntt-cpaas/delivery`: the NTT CPaaS (Infobip API) delivery-report
//!   webhook (JSON `results[]`), which cannot be signed: it must carry the configured
//!   token, in `X-Callback-Token` or as `?token=` in the URL registered with NTT CPaaS.
//!
//! Only final states count (Twilio `delivered`, `undelivered`, `failed`; NTT `DELIVERED`,
//! `UNDELIVERABLE`, `EXPIRED`, `REJECTED`), each once per message and status: a provider
//! that repeats a callback, or anyone replaying a signed one (Twilio's signature has no
//! timestamp), is not counted again. What was seen is kept in the store for
//! [`RECEIPT_WINDOW`], so on Redis every instance agrees; with the store down the callback
//! is answered 503 (the provider may retry) and nothing is counted.
//!
//! A receipt that names a send of this gateway (the reference it gave the provider is the
//! audit record's id: Twilio's `?ref=` on the status callback URL, NTT CPaaS's
//! `messageId`) is written onto that record first ([`Db::record_receipt`](crate::db::Db::record_receipt)):
//! the ledger counts it as delivered or undelivered, and a send whose outcome was unknown
//! (its instance died mid-send, or the provider did not answer in time) is `confirmed`.
//! With the database down the callback is 503 and nothing is counted, so the provider's
//! retry finds it written.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::{debug, warn};

use super::caller::failed_authentication;
use super::extract::Screened;
use super::json::read_value;
use crate::problem::Problem;
use crate::state::AppState;

/// How long a receipt's (message, status) is remembered against repeats.
pub(crate) const RECEIPT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3 * 86_400);

/// Whether this receipt is new: `Ok(false)` for a repeat, `Err` (503) with the store down.
async fn first_time(
    state: &AppState,
    provider: &str,
    message_id: &str,
    status: &str,
) -> Result<bool, Response> {
    let event = format!("receipt:{provider}:{message_id}:{status}");
    state
        .otp
        .first_sighting(event.as_bytes(), RECEIPT_WINDOW)
        .await
        .map_err(|error| {
            warn!(error = %error, "receipt not counted: the store is unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the receipt cannot be counted now",
            )
            .into_response()
        })
}

/// Writes the receipt onto the audit record `reference` names, if it names one of ours
/// (an audit id, `-voice` for the call after an SMS).
async fn record_receipt(
    state: &AppState,
    provider: &str,
    reference: Option<&str>,
    delivered: bool,
) -> Result<(), Response> {
    let (Some(db), Some(reference)) = (&state.db, reference) else {
        return Ok(());
    };
    let id = reference.strip_suffix("-voice").unwrap_or(reference);
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(());
    }
    match db.record_receipt(id, provider, delivered).await {
        Ok(matched) => {
            if !matched {
                debug!(provider, "receipt names no audit record");
            }
            Ok(())
        }
        Err(error) => {
            warn!(error = %error, "receipt not recorded: the database is unavailable");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the receipt cannot be recorded now",
            )
            .into_response())
        }
    }
}

/// A callback the gateway is not configured for. (Its caller's network was screened
/// first: a token or signature cannot be guessed 30 times a minute from one network.)
fn no_such_endpoint() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
}

/// Twilio's status callback.
pub(crate) async fn twilio_status(
    State(state): State<AppState>,
    Screened(network): Screened,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(config) = &state.twilio_callbacks else {
        return no_such_endpoint();
    };
    let Ok(body) = body else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "unreadable body",
        )
        .into_response();
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    // Twilio signs the URL it called: the public one, with this request's query string.
    let url = match uri.query() {
        Some(query) => format!("{}?{query}", config.public_url),
        None => config.public_url.clone(),
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if signature.is_empty()
        || !phone_otp::provider::twilio::validate_signature(
            &config.auth_token,
            &url,
            &params,
            signature,
        )
    {
        state.metrics.record_receipt_refused("twilio");
        failed_authentication(&state, network);
        return Problem::new(
            StatusCode::FORBIDDEN,
            "bad_signature",
            "the signature does not match",
        )
        .into_response();
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let status = field("MessageStatus")
        .or_else(|| field("SmsStatus"))
        .or_else(|| field("CallStatus"));
    let delivered = match status {
        Some("delivered" | "read" | "completed") => Some(true),
        Some("undelivered" | "failed" | "busy" | "no-answer" | "canceled") => Some(false),
        _ => None,
    };
    let message_id = field("MessageSid")
        .or_else(|| field("SmsSid"))
        .or_else(|| field("CallSid"));
    if let (Some(delivered), Some(message_id), Some(status)) = (delivered, message_id, status) {
        let reference = uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "ref")
                .map(|(_, v)| v.into_owned())
        });
        if let Err(unavailable) =
            record_receipt(&state, "twilio", reference.as_deref(), delivered).await
        {
            return unavailable;
        }
        match first_time(&state, "twilio", message_id, status).await {
            Ok(true) => {
                let country = field("To").map_or_else(|| "unknown".to_owned(), country_of);
                state.metrics.record_receipt("twilio", &country, delivered);
            }
            Ok(false) => debug!("twilio status callback: already counted"),
            Err(unavailable) => return unavailable,
        }
    } else {
        debug!(
            status = status.unwrap_or(""),
            "twilio status callback: not a final state"
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// One report of an NTT CPaaS delivery-report webhook.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NttReport {
    message_id: Option<String>,
    to: Option<String>,
    status: Option<NttStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NttStatus {
    group_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NttReports {
    results: Vec<NttReport>,
}

/// The NTT CPaaS delivery-report webhook.
pub(crate) async fn ntt_cpaas_delivery(
    State(state): State<AppState>,
    Screened(network): Screened,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(secret) = &state.ntt_cpaas_callbacks else {
        return no_such_endpoint();
    };
    let from_header = headers
        .get("x-callback-token")
        .map(|v| v.as_bytes().to_vec());
    let from_query = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned().into_bytes())
    });
    if !from_header
        .or(from_query)
        .is_some_and(|token| secret.matches(&token))
    {
        state.metrics.record_receipt_refused("ntt-cpaas");
        failed_authentication(&state, network);
        return Problem::new(
            StatusCode::FORBIDDEN,
            "bad_token",
            "the callback token does not match",
        )
        .into_response();
    }
    let reports: NttReports = match read_value(&headers, body).and_then(|value| {
        serde_json::from_value(value).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            )
        })
    }) {
        Ok(reports) => reports,
        Err(problem) => return problem.into_response(),
    };
    for report in reports.results {
        let group = report.status.and_then(|s| s.group_name).unwrap_or_default();
        let delivered = match group.as_str() {
            "DELIVERED" => Some(true),
            "UNDELIVERABLE" | "EXPIRED" | "REJECTED" => Some(false),
            _ => None,
        };
        let (Some(delivered), Some(message_id)) = (delivered, report.message_id.as_deref()) else {
            continue;
        };
        // NTT CPaaS echoes the `messageId` the gateway chose: the send's reference.
        if let Err(unavailable) =
            record_receipt(&state, "ntt-cpaas", Some(message_id), delivered).await
        {
            return unavailable;
        }
        match first_time(&state, "ntt-cpaas", message_id, &group).await {
            Ok(true) => {
                let country = report
                    .to
                    .as_deref()
                    .map_or_else(|| "unknown".to_owned(), country_of);
                state
                    .metrics
                    .record_receipt("ntt-cpaas", &country, delivered);
            }
            Ok(false) => debug!("ntt-cpaas delivery report: already counted"),
            Err(unavailable) => return unavailable,
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The ISO region of a number with or without `+`, `001` for non-geographic numbers, or
/// `unknown`. Never the number itself.
fn country_of(raw: &str) -> String {
    match super::wire::number(raw, None) {
        Ok(number) => number
            .region()
            .map_or_else(|| "001".to_owned(), |r| r.to_string()),
        Err(_) => "unknown".to_owned(),
    }
}
