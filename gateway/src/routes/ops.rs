//! Operations: liveness, readiness, metrics, and the answer for unknown paths.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::app::AppState;
use crate::problem::Problem;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// Any other path.
pub(crate) async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
}

/// `GET /readyz`: the store answers, so requests can be served.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.otp.ping_store().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        )
            .into_response(),
        Err(error) => {
            warn!(error = %error, "not ready: store unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store does not answer",
            )
            .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let router = state.router.as_ref().map(phone_otp::Router::metrics);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(router.as_ref(), &state.otp.refusals()),
    )
        .into_response()
}
