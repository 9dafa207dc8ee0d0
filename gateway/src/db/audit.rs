//! The `audit_records` table.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::rollup::mark_dirty;
use super::{Db, DbError};

/// One request, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// This record's own id (random).
    pub id: String,
    /// The request id (`x-request-id`, possibly the caller's).
    pub request_id: String,
    /// Unix milliseconds when the request arrived.
    pub at: i64,
    /// Which endpoint (`messages`, `okta_telephony`, ...).
    pub endpoint: String,
    /// The calling system, once authenticated.
    pub system: Option<String>,
    /// The key used, if any.
    pub key_id: Option<String>,
    /// What the code was for.
    pub purpose: Option<String>,
    /// The destination's region (`JP`), `001` for non-geographic numbers.
    pub country: Option<String>,
    /// The destination, masked.
    pub masked_to: Option<String>,
    /// `sms` or `voice`.
    pub channel: Option<String>,
    /// Providers tried and their outcome (`primary:unavailable secondary:ok`).
    pub providers: Option<String>,
    /// The provider that delivered; `None` when nothing went out.
    pub provider: Option<String>,
    /// SMS parts billed.
    pub segments: Option<i64>,
    /// Estimated cost in millionths of `currency`, from the price table.
    pub cost_micros: Option<i64>,
    /// ISO 4217 currency of the cost.
    pub currency: Option<String>,
    /// The HTTP status answered.
    pub status: i64,
    /// `pending` while the provider is called, then `sent` or the refusal's code.
    pub outcome: String,
    /// Time to answer.
    pub latency_ms: i64,
    /// The provider's receipt (`delivered`, `undelivered`), from its status callback
    /// ([`Db::record_receipt`]); the gateway's own writes never set it.
    pub receipt: Option<String>,
    /// The limit that refused the send (`conversion`, `backoff`, `budget`, ...).
    pub refused_by: Option<String>,
    /// The destination's leading digits as the masked number shows them (`+4478`).
    pub prefix: Option<String>,
    /// A fingerprint of the challenge id, the same on its start, resends and verifications.
    pub challenge: Option<String>,
}

pub(super) const COLUMNS: &str = "id, request_id, at, endpoint, system, key_id, purpose, country, masked_to, channel, providers, segments, status, outcome, latency_ms, cost_micros, currency, provider, refused_by, prefix, challenge";

pub(super) fn read(row: &AnyRow) -> Result<AuditRecord, DbError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        at: row.try_get("at")?,
        endpoint: row.try_get("endpoint")?,
        system: row.try_get("system")?,
        key_id: row.try_get("key_id")?,
        purpose: row.try_get("purpose")?,
        country: row.try_get("country")?,
        masked_to: row.try_get("masked_to")?,
        channel: row.try_get("channel")?,
        providers: row.try_get("providers")?,
        segments: row.try_get("segments")?,
        status: row.try_get("status")?,
        outcome: row.try_get("outcome")?,
        latency_ms: row.try_get("latency_ms")?,
        cost_micros: row.try_get("cost_micros")?,
        currency: row.try_get("currency")?,
        provider: row.try_get("provider")?,
        receipt: row.try_get("receipt")?,
        refused_by: row.try_get("refused_by")?,
        prefix: row.try_get("prefix")?,
        challenge: row.try_get("challenge")?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn insert_query(record: &AuditRecord) -> AnyQuery<'static> {
    bind_record(sqlx::query(upsert_sql(1)), record)
}

/// `INSERT ... VALUES (...) x rows ON CONFLICT (id) DO UPDATE` the outcome columns. Built
/// once per row count (powers of two up to the writer's batch), from constants only.
fn upsert_sql(rows: usize) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=MAX_ROWS_LOG2)
            .map(|log2| {
                let rows = 1usize << log2;
                let values: Vec<String> = (0..rows)
                    .map(|row| {
                        let params: Vec<String> =
                            (1..=PARAMS).map(|col| format!("${}", row * PARAMS + col)).collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO audit_records ({COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET \
                     providers = excluded.providers, segments = excluded.segments, \
                     status = excluded.status, \
                     latency_ms = excluded.latency_ms, cost_micros = excluded.cost_micros, \
                     currency = excluded.currency, channel = excluded.channel, \
                     provider = COALESCE(excluded.provider, audit_records.provider), \
                     refused_by = excluded.refused_by, \
                     challenge = COALESCE(excluded.challenge, audit_records.challenge), \
                     outcome = CASE WHEN audit_records.receipt IS NOT NULL \
                         AND excluded.outcome IN ('unknown', 'cancelled') \
                         THEN 'confirmed' ELSE excluded.outcome END",
                    values.join(", ")
                )
            })
            .collect()
    });
    let log2 = rows.max(1).ilog2().min(MAX_ROWS_LOG2) as usize;
    &texts[log2]
}

