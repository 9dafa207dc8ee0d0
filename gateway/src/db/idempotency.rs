//! Stored first answers for `Idempotency-Key`: a calling system's key is claimed before its
//! request sends anything, and settled with the answer once something may have been sent.
//! A retry finds the answer (replayed), the first request still running (in progress), or
//! a different request under the same key (refused). Keys are per system: another system's
//! same key is its own.

use sqlx::Row as _;

use super::{Db, DbError, WRITE_TIMEOUT};

/// How long an answer is kept for retries.
pub const KEEP_ANSWERS_MS: i64 = 86_400_000;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: run it, then settle or release the key.
    Fresh,
    /// The first request with this key answered `status` with `body`.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The JSON body.
        body: String,
    },
    /// The first request with this key has not answered yet.
    InProgress,
    /// The key was used for a different request (another endpoint, challenge or body).
    Mismatch,
}

impl Db {
    /// Claims `key` for `system`'s request with `fingerprint`. A claim whose request never
    /// settled or released it and that is older than `stale_before` (Unix ms: the instance
    /// stopped mid-request) is taken over, so the key is not stuck.
    ///
    /// # Errors
    /// The database failed or did not answer within [`WRITE_TIMEOUT`]: the caller refuses.
    pub async fn claim_idempotency_key(
        &self,
        system: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before: i64,
    ) -> Result<Claim, DbError> {
        let claim = async {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (system, request_key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (system, request_key) DO NOTHING",
            )
            .bind(system)
            .bind(key)
            .bind(fingerprint)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Fresh);
            }
            let Some(row) = sqlx::query(
                "SELECT fingerprint, created_at, status, body FROM idempotency_keys \
                 WHERE system = $1 AND request_key = $2",
            )
            .bind(system)
            .bind(key)
            .fetch_optional(self.pool())
            .await?
            else {
                // Released between the insert and the read: the next try claims it.
                return Ok(Claim::InProgress);
            };
            let stored: String = row.try_get("fingerprint")?;
            if stored != fingerprint {
                return Ok(Claim::Mismatch);
            }
            let status: Option<i64> = row.try_get("status")?;
            let body: Option<String> = row.try_get("body")?;
            if let (Some(status), Some(body)) = (status, body) {
                let status =
                    u16::try_from(status).map_err(|_| DbError::Corrupt("idempotency status"))?;
                return Ok(Claim::Answered { status, body });
            }
            let created_at: i64 = row.try_get("created_at")?;
            if created_at >= stale_before {
                return Ok(Claim::InProgress);
            }
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET created_at = $1 WHERE system = $2 \
                 AND request_key = $3 AND status IS NULL AND created_at = $4",
            )
            .bind(now_ms)
            .bind(system)
            .bind(key)
            .bind(created_at)
            .execute(self.pool())
            .await?;
            Ok(if taken.rows_affected() == 1 {
                Claim::Fresh
            } else {
                Claim::InProgress
            })
        };
        let result = tokio::time::timeout(WRITE_TIMEOUT, claim)
            .await
            .unwrap_or(Err(DbError::Timeout));
        self.health.record(result.as_ref().map(|_| ()), 1);
        result
    }

    /// Keeps the answer to `system`'s request with `key`, for its retries.
    ///
    /// # Errors
    /// The database failed; retries see the request in progress until the claim is stale.
    pub async fn settle_idempotency_key(
        &self,
        system: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), DbError> {
        let write = sqlx::query(
            "UPDATE idempotency_keys SET status = $1, body = $2 \
             WHERE system = $3 AND request_key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(system)
        .bind(key)
        .execute(self.pool());
        let result = tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| DbError::Timeout)
            .and_then(|done| done.map(|_| ()).map_err(DbError::from));
        self.health.record(result.as_ref().map(|_| ()), 1);
        result
    }

    /// Gives the key back: the request sent nothing (refused, invalid, limited), so a
    /// retry runs again.
    ///
    /// # Errors
    /// The database failed; the claim goes stale and is taken over later.
    pub async fn release_idempotency_key(&self, system: &str, key: &str) -> Result<(), DbError> {
        let write = sqlx::query(
            "DELETE FROM idempotency_keys WHERE system = $1 AND request_key = $2 \
             AND status IS NULL",
        )
        .bind(system)
        .bind(key)
        .execute(self.pool());
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| DbError::Timeout)??;
        Ok(())
    }

    /// Forgets answers claimed before `before` (Unix ms). Returns how many.
    ///
    /// # Errors
    /// The database failed.
    pub async fn purge_idempotency_keys(&self, before: i64) -> Result<u64, DbError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
