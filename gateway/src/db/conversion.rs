//! Verification conversion from the audit trail: of the challenges started over a range,
//! how many were verified, per country or per number prefix. A verification's record
//! finds its start's through the challenge's fingerprint (`audit_records.challenge`,
//! indexed), of the same system only: another system's attempt on the id (refused, 404)
//! never counts. Only challenges count: on the relay endpoints (Okta's, Auth0's,
//! `/v1/messages`) the caller checks the code, so the gateway never learns whether it was
//! entered.

use std::collections::BTreeMap;

use sqlx::Row as _;

use super::rollup::{Split, fetch_over, only_system, within};
use super::{Db, DbError};

/// What conversion is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConversionBy {
    /// The destination's region (`JP`).
    Country,
    /// The destination's leading digits as the masked number shows them (`+4478`).
    Prefix,
}

/// One country's or prefix's challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionRow {
    /// The country or prefix (`None`: not recorded).
    pub key: Option<String>,
    /// The country (the same as `key` when counting per country).
    pub country: Option<String>,
    /// Challenges started whose code went out (or may have).
    pub started: i64,
    /// Of those, verified.
    pub verified: i64,
}

impl ConversionRow {
    /// `verified / started`, 0 when nothing was started.
    pub fn rate(&self) -> f64 {
        if self.started == 0 {
            0.0
        } else {
            self.verified as f64 / self.started as f64
        }
    }
}

/// Conversion per country and prefix together, from which either view is summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionTable {
    /// `(country, prefix)` → `(started, verified)`.
    cells: BTreeMap<(Option<String>, Option<String>), (i64, i64)>,
}

impl ConversionTable {
    /// Conversion per `by`, the `limit` most started first (ties by key).
    pub fn by(&self, by: ConversionBy, limit: u32) -> Vec<ConversionRow> {
        let mut groups: BTreeMap<Option<String>, ConversionRow> = BTreeMap::new();
        for ((country, prefix), (started, verified)) in &self.cells {
            let key = match by {
                ConversionBy::Country => country,
                ConversionBy::Prefix => prefix,
            };
            let row = groups.entry(key.clone()).or_insert_with(|| ConversionRow {
                key: key.clone(),
                // The least recorded country, as SQL's MIN (cells are in country order).
                country: country.clone(),
                started: 0,
                verified: 0,
            });
            if row.country.is_none() {
                row.country.clone_from(country);
            }
            row.started += started;
            row.verified += verified;
        }
        let mut rows: Vec<ConversionRow> = groups.into_values().collect();
        rows.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows
    }
}

impl Db {
    /// Conversion over `[from, to)` per `by`, of one system's challenges when `system` is
    /// given, the `limit` most started first.
    ///
    /// # Errors
    /// The database failed.
    pub async fn conversion(
        &self,
        from: i64,
        to: i64,
        system: Option<&str>,
        by: ConversionBy,
        limit: u32,
    ) -> Result<Vec<ConversionRow>, DbError> {
        Ok(self.conversion_table(from, to, system).await?.by(by, limit))
    }

    /// Conversion over `[from, to)` per country and prefix (both views from one read),
    /// of one system's challenges when `system` is given. Clean whole days are read from
    /// the day sums, the rest from the records, in one snapshot.
    ///
    /// # Errors
    /// The database failed.
    pub async fn conversion_table(
        &self,
        from: i64,
        to: i64,
        system: Option<&str>,
    ) -> Result<ConversionTable, DbError> {
        let Split { rolled, live } = self.split(from, to).await?;
        let mut connection = self.pool().acquire().await?;
        let mut tx = self.snapshot(&mut connection).await?;
        let mut table = ConversionTable::default();
        for (ranges, sql) in [
            (
                &live,
                format!(
                    "SELECT s.country AS country, s.prefix AS prefix, COUNT(*) AS started, COUNT(v.id) AS verified
                     FROM audit_records s
                     LEFT JOIN audit_records v ON v.challenge = s.challenge AND v.system = s.system
                         AND v.endpoint = 'challenges_verify' AND v.outcome = 'ok'
                     WHERE s.endpoint = 'challenges_start' AND s.challenge IS NOT NULL
                         AND {within}{only}
                     GROUP BY s.country, s.prefix",
                    within = within("s.at", live.len()),
                    only = only_system(system, live.len(), "s."),
                ),
            ),
            (
                &rolled,
                format!(
                    "SELECT country, prefix,
                         CAST(SUM(started) AS BIGINT) AS started, CAST(SUM(verified) AS BIGINT) AS verified
                     FROM usage_daily
                     WHERE endpoint = 'challenges_start' AND started > 0 AND {within}{only}
                     GROUP BY country, prefix",
                    within = within("day", rolled.len()),
                    only = only_system(system, rolled.len(), ""),
                ),
            ),
        ] {
            for row in fetch_over(&mut tx, &sql, ranges, system).await? {
                let cell = table
                    .cells
                    .entry((row.try_get("country")?, row.try_get("prefix")?))
                    .or_default();
                cell.0 += row.try_get::<i64, _>("started")?;
                cell.1 += row.try_get::<i64, _>("verified")?;
            }
        }
        tx.commit().await?;
        Ok(table)
    }
}
