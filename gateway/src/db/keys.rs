//! The `api_keys` table.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, DbError};
use crate::auth::api_key::{KeyKind, SecretHash};
use crate::auth::cidr::Cidr;
use crate::auth::scope::Scopes;

/// A key as stored (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The public id.
    pub id: String,
    /// System key or personal token.
    pub kind: KeyKind,
    /// The calling system or person: audit records and usage are counted under it.
    pub owner: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Source addresses it may be used from; empty means any.
    pub allowed: Vec<Cidr>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; refused from then on.
    pub expires_at: Option<i64>,
    /// Unix milliseconds; refused from then on.
    pub revoked_at: Option<i64>,
    /// Unix milliseconds of the last accepted use (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

impl KeyRecord {
    /// Whether the key is usable at `now` (not revoked, not expired).
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none_or(|at| at > now) && self.expires_at.is_none_or(|at| at > now)
    }
}

const COLUMNS: &str = "id, kind, owner, scopes, allowed_cidrs, created_at, expires_at, revoked_at, last_used_at, secret_hash";

fn read(row: &AnyRow) -> Result<(KeyRecord, SecretHash), DbError> {
    let kind: String = row.try_get("kind")?;
    let scopes: String = row.try_get("scopes")?;
    let cidrs: String = row.try_get("allowed_cidrs")?;
    let hash: String = row.try_get("secret_hash")?;
    let record = KeyRecord {
        id: row.try_get("id")?,
        kind: KeyKind::parse(&kind).ok_or(DbError::Corrupt("api_keys.kind"))?,
        owner: row.try_get("owner")?,
        scopes: Scopes::parse(&scopes).map_err(|_| DbError::Corrupt("api_keys.scopes"))?,
        allowed: cidrs
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| DbError::Corrupt("api_keys.allowed_cidrs"))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    };
    let hash = SecretHash::from_hex(&hash).ok_or(DbError::Corrupt("api_keys.secret_hash"))?;
    Ok((record, hash))
}

impl Db {
    /// Stores a new key.
    ///
    /// # Errors
    /// The database failed (or the id exists).
    pub async fn insert_key(&self, key: &KeyRecord, hash: &SecretHash) -> Result<(), DbError> {
        let cidrs: Vec<String> = key.allowed.iter().map(ToString::to_string).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, kind, owner, scopes, allowed_cidrs, created_at, expires_at, revoked_at, last_used_at, secret_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&key.id)
        .bind(key.kind.as_str())
        .bind(&key.owner)
        .bind(key.scopes.to_string())
        .bind(cidrs.join(" "))
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.last_used_at)
        .bind(hash.to_hex())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The key with public id `id`, and its secret's hash.
    ///
    /// # Errors
    /// The database failed or the row is corrupt.
    pub async fn key(&self, id: &str) -> Result<Option<(KeyRecord, SecretHash)>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(read).transpose()
    }

    /// The keys with these public ids, each with its secret's hash, in one query per 256
    /// ids (the batched lookup behind request authentication).
    ///
    /// # Errors
    /// The database failed or a row is corrupt.
    pub async fn keys_by_id(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, (KeyRecord, SecretHash)>, DbError> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(256) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM api_keys WHERE id IN ({})",
                params.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.pool()).await? {
                let (record, hash) = read(&row)?;
                found.insert(record.id.clone(), (record, hash));
            }
        }
        Ok(found)
    }

    /// Every key, oldest first.
    ///
    /// # Errors
    /// The database failed or a row is corrupt.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| read(row).map(|(record, _)| record))
            .collect()
    }

    /// Revokes key `id` at `at` (kept for the audit trail). `false` if there is no such
    /// live key.
    ///
    /// # Errors
    /// The database failed.
    pub async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND (revoked_at IS NULL OR revoked_at > $3)",
        )
        .bind(at)
        .bind(id)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a use of key `id` at `at`, unless one was recorded in the minute before:
    /// a write per request would make every send wait on the database's write lock.
    ///
    /// # Errors
    /// The database failed.
    pub async fn touch_key(&self, id: &str, at: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(at)
        .bind(id)
        .bind(at - 60_000)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
