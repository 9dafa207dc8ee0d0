//! Operations: liveness, readiness, metrics, and the answer for unknown paths.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::warn;

use crate::db::{DbState, READY_TIMEOUT};
use crate::problem::Problem;
use crate::state::AppState;

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

/// `GET /readyz`: every dependency this instance needs, each with its state, within a
/// second: the store (pinged), and the database when the gateway has one (its last write,
/// or a probe write while that failed; see [`crate::db::Db::state`]). 503 while any
/// fails, so a load balancer stops sending traffic that could only be refused.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let store = async {
        match tokio::time::timeout(READY_TIMEOUT, state.otp.ping_store()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                warn!(error = %error, "not ready: store unavailable");
                Some("unreachable")
            }
            Err(_) => Some("timeout"),
        }
    };
    let database = async {
        match &state.db {
            Some(db) => Some(db.state().await),
            None => None,
        }
    };
    let (store, database) = tokio::join!(store, database);
    let mut checks = serde_json::Map::new();
    checks.insert(
        "store".to_owned(),
        match store {
            None => json!({"state": "up"}),
            Some(fault) => json!({"state": "failing", "fault": fault}),
        },
    );
    let database_fault = match database {
        Some(DbState::Up) => {
            checks.insert("database".to_owned(), json!({"state": "up"}));
            None
        }
        Some(DbState::Failing(fault)) => {
            checks.insert(
                "database".to_owned(),
                json!({"state": "failing", "fault": fault.as_str()}),
            );
            Some(fault)
        }
        None => None,
    };
    let (code, message) = match (store, database_fault) {
        (None, None) => {
            return (
                StatusCode::OK,
                axum::Json(json!({"status": "ready", "checks": checks})),
            )
                .into_response();
        }
        (Some(_), _) => ("store_unavailable", "the store does not answer"),
        (None, Some(_)) => (
            "database_unavailable",
            "the database does not take writes: sends are refused",
        ),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "error": {"code": code, "message": message},
            "status": "not_ready",
            "checks": checks,
        })),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let router = state.router.as_ref().map(phone_otp::Router::metrics);
    let mut text = state.metrics.render(router.as_ref(), &state.otp.refusals());
    if state.otp.guards_conversion() {
        crate::metrics::render_guard_levels(&mut text, &state.otp.guard_refusals_by_level());
    }
    if let Some(db) = &state.db {
        crate::metrics::render_database(&mut text, db);
    }
    let (budgets, error) = state.budget_use().await;
    if let Some(error) = error {
        tracing::warn!(error = %error, "budget use not read for /metrics");
    }
    crate::metrics::render_budgets(&mut text, &budgets);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
