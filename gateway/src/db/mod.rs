//! The gateway's SQL database: API keys and the audit trail (the usage ledger is next).
//! SQLite embedded (a file), PostgreSQL shared (several instances, BI tools). One schema
//! and one code path for both, through sqlx's `Any` driver: portable SQL, `$n`
//! placeholders in order, times as BIGINT milliseconds.

mod attempts;
mod audit;
mod audit_search;
pub(crate) mod audit_writer;
pub(crate) mod batch;
mod conversion;
mod health;
mod idempotency;
mod keys;
mod migrate;
mod rollup;
mod usage;

use std::fmt;
use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use attempts::AttemptCount;
pub use audit::{AuditRecord, AuditWrite, Settled};
pub use audit_search::{AuditSearch, MAX_SEARCH_ROWS};
pub use conversion::{ConversionBy, ConversionRow, ConversionTable};
pub use health::{DbState, Fault, PROBE_EVERY, READY_TIMEOUT, WRITE_TIMEOUT};
pub use idempotency::{Claim, KEEP_ANSWERS_MS};
pub use keys::KeyRecord;
pub use rollup::{DAY_MS, REFRESH_MS, SETTLE_MS};
pub(crate) use usage::UsageDocument;
pub use usage::{Dimension, UsageQuery, UsageReport, UsageRow, micros_text};
#[cfg(feature = "console")]
pub(crate) use usage::{csv_cell, instant};

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
    /// No connection, or no answer, within [`WRITE_TIMEOUT`].
    #[error("the database did not answer in time")]
    Timeout,
}

/// A connection pool, migrated to the current schema.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    health: Arc<health::Health>,
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
        // A request waits at most this long for a connection (sqlx's default is 30 s, so
        // a stopped server held every client until it gave up).
        let mut options = AnyPoolOptions::new().acquire_timeout(WRITE_TIMEOUT);
        if backend == Backend::Sqlite {
            options = options.after_connect(short_busy_timeout);
        }
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
        let db = Self {
            pool,
            backend,
            health: Arc::default(),
        };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Whether the database answers now.
    ///
    /// # Errors
    /// The failure.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the database takes writes, for readiness, within [`READY_TIMEOUT`]: it
    /// answers, and the last write succeeded. While the last write failed, a probe write
    /// (one row, at most one a second for all callers) finds out whether it recovered, so
    /// an instance a load balancer took out of service comes back by itself.
    pub async fn state(&self) -> DbState {
        let check = async {
            if self.health.claim_probe(std::time::Instant::now()) {
                let probe = self.probe().await;
                self.health.record(probe.as_ref().map(|_| ()), 1);
            }
            match self.health.state() {
                DbState::Up => match self.ping().await {
                    Ok(()) => DbState::Up,
                    Err(error) => DbState::Failing(error.fault()),
                },
                failing => failing,
            }
        };
        tokio::time::timeout(READY_TIMEOUT, check)
            .await
            .unwrap_or(DbState::Failing(Fault::Timeout))
    }

    /// How often readiness may probe with a write while writes fail (default
    /// [`PROBE_EVERY`]; tests that cannot wait set zero).
    pub fn set_probe_interval(&self, every: std::time::Duration) {
        self.health.set_probe_every(every);
    }

    /// The state the last write left, without a query (for `/metrics`).
    #[must_use]
    pub fn last_write(&self) -> DbState {
        self.health.state()
    }

    /// Rows that could not be written so far, per fault (for `/metrics`).
    #[must_use]
    pub fn write_failures(&self) -> Vec<(Fault, u64)> {
        self.health.failures()
    }

    async fn probe(&self) -> Result<(), DbError> {
        let write = sqlx::query(
            "INSERT INTO health_probe (id, at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(now_millis())
        .execute(&self.pool);
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| DbError::Timeout)??;
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

    /// Whether this is PostgreSQL (shared by instances) rather than SQLite (one gateway's
    /// own file).
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Another writer holding SQLite's lock makes a write wait 1 s, not sqlx's 5 s.
fn short_busy_timeout<'c>(
    connection: &'c mut sqlx::AnyConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    use sqlx::Executor as _;
    Box::pin(async move {
        connection.execute("PRAGMA busy_timeout = 1000").await?;
        Ok(())
    })
}
