//! The usage ledger summed per day (`usage_daily`), so a month's report reads a few
//! thousand sums instead of every record.
//!
//! A day's sums hold its records from its start up to a watermark (`usage_days.
//! summed_until`): its end once the day has been over for [`SETTLE_MS`], else the latest
//! settled instant, moved on every [`REFRESH_MS`]; so only the last hour or so of any
//! range is ever summed from the records. A later write to a summed record (a delivery
//! receipt, the reconciler, a verification of one of its challenges) marks its day dirty
//! ([`mark_dirty`]), and a dirty day is read from `audit_records` until it is summed again.
//!
//! Reports (`Db::usage`, `Db::conversion_table`, `Db::attempt_counts`) read the clean sums
//! inside their range and everything else from the records, in one snapshot ([`Split`]).
//! Instances may sum the same day at once: the `usage_days` row each locks first puts
//! them one after the other.

use sqlx::Row as _;

use super::{Db, DbError};

/// A UTC day, in Unix milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// How long after it a record is summed: past any request still being answered (the
/// request timeout and the completion's write are far shorter).
pub const SETTLE_MS: i64 = 3_600_000;
/// How far today's watermark may lag the settled instant before today is summed again
/// (each time, the whole day so far: one grouped scan of a day's records).
pub const REFRESH_MS: i64 = 600_000;

/// The dimensions a day's sums are kept by.
const KEYS: &str = "system, endpoint, country, prefix, provider, channel, outcome, refused_by, currency, providers";

impl Db {
    /// Sums all of day `day` (days since the Unix epoch): [`Db::roll_until`] its end.
    ///
    /// # Errors
    /// The database failed; nothing changed.
    pub async fn roll_day(&self, day: i64) -> Result<u64, DbError> {
        self.roll_until(day, (day + 1) * DAY_MS).await
    }

