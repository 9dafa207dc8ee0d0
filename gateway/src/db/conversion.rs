//! Verification conversion from the audit trail: of the challenges started over a range,
//! how many were verified, per country or per number prefix. A verification's record
//! finds its start's through the challenge's fingerprint (`audit_records.challenge`,
//! indexed), of the same system only: another system's attempt on the id (refused, 404)
//! never counts. Only challenges count: on the relay endpoints (Okta's, Auth0's,
//! `/v1/messages`) the caller checks the code, so the gateway never learns whether it was
//! entered.

use sqlx::Row as _;

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
        // Fixed texts per `by`, never the caller's input.
        let key = match by {
            ConversionBy::Country => "s.country",
            ConversionBy::Prefix => "s.prefix",
        };
        let sql = format!(
            "SELECT {key} AS g, MIN(s.country) AS country, COUNT(*) AS started, COUNT(v.id) AS verified
             FROM audit_records s
             LEFT JOIN audit_records v ON v.challenge = s.challenge AND v.system = s.system
                 AND v.endpoint = 'challenges_verify' AND v.outcome = 'ok'
             WHERE s.endpoint = 'challenges_start' AND s.challenge IS NOT NULL
                 AND s.at >= $1 AND s.at < $2{only}
             GROUP BY {key} ORDER BY started DESC, g LIMIT {limit}",
            only = if system.is_some() { " AND s.system = $3" } else { "" },
        );
        let mut query = sqlx::query(&sql).bind(from).bind(to);
        if let Some(system) = system {
            query = query.bind(system);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(ConversionRow {
                    key: row.try_get("g")?,
                    country: row.try_get("country")?,
                    started: row.try_get("started")?,
                    verified: row.try_get("verified")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}
