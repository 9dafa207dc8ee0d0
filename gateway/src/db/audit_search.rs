//! Searching the audit trail for an operator: records over a range, by system, endpoint
//! and outcome, newest first, a page at a time. Pages are keyset-paginated (the next page
//! starts before the last record shown, by `(at, id)`), so the thousandth page costs what
//! the first does, on the `(system, at)` and `(at)` indexes.

use super::audit::{COLUMNS, read};
use super::{AuditRecord, Db, DbError};

/// The most records one search returns (a CSV export's cap).
pub const MAX_SEARCH_ROWS: u32 = 100_000;

/// What to look for. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSearch {
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, exclusive.
    pub to: i64,
    /// One calling system.
    pub system: Option<String>,
    /// One endpoint (`messages`, `challenges_start`, ...).
    pub endpoint: Option<String>,
    /// One outcome (`ok`, `rate_limited`, ...).
    pub outcome: Option<String>,
    /// Only records older than this `(at, id)`: the last one of the previous page.
    pub before: Option<(i64, String)>,
    /// At most this many (capped at [`MAX_SEARCH_ROWS`]).
    pub limit: u32,
}

impl Db {
    /// The records `search` matches, newest first.
    ///
    /// # Errors
    /// The database failed or a row is corrupt.
    pub async fn search_audit(&self, search: &AuditSearch) -> Result<Vec<AuditRecord>, DbError> {
        // Placeholders are numbered in the order the filters are bound below.
        let mut filters = String::from("at >= $1 AND at < $2");
        let mut next = 3;
        let mut add = |filters: &mut String, clause: &str| {
            filters.push_str(&clause.replace('?', &format!("${next}")));
            next += 1;
        };
        if search.system.is_some() {
            add(&mut filters, " AND system = ?");
        }
        if search.endpoint.is_some() {
            add(&mut filters, " AND endpoint = ?");
        }
        if search.outcome.is_some() {
            add(&mut filters, " AND outcome = ?");
        }
        if search.before.is_some() {
            // (at, id) < (before_at, before_id), spelled out: both databases use the index.
            let at = next;
            let id = next + 1;
            filters.push_str(&format!(" AND (at < ${at} OR (at = ${at} AND id < ${id}))"));
        }
        let sql = format!(
            "SELECT {COLUMNS}, receipt FROM audit_records WHERE {filters} ORDER BY at DESC, id DESC LIMIT {}",
            search.limit.min(MAX_SEARCH_ROWS)
        );
        let mut query = sqlx::query(&sql).bind(search.from).bind(search.to);
        for value in [&search.system, &search.endpoint, &search.outcome]
            .into_iter()
            .flatten()
        {
            query = query.bind(value.clone());
        }
        if let Some((at, id)) = &search.before {
            query = query.bind(*at).bind(id.clone());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(read).collect()
    }

    /// One record by its id.
    ///
    /// # Errors
    /// The database failed or the row is corrupt.
    pub async fn audit_record(&self, id: &str) -> Result<Option<AuditRecord>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, receipt FROM audit_records WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(read).transpose()
    }
}
