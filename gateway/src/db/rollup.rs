//! The usage ledger summed per settled day (`usage_daily`), so a month's report reads a
//! few thousand sums instead of every record. A day is summed once it has been over for
//! [`SETTLE_MS`]; a later write to one of its records (a delivery receipt, the
//! reconciler, a verification of one of its challenges) marks it dirty in `usage_days`,
//! and a dirty day is read from `audit_records` until it is summed again.
//!
//! Reports (`Db::usage`) read whole clean days from here and everything else from the
//! records, in one snapshot. Instances may roll the same day at once: the `usage_days`
//! row each locks first puts them one after the other.

use sqlx::Row as _;

use super::{Db, DbError};

/// A UTC day, in Unix milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// How long after its end a day is summed: past any request still being answered.
pub const SETTLE_MS: i64 = 3_600_000;

/// The dimensions a day's sums are kept by.
const KEYS: &str = "system, endpoint, country, prefix, provider, channel, outcome, refused_by, currency, providers";

impl Db {
    /// Sums day `day` (days since the Unix epoch) into `usage_daily`, replacing what was
    /// there, and marks it clean; in one transaction, so a report sees the old sums or
    /// the new ones. Returns how many sums it wrote.
    ///
    /// # Errors
    /// The database failed; nothing changed.
    pub async fn roll_day(&self, day: i64) -> Result<u64, DbError> {
        use sqlx::Connection as _;
        let mut connection = self.pool().acquire().await?;
        let mut tx = connection.begin().await?;
        // Clean first: a write that marks the day dirty after this point is summed again
        // by the next pass, never lost.
        sqlx::query(
            "INSERT INTO usage_days (day, dirty) VALUES ($1, 0)
             ON CONFLICT (day) DO UPDATE SET dirty = 0",
        )
        .bind(day)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM usage_daily WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "INSERT INTO usage_daily (day, {KEYS}, requests, sends, unknown, possible_duplicates,
                 delivered, undelivered, segments, cost_micros, started, verified)
             SELECT $1, {KEYS}, COUNT(*), COUNT(provider),
                 CAST(COALESCE(SUM(CASE WHEN outcome IN ('unknown', 'cancelled') THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN provider IS NOT NULL AND providers LIKE '%:timeout%' AND outcome <> 'confirmed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN receipt = 'delivered' THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN receipt = 'undelivered' THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN provider IS NULL THEN 0 ELSE segments END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN endpoint = 'challenges_start' AND challenge IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN endpoint = 'challenges_start' AND challenge IS NOT NULL AND EXISTS (
                     SELECT 1 FROM audit_records v WHERE v.challenge = s.challenge
                         AND v.endpoint = 'challenges_verify' AND v.outcome = 'ok') THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM audit_records s WHERE at >= $2 AND at < $3
             GROUP BY {KEYS}"
        );
        let written = sqlx::query(&sql)
            .bind(day)
            .bind(day * DAY_MS)
            .bind((day + 1) * DAY_MS)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(written)
    }

    /// Sums up to `limit` settled days that are not summed or are dirty, oldest first
    /// (the reconciler's pass calls it). Returns how many days it summed.
    ///
    /// # Errors
    /// The database failed; the days are summed by a later pass.
    pub async fn roll_settled(&self, now_ms: i64, limit: usize) -> Result<usize, DbError> {
        let Some(first) = self.first_day().await? else {
            return Ok(0);
        };
        let until = (now_ms - SETTLE_MS).div_euclid(DAY_MS);
        let days = self.days_to_roll(first, until, limit).await?;
        for day in &days {
            self.roll_day(*day).await?;
        }
        Ok(days.len())
    }

    /// The days from `first` up to (not including) `until` that are not summed, or are
    /// dirty, oldest first, at most `limit`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn days_to_roll(
        &self,
        first: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<i64>, DbError> {
        let rows =
            sqlx::query("SELECT day FROM usage_days WHERE dirty = 0 AND day >= $1 AND day < $2")
                .bind(first)
                .bind(until)
                .fetch_all(self.pool())
                .await?;
        let clean: std::collections::HashSet<i64> = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("day"))
            .collect::<Result<_, _>>()?;
        Ok((first..until)
            .filter(|day| !clean.contains(day))
            .take(limit)
            .collect())
    }

    /// The first day with a record (`None`: no records), from the `at` index.
    ///
    /// # Errors
    /// The database failed.
    pub async fn first_day(&self) -> Result<Option<i64>, DbError> {
        let row = sqlx::query("SELECT MIN(at) AS first FROM audit_records")
            .fetch_one(self.pool())
            .await?;
        Ok(row
            .try_get::<Option<i64>, _>("first")?
            .map(|at| at.div_euclid(DAY_MS)))
    }

    /// The days summed and clean within `[first, until)`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn clean_days(&self, first: i64, until: i64) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query(
            "SELECT day FROM usage_days WHERE dirty = 0 AND day >= $1 AND day < $2 ORDER BY day",
        )
        .bind(first)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("day"))
            .collect::<Result<_, _>>()
            .map_err(DbError::from)
    }
}
