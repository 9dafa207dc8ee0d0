//! Versioned schema migrations, embedded in the binary and applied in order at connect.
//! Each runs in a transaction with its version row, so a crash leaves it applied or not;
//! on PostgreSQL an advisory lock keeps two instances starting at once from racing.

use sqlx::Row as _;

use super::{Db, DbError};

/// `(version, name, SQL)`, in order. Append only: an applied migration never changes.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "api_keys",
        include_str!("../../migrations/0001_api_keys.sql"),
    ),
    (
        2,
        "audit_records",
        include_str!("../../migrations/0002_audit_records.sql"),
    ),
    (
        3,
        "audit_cost",
        include_str!("../../migrations/0003_audit_cost.sql"),
    ),
    (
        4,
        "audit_provider",
        include_str!("../../migrations/0004_audit_provider.sql"),
    ),
    (
        5,
        "faults",
        include_str!("../../migrations/0005_faults.sql"),
    ),
    (
        6,
        "idempotency_keys",
        include_str!("../../migrations/0006_idempotency_keys.sql"),
    ),
    (
        7,
        "receipts",
        include_str!("../../migrations/0007_receipts.sql"),
    ),
    (
        8,
        "audit_refusals",
        include_str!("../../migrations/0008_audit_refusals.sql"),
    ),
    (
        9,
        "usage_daily",
        include_str!("../../migrations/0009_usage_daily.sql"),
    ),
];

/// An arbitrary constant naming this schema's lock.
const LOCK_ID: i64 = 0x706f_7470_6777;

pub(super) async fn run(db: &Db) -> Result<(), DbError> {
    // The lock is per session: taken and released on one pooled connection, while the
    // migrations themselves run in pool transactions.
    let mut lock = db.pool().acquire().await?;
    if db.is_postgres() {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_ID)
            .execute(lock.as_mut())
            .await?;
    }
    let result = apply(db).await;
    if db.is_postgres() {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_ID)
            .execute(lock.as_mut())
            .await?;
    }
    result
}

async fn apply(db: &Db) -> Result<(), DbError> {
    let pool = db.pool();
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // One call on one connection: the migration and its version row commit together.
        // Everything formatted in is this crate's own constant text and numbers.
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_migrations (version, name, applied_at) VALUES ({version}, '{name}', {});\nCOMMIT;",
            now_millis()
        );
        sqlx::raw_sql(&script).execute(pool).await?;
        tracing::info!(version, name, "database migration applied");
    }
    Ok(())
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
