//! One way in for every audited route: the layer opens the request's record before the
//! handler runs, the handler and the caller extractor fill it in through an
//! [`AuditHandle`], and once the response is made the layer writes its final state and
//! counts the request by endpoint and outcome. A new endpoint gets all of it from its one
//! router line (`app::audited`).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::Audit;
use crate::outcome::Outcome;
use crate::problem::Problem;
use crate::state::AppState;

/// The route's name in the audit trail and in metric labels (`messages`,
/// `challenges_start`, ...), set on its router line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint(pub(crate) &'static str);

/// The request's record in the making, shared by the layer, the caller extractor and the
/// handler (each holds it only between two statements, never across a wait).
#[derive(Clone)]
pub(crate) struct AuditHandle(Arc<Mutex<Audit>>);

impl AuditHandle {
    /// The record, to fill in.
    pub(crate) fn record(&self) -> MutexGuard<'_, Audit> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the send as pending before any provider is called: the fail-closed guard
    /// every sending handler calls, visibly, right before it sends.
    ///
    /// # Errors
    /// 503 when the record cannot be written: the send must not happen.
    pub(crate) async fn reserve(&self) -> Result<(), Problem> {
        let write = self.record().reservation()?;
        let Some((writer, write)) = write else {
            return Ok(());
        };
        super::write_reservation(&writer, write).await?;
        self.record().reserved();
        Ok(())
    }
}

impl FromRequestParts<AppState> for AuditHandle {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        // Present on every route `app::audited` built; its absence is a wiring bug.
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("an audited handler runs on a route without the audit layer");
            crate::problem::internal()
        })
    }
}

/// The layer itself: opens the record, runs the route, writes the final state and counts
/// the request, before the response leaves.
pub(crate) async fn audited(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let name = request
        .extensions()
        .get::<Endpoint>()
        .map_or("other", |endpoint| endpoint.0);
    let audit = Audit::start(&state, request.headers(), name);
    let started = audit.started();
    let handle = AuditHandle(Arc::new(Mutex::new(audit)));
    request.extensions_mut().insert(handle.clone());
    let response = next.run(request).await;
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .map_or("ok", |outcome| outcome.0);
    // The handler and its extractors are done: this is the last holder.
    let audit = match Arc::try_unwrap(handle.0) {
        Ok(audit) => Some(
            audit
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
        Err(_) => {
            tracing::error!("an audit record outlived its request");
            None
        }
    };
    if let Some(mut audit) = audit {
        if let Some(limit) = response.extensions().get::<Problem>().and_then(|p| p.limit) {
            audit.refused_by(limit);
        }
        audit.finish(response.status(), outcome).await;
    }
    state.metrics.record(name, outcome, started.elapsed());
    response
}
