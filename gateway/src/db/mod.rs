//! The gateway's SQL database: API keys and the audit trail (the usage ledger is next).
//! SQLite embedded (a file), PostgreSQL shared (several instances, BI tools). One schema
//! and one code path for both, through sqlx's `Any` driver: portable SQL, `$n`
//! placeholders in order, times as BIGINT milliseconds.

mod audit;
pub(crate) mod batch;
mod keys;
mod migrate;
mod usage;

use std::fmt;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use audit::{AuditRecord, AuditWrite};
pub use keys::KeyRecord;
pub use usage::{Dimension, UsageQuery, UsageReport, UsageRow, micros_text};

/// The database failed or is unreachable. Callers fail closed on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A driver or connection error.
    #[error("database error")]
    Sql(#[from] sqlx::Error),
    /// A stored row does not read back (edited by hand, or a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(&'static str),
    /// The URL names no supported database.
    #[error("unsupported database URL (sqlite: or postgres:)")]
    Url,
}

/// A connection pool, migrated to the current schema.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never shown.
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Connects to `url` (`sqlite://gateway.db?mode=rwc`, `sqlite::memory:`,
    /// `postgres://user:pass@host/db`) and applies pending migrations.
    ///
    /// # Errors
    /// An unsupported URL, an unreachable server, a failed migration.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Url);
        };
        let mut options = AnyPoolOptions::new();
        let memory = backend == Backend::Sqlite && url.contains(":memory:");
        if memory {
            // An in-memory database lives per connection: exactly one, kept open.
            options = options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options.connect(url).await?;
        if backend == Backend::Sqlite && !memory {
            // WAL lets readers run beside the one writer; it is a property of the file.
            // (sqlx already waits up to 5 s for a locked database instead of failing.)
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let db = Self { pool, backend };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Whether the database answers now (readiness).
    ///
    /// # Errors
    /// The failure.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs one administrative statement (`CREATE DATABASE` in tests and set-up scripts).
    ///
    /// # Errors
    /// The failure.
    pub async fn execute_admin(&self, sql: &str) -> Result<(), DbError> {
        sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail (tests use it to stand for an outage).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}
