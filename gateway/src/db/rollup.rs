//! The usage ledger summed per settled day (`usage_daily`), so a month's report reads a
//! few thousand sums instead of every record. A day is summed once it has been over for
//! [`SETTLE_MS`]; a later write to one of its records (a delivery receipt, the
//! reconciler, a verification of one of its challenges) marks it dirty in `usage_days`,
//! and a dirty day is read from `audit_records` until it is summed again.
//!
//! Reports (`Db::usage`, `Db::conversion`, `Db::attempt_counts`) read whole clean days
//! from here and everything else from the records, in one snapshot ([`Split`]). Instances may roll the same day at once: the `usage_days`
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
                     SELECT 1 FROM audit_records v WHERE v.challenge = s.challenge AND v.system = s.system
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

/// A report's range split by where its sums come from: whole clean days from
/// `usage_daily`, the rest from `audit_records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// Runs of summed days, `[first, last + 1)` in days.
    pub rolled: Vec<(i64, i64)>,
    /// The rest, `[a, b)` in Unix ms.
    pub live: Vec<(i64, i64)>,
}

impl Split {
    /// All of `[from, to)` from the records (a report by hour).
    pub fn live(from: i64, to: i64) -> Self {
        Self {
            rolled: Vec::new(),
            live: vec![(from, to)],
        }
    }
}

impl Db {
    /// Splits `[from, to)` (Unix ms) into the clean whole days inside it and the rest.
    ///
    /// # Errors
    /// The database failed.
    pub(crate) async fn split(&self, from: i64, to: i64) -> Result<Split, DbError> {
        let first = from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0);
        let rolled = runs(&self.clean_days(first, to.div_euclid(DAY_MS)).await?);
        let live = complement(from, to, &rolled);
        Ok(Split { rolled, live })
    }

    /// A transaction that reads one snapshot (REPEATABLE READ on PostgreSQL; a SQLite
    /// read transaction is one already), so a day summed meanwhile is counted once.
    ///
    /// # Errors
    /// The database failed.
    pub(crate) async fn snapshot<'c>(
        &self,
        connection: &'c mut sqlx::AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, DbError> {
        use sqlx::Connection as _;
        let mut tx = connection.begin().await?;
        if self.is_postgres() {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }
}

/// Marks days to be summed again; `days` is a `SELECT` of `day, 1` rows, with a `WHERE`
/// (SQLite needs one before `ON CONFLICT`), each day once.
/// An upsert, not an update: a first sum of that day still being written (its
/// `usage_days` row not yet committed) makes this wait for it and then mark it, where an
/// update would see no row and mark nothing.
pub(crate) fn mark_dirty(days: &str) -> String {
    format!("INSERT INTO usage_days (day, dirty) {days} ON CONFLICT (day) DO UPDATE SET dirty = 1")
}

/// `(column >= $1 AND column < $2 OR ...)` for `ranges` ranges, parameters `$1` to
/// `$2·ranges` in order. `column` is a fixed text, never the caller's input.
pub(crate) fn within(column: &str, ranges: usize) -> String {
    let each: Vec<String> = (0..ranges)
        .map(|i| format!("({column} >= ${} AND {column} < ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    format!("({})", each.join(" OR "))
}

/// ` AND {table}system = $n` after `ranges` ranges' parameters, when one system is asked.
pub(crate) fn only_system(system: Option<&str>, ranges: usize, table: &str) -> String {
    if system.is_some() {
        format!(" AND {table}system = ${}", 2 * ranges + 1)
    } else {
        String::new()
    }
}

/// Consecutive days as `[first, last + 1)` runs.
fn runs(days: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &day in days {
        match runs.last_mut() {
            Some((_, end)) if *end == day => *end = day + 1,
            _ => runs.push((day, day + 1)),
        }
    }
    runs
}

/// `[from, to)` in ms, less the day runs `rolled`.
fn complement(from: i64, to: i64, rolled: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut live = Vec::new();
    let mut at = from;
    for (first, end) in rolled {
        let (a, b) = (first * DAY_MS, end * DAY_MS);
        if a > at {
            live.push((at, a));
        }
        at = b;
    }
    if at < to {
        live.push((at, to));
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_splits_into_summed_days_and_the_rest() {
        let d = DAY_MS;
        assert_eq!(runs(&[3, 4, 5, 7, 9, 10]), [(3, 6), (7, 8), (9, 11)]);
        assert_eq!(
            complement(2 * d + 5, 11 * d + 7, &[(3, 6), (7, 8), (9, 11)]),
            [
                (2 * d + 5, 3 * d),
                (6 * d, 7 * d),
                (8 * d, 9 * d),
                (11 * d, 11 * d + 7)
            ]
        );
        assert_eq!(complement(5, 9, &[]), [(5, 9)]);
        assert_eq!(
            within("s.at", 2),
            "((s.at >= $1 AND s.at < $2) OR (s.at >= $3 AND s.at < $4))"
        );
    }
}
