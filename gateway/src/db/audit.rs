//! The `audit_records` table.

use sqlx::Row as _;
use sqlx::any::AnyRow;

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
}

const COLUMNS: &str = "id, request_id, at, endpoint, system, key_id, purpose, country, masked_to, channel, providers, segments, status, outcome, latency_ms, cost_micros, currency, provider";

fn read(row: &AnyRow) -> Result<AuditRecord, DbError> {
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
    })
}

impl Db {
    /// Writes a new record.
    ///
    /// # Errors
    /// The database failed: the caller refuses the send.
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<(), DbError> {
        sqlx::query(&format!(
            "INSERT INTO audit_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
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
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces the outcome of a record written before (a pending send's final state).
    ///
    /// # Errors
    /// The database failed, or no record has this id.
    pub async fn complete_audit(&self, record: &AuditRecord) -> Result<(), DbError> {
        let updated = sqlx::query(
            "UPDATE audit_records SET providers = $1, segments = $2, status = $3, outcome = $4,
                 latency_ms = $5, cost_micros = $6, currency = $7, channel = $8, provider = $9
             WHERE id = $10",
        )
        .bind(record.providers.clone())
        .bind(record.segments)
        .bind(record.status)
        .bind(record.outcome.clone())
        .bind(record.latency_ms)
        .bind(record.cost_micros)
        .bind(record.currency.clone())
        .bind(record.channel.clone())
        .bind(record.provider.clone())
        .bind(record.id.clone())
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 1 {
            Ok(())
        } else {
            Err(DbError::Corrupt(
                "audit_records: the pending record is gone",
            ))
        }
    }

    /// Records from `from` (inclusive) to `to` (exclusive), oldest first.
    ///
    /// # Errors
    /// The database failed or a row is corrupt.
    pub async fn audit_records(&self, from: i64, to: i64) -> Result<Vec<AuditRecord>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_records WHERE at >= $1 AND at < $2 ORDER BY at, id"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(read).collect()
    }
}