    /// Sums day `day`'s records before `until` (Unix ms, within the day) into
    /// `usage_daily`, replacing what was there, and marks the day clean up to `until`.
    /// Returns how many sums it wrote (0 when a later sum of the day began meanwhile:
    /// that one writes).
    ///
    /// Three steps, so no write lock is held while the records are read (on SQLite a
    /// write transaction would stall every audited send for the length of the scan):
    /// claim the day (a new generation and the watermark being summed, so a late write
    /// from now on marks it); sum, reading only; then, if the claim is still the latest,
    /// replace the sums in one short transaction, leaving the day dirty when a summed
    /// record changed after the claim.
    ///
    /// # Errors
    /// The database failed; the sums a report reads did not change.
    pub async fn roll_until(&self, day: i64, until: i64) -> Result<u64, DbError> {
        use sqlx::Connection as _;
        let until = until.clamp(day * DAY_MS, (day + 1) * DAY_MS);
        let generation: i64 = sqlx::query(
            "INSERT INTO usage_days (day, dirty, summed_until, pending_until, generation, fresh)
             VALUES ($1, 1, $2, $3, 1, 1)
             ON CONFLICT (day) DO UPDATE SET pending_until = $3,
                 generation = usage_days.generation + 1, fresh = 1
             RETURNING generation",
        )
        .bind(day)
        .bind(day * DAY_MS)
        .bind(until)
        .fetch_one(self.pool())
        .await?
        .try_get("generation")?;
        let sum = format!(
            "SELECT {KEYS}, COUNT(*), COUNT(provider),
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
             FROM audit_records s WHERE at >= $1 AND at < $2
             GROUP BY {KEYS}"
        );
        let sums: Vec<DaySum> = sqlx::query(&sum)
            .bind(day * DAY_MS)
            .bind(until)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(DaySum::read)
            .collect::<Result<_, sqlx::Error>>()?;
        let mut connection = self.pool().acquire().await?;
        let mut tx = connection.begin().await?;
        let claimed = sqlx::query(
            "UPDATE usage_days SET summed_until = $2, pending_until = 0, dirty = 1 - fresh
             WHERE day = $1 AND generation = $3",
        )
        .bind(day)
        .bind(until)
        .bind(generation)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(0);
        }
        sqlx::query("DELETE FROM usage_daily WHERE day = $1")
            .bind(day)
            .execute(&mut *tx)
            .await?;
        for chunk in sums.chunks(SUMS_PER_INSERT) {
            let mut query = sqlx::query(insert_sql(chunk.len()));
            for sum in chunk {
                query = sum.bind(query.bind(day));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(sums.len() as u64)
    }

    /// One pass of summing (the reconciler's): up to `limit` settled days that are not
    /// summed whole or are dirty, oldest first, then today's records up to the settled
    /// instant when its watermark lags by [`REFRESH_MS`] or it is dirty. Returns how
    /// many days it summed.
    ///
    /// # Errors
    /// The database failed; the days are summed by a later pass.
    pub async fn roll_settled(&self, now_ms: i64, limit: usize) -> Result<usize, DbError> {
        let Some(first) = self.first_day().await? else {
            return Ok(0);
        };
        let settled = now_ms - SETTLE_MS;
        let today = settled.div_euclid(DAY_MS);
        let days = self.days_to_roll(first, today, limit).await?;
        for day in &days {
            self.roll_day(*day).await?;
        }
        if days.len() >= limit || today < first {
            return Ok(days.len());
        }
        let row = sqlx::query("SELECT dirty, summed_until FROM usage_days WHERE day = $1")
            .bind(today)
            .fetch_optional(self.pool())
            .await?;
        let due = match row {
            None => settled - today * DAY_MS >= REFRESH_MS,
            Some(row) => {
                row.try_get::<i64, _>("dirty")? != 0
                    || row.try_get::<i64, _>("summed_until")? + REFRESH_MS <= settled
            }
        };
        if due {
            self.roll_until(today, settled).await?;
            return Ok(days.len() + 1);
        }
        Ok(days.len())
    }

    /// The days from `first` up to (not including) `until` that are not summed whole, or
    /// are dirty, oldest first, at most `limit`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn days_to_roll(
        &self,
        first: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query(
            "SELECT day FROM usage_days WHERE dirty = 0 AND day >= $1 AND day < $2
                 AND summed_until = (day + 1) * 86400000",
        )
        .bind(first)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        let whole: std::collections::HashSet<i64> = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("day"))
            .collect::<Result<_, _>>()?;
        Ok((first..until)
            .filter(|day| !whole.contains(day))
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

    /// The clean sums of the days within `[first, until)`: `(day, summed up to)`, in day
    /// order.
    ///
    /// # Errors
    /// The database failed.
    pub async fn clean_days(&self, first: i64, until: i64) -> Result<Vec<(i64, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT day, summed_until FROM usage_days
             WHERE dirty = 0 AND day >= $1 AND day < $2 ORDER BY day",
        )
        .bind(first)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("day")?,
                    row.try_get::<i64, _>("summed_until")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}

/// Sums written per `INSERT` (21 parameters each, far under either database's limit).
const SUMS_PER_INSERT: usize = 64;

/// One group of a day's sums, as read before it is written.
struct DaySum {
    keys: [Option<String>; 10],
    measures: [i64; 10],
}

/// The measures, in `usage_daily`'s order.
const MEASURES: &str = "requests, sends, unknown, possible_duplicates, delivered, undelivered, segments, cost_micros, started, verified";

impl DaySum {
    fn read(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        let mut keys: [Option<String>; 10] = Default::default();
        for (index, key) in keys.iter_mut().enumerate() {
            *key = row.try_get(index)?;
        }
        let mut measures = [0; 10];
        for (index, measure) in measures.iter_mut().enumerate() {
            *measure = row.try_get(10 + index)?;
        }
        Ok(Self { keys, measures })
    }

    fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for key in &self.keys {
            query = query.bind(key.clone());
        }
        for measure in self.measures {
            query = query.bind(measure);
        }
        query
    }
}

