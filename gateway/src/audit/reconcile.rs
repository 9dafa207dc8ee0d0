//! Every reserved audit row reaches a final state. A send is recorded `pending` before any
//! provider is called and completed after; a row still `pending` long after its request
//! must have ended belongs to an instance that stopped mid-send (`kill -9`, a crash, a
//! lost machine) or whose completion could not be written. Such a row becomes `confirmed`
//! when the provider's delivery receipt arrived meanwhile (the receipt names the row: the
//! send's reference is its id), else `unknown`: the provider may have delivered. The
//! ledger counts `unknown` apart, never as sent or not sent; a receipt arriving later
//! still confirms it.
//!
//! On SQLite the file belongs to one gateway, so at startup every `pending` row is an
//! orphan of this gateway's previous run. On PostgreSQL other instances share the table,
//! so only rows older than [`grace`] are touched, at startup and every [`EVERY`].

use std::time::Duration;

use tracing::{info, warn};

use crate::db::{Db, DbError, Settled};

/// Between two passes over stale rows.
pub const EVERY: Duration = Duration::from_secs(30);

/// Days summed per pass at most: a first start over a long trail catches up over a few
/// passes instead of holding the database in one.
const ROLL_PER_PASS: usize = 4;

/// How long after its request arrived a row may still be `pending` on a live instance:
/// the request timeout bounds the request, and its completion write (or the `cancelled`
/// one from `Audit`'s drop) follows within the database's bounded wait.
#[must_use]
pub fn grace(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(30)
}

/// The arrival time before which a `pending` row is an orphan: `now_ms` less the
/// [`grace`] of `request_timeout`.
#[must_use]
pub fn cutoff(now_ms: i64, request_timeout: Duration) -> i64 {
    let grace = i64::try_from(grace(request_timeout).as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(grace)
}

/// One pass: `pending` rows that arrived before `now_ms - grace` (all of them on SQLite
/// at startup) become `confirmed` or `unknown`, and answers kept for `Idempotency-Key`
/// longer than a day are forgotten. Returns how many rows became each.
///
/// # Errors
/// The database failed; the rows stay `pending` for the next pass.
pub async fn pass(
    db: &Db,
    now_ms: i64,
    request_timeout: Duration,
    at_startup: bool,
) -> Result<Settled, DbError> {
    let cutoff = if at_startup && !db.is_postgres() {
        i64::MAX
    } else {
        cutoff(now_ms, request_timeout)
    };
    let settled = db.reconcile_pending(cutoff).await?;
    // Settled days are summed for the usage reports, a few a pass (see `db::rollup`).
    db.roll_settled(now_ms, ROLL_PER_PASS).await?;
    // Answers kept for `Idempotency-Key` retries expire with the pass.
    db.purge_idempotency_keys(now_ms.saturating_sub(crate::db::KEEP_ANSWERS_MS))
        .await?;
    if settled.confirmed > 0 {
        info!(
            rows = settled.confirmed,
            "audit rows left pending by a stopped send are `confirmed` by the provider's receipt"
        );
    }
    if settled.unknown > 0 {
        warn!(
            rows = settled.unknown,
            "audit rows left pending by a stopped send are now `unknown` (the provider may have delivered)"
        );
    }
    if settled == Settled::default() && at_startup {
        info!("no pending audit rows to reconcile");
    }
    Ok(settled)
}
