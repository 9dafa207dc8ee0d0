//! `Idempotency-Key` on the challenge endpoints: a client that got no answer (a cut
//! connection, its own timeout) retries with the same key and receives the first answer,
//! challenge id included, instead of a second challenge and a second code.
//!
//! The key is claimed in the database before anything is sent, per calling system. An
//! answer after which a code may be on its way (200, 201, 202 `unknown`) is kept for a day
//! and replayed with `Idempotent-Replayed: true`; any other answer (refused, limited,
//! invalid: nothing was sent) gives the key back, so the retry runs again. A retry while
//! the first request runs is 409 `request_in_progress`; the same key on a different request
//! (another endpoint, challenge or body) is 422 `idempotency_key_reused`.
//!
//! (`POST /v1/messages` takes the header as its relay request key instead: a repeat sends
//! nothing and answers 409 `duplicate_request`.)

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use sha2::{Digest as _, Sha256};
use tracing::warn;

use crate::db::{Claim, Db};
use crate::outcome::Outcome;
use crate::problem::{Problem, invalid_request};
use crate::state::AppState;

/// The longest stored answer, in bytes (the answers kept are small JSON objects).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The `Idempotency-Key` header: `None` when absent, 422 when not 1-256 visible ASCII
/// characters (quotes around it, as in the IETF draft's examples, are dropped).
pub(crate) fn header_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|text| text.trim_matches('"'))
        .filter(|text| {
            !text.is_empty()
                && text.len() <= phone_otp::MAX_REQUEST_KEY_BYTES
                && text.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|text| Some(text.to_owned()))
        .ok_or_else(|| invalid_request("Idempotency-Key must be 1-256 visible ASCII characters"))
}

/// What a request names itself by: the endpoint, the resource in its path, and its body.
pub(crate) fn fingerprint(endpoint: &str, resource: &str, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    for part in [endpoint.as_bytes(), resource.as_bytes()] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    digest.update(body);
    hex(&digest.finalize())
}

/// Runs `send` once per `key` of `system`: the first answer is kept and replayed to a
/// retry (see the module). `send` is not started before the key is claimed.
pub(crate) async fn once<F>(
    state: &AppState,
    key: Option<String>,
    system: &str,
    fingerprint: &str,
    send: F,
) -> Result<Response, Problem>
where
    F: Future<Output = Result<Response, Problem>>,
{
    match begin(state, key, system, fingerprint).await? {
        Begun::Replay(first) => Ok(first),
        Begun::Run(None) => send.await,
        Begun::Run(Some(held)) => held.finish(send.await).await,
    }
}

/// How a request with a key goes on.
enum Begun {
    /// Run it (holding the key, when one was given), then [`Held::finish`].
    Run(Option<Held>),
    /// The first answer, to send as it is.
    Replay(Response),
}

/// A claimed key, to settle with the answer or give back.
struct Held {
    db: Db,
    system: String,
    key: String,
}

/// Claims the request's key, if it has one, for `system`.
///
/// # Errors
/// 409 while the first request runs, 422 for a key reused on another request or a gateway
/// without a database, 503 when the database cannot be asked (nothing is sent).
async fn begin(
    state: &AppState,
    key: Option<String>,
    system: &str,
    fingerprint: &str,
) -> Result<Begun, Problem> {
    let Some(key) = key else {
        return Ok(Begun::Run(None));
    };
    let Some(db) = &state.db else {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_unsupported",
            "Idempotency-Key needs the gateway's database ([database] url)",
        ));
    };
    let now = state.now_millis();
    let stale_before = crate::audit::reconcile::cutoff(now, state.request_timeout);
    let claim = db
        .claim_idempotency_key(system, &key, fingerprint, now, stale_before)
        .await
        .map_err(|error| {
            tracing::debug!(error = %error, "idempotency key cannot be claimed: refusing");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the Idempotency-Key cannot be checked now; nothing was sent",
            )
        })?;
    match claim {
        Claim::Fresh => Ok(Begun::Run(Some(Held {
            db: db.clone(),
            system: system.to_owned(),
            key,
        }))),
        Claim::Answered { status, body } => Ok(Begun::Replay(replay(status, body))),
        Claim::InProgress => Err(Problem::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key has not answered yet; retry shortly",
        )
        .retry_after(Duration::from_secs(1))),
        Claim::Mismatch => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        )),
    }
}

impl Held {
    /// Keeps `result` for retries when a code may be on its way, and gives the key back
    /// otherwise. The answer goes out either way: the send has happened or not already.
    async fn finish(self, result: Result<Response, Problem>) -> Result<Response, Problem> {
        let response = match result {
            Ok(response) if kept(response.status()) => response,
            other => {
                if let Err(error) = self
                    .db
                    .release_idempotency_key(&self.system, &self.key)
                    .await
                {
                    warn!(error = %error, "idempotency key not given back: a retry waits until it is stale");
                }
                return other;
            }
        };
        let (parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
            return Err(crate::problem::internal());
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = self
            .db
            .settle_idempotency_key(&self.system, &self.key, parts.status.as_u16(), &text)
            .await
        {
            warn!(error = %error, "answer not kept for the Idempotency-Key: a retry waits until it is stale");
        }
        Ok(Response::from_parts(parts, Body::from(bytes)))
    }
}

/// Answers after which a code may be on its way.
fn kept(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED
    )
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response.extensions_mut().insert(Outcome("replayed"));
    response
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