/// Rows per upsert statement, at most `2^MAX_ROWS_LOG2` (`PARAMS` parameters a row stays
/// under SQLite's 32,766 and PostgreSQL's 65,535).
const MAX_ROWS_LOG2: u32 = 8;

/// Bound parameters per row: the columns of `COLUMNS`.
const PARAMS: usize = 21;

fn bind_record<'q>(query: AnyQuery<'q>, record: &AuditRecord) -> AnyQuery<'q> {
    query
        .bind(record.id.clone())
        .bind(record.request_id.clone())
        .bind(record.at)
        .bind(record.endpoint.clone())
        .bind(record.system.clone())
        .bind(record.key_id.clone())
        .bind(record.purpose.clone())
        .bind(record.country.clone())
        .bind(record.masked_to.clone())
        .bind(record.channel.clone())
        .bind(record.providers.clone())
        .bind(record.segments)
        .bind(record.status)
        .bind(record.outcome.clone())
        .bind(record.latency_ms)
        .bind(record.cost_micros)
        .bind(record.currency.clone())
        .bind(record.provider.clone())
        .bind(record.refused_by.clone())
        .bind(record.prefix.clone())
        .bind(record.challenge.clone())
}

/// The records as multi-row upserts in one transaction.
async fn upsert_all(
    connection: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    records: &[&AuditRecord],
) -> Result<(), DbError> {
    use sqlx::Connection as _;
    let mut tx = connection.begin().await?;
    let mut rest = records;
    while !rest.is_empty() {
        let size = (1 << rest.len().ilog2()).min(1 << MAX_ROWS_LOG2);
        let (chunk, tail) = rest.split_at(size);
        let mut query = sqlx::query(upsert_sql(size));
        for record in chunk {
            query = bind_record(query, record);
        }
        query.execute(&mut *tx).await?;
        rest = tail;
    }
    // A verified code changes its start's conversion: a day summed with that start is
    // summed again (see `rollup`). In the same transaction as the verification's row.
    for record in records {
        if let (true, Some(challenge)) = (
            record.endpoint == "challenges_verify" && record.outcome == "ok",
            &record.challenge,
        ) {
            sqlx::query(&mark_dirty(
                "SELECT at / 86400000 AS day, MIN(at) AS at FROM audit_records \
                     WHERE challenge = $1 AND endpoint = 'challenges_start' GROUP BY at / 86400000",
            ))
            .bind(challenge.clone())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// What a reconciliation pass did with the rows left `pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// The provider's receipt had arrived: the send happened.
    pub confirmed: u64,
    /// No receipt: the provider may have delivered.
    pub unknown: u64,
}

/// One write to the trail, for [`Db::write_audit_batch`].
#[derive(Debug, Clone)]
pub enum AuditWrite {
    /// A new record.
    Insert(AuditRecord),
    /// The final state of a record inserted before (matched by id).
    Complete(AuditRecord),
}

impl Db {
    /// Writes a new record.
    ///
    /// # Errors
    /// The database failed: the caller refuses the send.
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<(), DbError> {
        insert_query(record).execute(self.pool()).await?;
        Ok(())
    }

    /// Writes `writes` in one transaction: all or none (one commit, so one disk sync, for
    /// many requests). The records go in as multi-row upserts (a completion replaces its
    /// pending row's outcome), in chunks of a power of two so few statement texts exist.
    ///
    /// # Errors
    /// The database failed; nothing is written.
    pub async fn write_audit_batch(&self, writes: &[AuditWrite]) -> Result<(), DbError> {
        let result = tokio::time::timeout(super::WRITE_TIMEOUT, self.write_records(writes))
            .await
            .unwrap_or(Err(DbError::Timeout));
        self.health
            .record(result.as_ref().map(|_| ()), writes.len());
        result
    }

    async fn write_records(&self, writes: &[AuditWrite]) -> Result<(), DbError> {
        let records: Vec<&AuditRecord> = writes
            .iter()
            .map(|write| match write {
                AuditWrite::Insert(record) | AuditWrite::Complete(record) => record,
            })
            .collect();
        let mut connection = self.pool().acquire().await?;
        let result = upsert_all(&mut connection, &records).await;
        if result.is_err() {
            // A failed write can leave the connection inside a transaction (SQLite rolls
            // back by itself on a full disk, so sqlx's own rollback then fails and its next
            // `begin` is a savepoint whose "commit" commits nothing, while the connection
            // holds the write lock). Such a connection is closed, never reused.
            connection.close_on_drop();
        }
        result
    }

    /// Rows still `pending` that arrived before `before` (Unix ms) are settled (see
    /// `audit::reconcile`): `confirmed` when the provider's receipt arrived meanwhile,
    /// else `unknown` (the provider may have delivered). A completion written later (a
    /// slow instance after all) replaces it. Returns how many rows became each.
    ///
    /// # Errors
    /// The database failed.
    pub async fn reconcile_pending(&self, before: i64) -> Result<Settled, DbError> {
        // Each day with such rows, and its first.
        let days: Vec<(i64, i64)> = sqlx::query(
            "SELECT at / 86400000 AS day, MIN(at) AS first FROM audit_records
             WHERE outcome = 'pending' AND at < $1 GROUP BY at / 86400000",
        )
        .bind(before)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("day")?,
                row.try_get::<i64, _>("first")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let confirmed = sqlx::query(
            "UPDATE audit_records SET outcome = 'confirmed' \
             WHERE outcome = 'pending' AND at < $1 AND receipt IS NOT NULL",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        let unknown = sqlx::query(
            "UPDATE audit_records SET outcome = 'unknown' WHERE outcome = 'pending' AND at < $1",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        // Settled rows may be in days summed already (see `rollup`): those are summed
        // again. Marked after the writes, so a sum taken in between is not kept.
        if confirmed.rows_affected() + unknown.rows_affected() > 0 {
            for (day, first) in &days {
                sqlx::query(&mark_dirty("SELECT $1 AS day, $2 AS at"))
                    .bind(*day)
                    .bind(*first)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(Settled {
            confirmed: confirmed.rows_affected(),
            unknown: unknown.rows_affected(),
        })
    }

    /// Writes a provider's delivery receipt onto the record whose id is the send's
    /// `reference`. The provider is recorded as the one that sent it, and a send whose
    /// outcome was not known (`unknown`, `cancelled`) becomes `confirmed`. A `delivered`
    /// receipt is final: a later `undelivered` one (callbacks arrive out of order) does not
    /// replace it. Returns whether a record matched.
    ///
    /// # Errors
    /// The database failed or did not answer within [`WRITE_TIMEOUT`](super::WRITE_TIMEOUT).
    pub async fn record_receipt(
        &self,
        reference: &str,
        provider: &str,
        delivered: bool,
    ) -> Result<bool, DbError> {
        let write = sqlx::query(
            "UPDATE audit_records SET \
                 receipt = CASE WHEN receipt = 'delivered' THEN receipt ELSE $1 END, \
                 provider = COALESCE(provider, $2), \
                 outcome = CASE WHEN outcome IN ('unknown', 'cancelled') THEN 'confirmed' \
                     ELSE outcome END \
             WHERE id = $3",
        )
        .bind(if delivered {
            "delivered"
        } else {
            "undelivered"
        })
        .bind(provider)
        .bind(reference)
        .execute(self.pool());
        let result = tokio::time::timeout(super::WRITE_TIMEOUT, write)
            .await
            .map_err(|_| DbError::Timeout)
            .and_then(|done| done.map_err(DbError::from));
        self.health.record(result.as_ref().map(|_| ()), 1);
        let matched = result?.rows_affected() > 0;
        if matched {
            // After the write: a day summed meanwhile is summed again (see `rollup`).
            sqlx::query(&mark_dirty(
                "SELECT at / 86400000 AS day, at FROM audit_records WHERE id = $1",
            ))
            .bind(reference)
            .execute(self.pool())
            .await?;
        }
        Ok(matched)
    }

    /// Records from `from` (inclusive) to `to` (exclusive), oldest first.
    ///
    /// # Errors
    /// The database failed or a row is corrupt.
    pub async fn audit_records(&self, from: i64, to: i64) -> Result<Vec<AuditRecord>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, receipt FROM audit_records WHERE at >= $1 AND at < $2 ORDER BY at, id"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(read).collect()
    }
}
