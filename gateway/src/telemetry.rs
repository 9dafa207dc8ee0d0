//! Logging: the `tracing` subscriber of the binary, request ids, and the per-request span.
//!
//! Spans carry the method, the route template (`/v1/challenges/{id}/verify`, never the
//! id itself) and the request id: never a body, query string, header value or number.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Request};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::trace::{MakeSpan, TraceLayer};
use tracing::Span;

/// Log output of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Request ids: a random per-process prefix and a counter, unique without a UUID crate.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn process_prefix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| {
        // `RandomState` is seeded from the OS; its hash of a constant is a random number.
        (RandomState::new().hash_one(0x5eed_u64) >> 32) as u32
    })
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n:012x}", process_prefix());
        HeaderValue::try_from(id).ok().map(RequestId::new)
    }
}

/// The longest client request id kept.
const MAX_REQUEST_ID: usize = 64;

/// A client's `X-Request-Id` is kept when it is 1 to 64 ASCII letters, digits, `-`, `_`,
/// `.` or `:` (UUIDs, ULIDs, Okta's and Auth0's ids); anything else is replaced by ours,
/// so logs and the audit trail never hold a client's free text.
pub(crate) fn is_valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops a client's `X-Request-Id` that is not of that form (before ids are assigned).
pub(crate) async fn keep_valid_request_id(
    mut request: axum::extract::Request,
) -> axum::extract::Request {
    let valid = request
        .headers()
        .get_all("x-request-id")
        .iter()
        .map(|value| value.to_str().is_ok_and(is_valid_request_id))
        .collect::<Vec<_>>();
    if valid != [true] && !valid.is_empty() {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// The span of one request.
#[derive(Debug, Clone)]
pub(crate) struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!("request", method = %request.method(), route, request_id = id)
    }
}

/// The trace layer: one span per request, a line when it ends (status and latency).
pub(crate) fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan> {
    TraceLayer::new_for_http().make_span_with(RequestSpan)
}
