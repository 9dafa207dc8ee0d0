//! Provider attempts as the audit trail records them (`providers`:
//! `primary:timeout secondary:ok`), counted per destination country and attempt text:
//! few distinct texts exist, so the query returns few rows however many sends there were.

use std::collections::BTreeMap;

use sqlx::Row as _;

use super::rollup::{Split, fetch_over, within};
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
    /// Requests over `[from, to)` that tried a provider, per country and attempts; clean
    /// whole days from the day sums, the rest from the records, in one snapshot.
    ///
    /// # Errors
    /// The database failed.
    pub async fn attempt_counts(&self, from: i64, to: i64) -> Result<Vec<AttemptCount>, DbError> {
        let Split { rolled, live } = self.split(from, to).await?;
        let mut connection = self.pool().acquire().await?;
        let mut tx = self.snapshot(&mut connection).await?;
        let mut counts: BTreeMap<(Option<String>, String), i64> = BTreeMap::new();
        for (ranges, sql) in [
            (
                &live,
                format!(
                    "SELECT country, providers, COUNT(*) AS n FROM audit_records
                     WHERE {} AND providers IS NOT NULL GROUP BY country, providers",
                    within("at", live.len())
                ),
            ),
            (
                &rolled,
                format!(
                    "SELECT country, providers, CAST(SUM(requests) AS BIGINT) AS n FROM usage_daily
                     WHERE {} AND providers IS NOT NULL GROUP BY country, providers",
                    within("day", rolled.len())
                ),
            ),
        ] {
            for row in fetch_over(&mut tx, &sql, ranges, None).await? {
                *counts
                    .entry((row.try_get("country")?, row.try_get("providers")?))
                    .or_default() += row.try_get::<i64, _>("n")?;
            }
        }
        tx.commit().await?;
        Ok(counts
            .into_iter()
            .map(|((country, providers), count)| AttemptCount {
                country,
                providers,
                count,
            })
            .collect())
    }
}