/// `INSERT INTO usage_daily` of `rows` rows (day, keys, measures), one text per size.
fn insert_sql(rows: usize) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=SUMS_PER_INSERT)
            .map(|rows| {
                let values: Vec<String> = (0..rows)
                    .map(|row| {
                        let params: Vec<String> = (1..=21)
                            .map(|column| format!("${}", row * 21 + column))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO usage_daily (day, {KEYS}, {MEASURES}) VALUES {}",
                    values.join(", ")
                )
            })
            .collect()
    });
    &texts[rows.min(SUMS_PER_INSERT)]
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
    /// Splits `[from, to)` (Unix ms) into the clean sums inside it (each day's, from its
    /// start up to its watermark) and the rest.
    ///
    /// # Errors
    /// The database failed.
    pub(crate) async fn split(&self, from: i64, to: i64) -> Result<Split, DbError> {
        if to <= from {
            return Ok(Split::live(from, to));
        }
        let first = from.div_euclid(DAY_MS) + i64::from(from.rem_euclid(DAY_MS) != 0);
        let last = (to - 1).div_euclid(DAY_MS);
        let sums: Vec<(i64, i64)> = self
            .clean_days(first, last + 1)
            .await?
            .into_iter()
            .filter(|(day, until)| *until > day * DAY_MS && *until <= to)
            .collect();
        let days: Vec<i64> = sums.iter().map(|(day, _)| *day).collect();
        let covered: Vec<(i64, i64)> = sums
            .iter()
            .map(|(day, until)| (day * DAY_MS, *until))
            .collect();
        Ok(Split {
            rolled: runs(&days),
            live: complement(from, to, &covered),
        })
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

/// Runs `sql` in `tx` with `ranges` bound in order (two parameters each), then `system`
/// when given: the one way every split report binds its query. No ranges, no query.
///
/// # Errors
/// The database failed.
pub(crate) async fn fetch_over(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &str,
    ranges: &[(i64, i64)],
    system: Option<&str>,
) -> Result<Vec<sqlx::any::AnyRow>, DbError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::query(sql);
    for (a, b) in ranges {
        query = query.bind(*a).bind(*b);
    }
    if let Some(system) = system {
        query = query.bind(system);
    }
    Ok(query.fetch_all(&mut **tx).await?)
}

/// Marks days to be summed again when a record already summed changed. `records` is a
/// `SELECT` of one row per day, `(day, at)`: the record's day and time, with a `WHERE`
/// (SQLite needs one before `ON CONFLICT`). A day is marked only when the record is under
/// its watermark or the one being summed to; a record after both is summed by a later
/// pass anyway. A day with no row gets a dirty one: summed by the next pass.
///
/// An upsert, not a read then a write: on PostgreSQL it waits for a sum being written
/// and compares with the watermark that committed.
pub(crate) fn mark_dirty(records: &str) -> String {
    // The new row's `pending_until` carries the record's time into the comparison.
    format!(
        "INSERT INTO usage_days (day, dirty, summed_until, pending_until, generation, fresh)
         SELECT day, 1, day * 86400000, at, 0, 0 FROM ({records}) AS touched WHERE 1 = 1
         ON CONFLICT (day) DO UPDATE SET
             dirty = CASE WHEN {under} THEN 1 ELSE usage_days.dirty END,
             fresh = CASE WHEN {under} THEN 0 ELSE usage_days.fresh END",
        under = "excluded.pending_until < usage_days.summed_until \
                 OR excluded.pending_until < usage_days.pending_until",
    )
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

/// `[from, to)` less the intervals `covered` (in order, apart, within it), all in ms.
fn complement(from: i64, to: i64, covered: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut live = Vec::new();
    let mut at = from;
    for (a, b) in covered {
        if *a > at {
            live.push((at, *a));
        }
        at = at.max(*b);
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
        // Days 3-5 whole, day 7 summed to its noon.
        assert_eq!(
            complement(2 * d + 5, 8 * d, &[(3 * d, 6 * d), (7 * d, 7 * d + d / 2)]),
            [(2 * d + 5, 3 * d), (6 * d, 7 * d), (7 * d + d / 2, 8 * d)]
        );
        assert_eq!(complement(5, 9, &[]), [(5, 9)]);
        assert_eq!(complement(0, d, &[(0, d)]), []);
        assert_eq!(
            within("s.at", 2),
            "((s.at >= $1 AND s.at < $2) OR (s.at >= $3 AND s.at < $4))"
        );
    }
}
