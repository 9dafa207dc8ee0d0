//! Operations: liveness, readiness, metrics, and the answer for unknown paths.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
