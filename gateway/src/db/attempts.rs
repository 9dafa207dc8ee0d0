//! Provider attempts as the audit trail records them (`providers`:
//! `primary:timeout secondary:ok`), counted per destination country and attempt text:
//! few distinct texts exist, so the query returns few rows however many sends there were.

use sqlx::Row as _;

use super::{Db, DbError};

/// Requests over a range with one country and one sequence of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCount {
    /// The destination's region.
    pub country: Option<String>,
    /// The attempts, as recorded.
    pub providers: String,
    /// How many requests.
    pub count: i64,
}

impl AttemptCount {
    /// Each attempt that failed: `(provider, what happened)`.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .split_whitespace()
            .filter_map(|attempt| attempt.split_once(':'))
            .filter(|(_, outcome)| *outcome != "ok")
    }
}

impl Db {
    /// Requests over `[from, to)` that tried a provider, per country and attempts.
    ///
    /// # Errors
    /// The database failed.
    pub async fn attempt_counts(&self, from: i64, to: i64) -> Result<Vec<AttemptCount>, DbError> {
        let rows = sqlx::query(
            "SELECT country, providers, COUNT(*) AS n FROM audit_records
             WHERE at >= $1 AND at < $2 AND providers IS NOT NULL
             GROUP BY country, providers",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptCount {
                    country: row.try_get("country")?,
                    providers: row.try_get("providers")?,
                    count: row.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}
