//! What state the database is in, as the audit trail last found it. A write that fails
//! says why ([`Fault`]: disk full, read-only, locked, unreachable, slow); readiness and
//! `/metrics` report it without a query of their own, and while the last write failed a
//! probe write (at most one a second) tells when the cause has gone away.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::DbError;

/// Why a write failed, in an operator's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// No space left (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    DiskFull,
    /// The database refuses writes (read-only file or server, `SQLITE_READONLY`, `25006`).
    ReadOnly,
    /// Another writer holds the lock past the busy timeout (`SQLITE_BUSY`/`SQLITE_LOCKED`,
    /// a PostgreSQL lock timeout).
    Locked,
    /// No connection: the server is down or unreachable, the pool is closed.
    Unreachable,
    /// No connection or answer within the bounded wait (pool exhausted, server stalled).
    Timeout,
    /// Anything else the driver reports (an I/O error, a corrupt file...).
    Error,
}

impl Fault {
    /// The label in `/readyz` and `/metrics`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::ReadOnly => "read_only",
            Self::Locked => "locked",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    /// Every fault, for metrics that show zeros.
    pub const ALL: [Self; 6] = [
        Self::DiskFull,
        Self::ReadOnly,
        Self::Locked,
        Self::Unreachable,
        Self::Timeout,
        Self::Error,
    ];

    /// Whether the fault is the database's as a whole (every write would fail alike), as
    /// opposed to one statement's: a batch failing with it is not retried row by row.
    #[must_use]
    pub fn is_whole_database(self) -> bool {
        !matches!(self, Self::Error)
    }
}

impl DbError {
    /// What kind of fault this is.
    #[must_use]
    pub fn fault(&self) -> Fault {
        match self {
            Self::Timeout => Fault::Timeout,
            Self::Sql(error) => sql_fault(error),
            Self::Corrupt(_) | Self::Url => Fault::Error,
        }
    }
}

fn sql_fault(error: &sqlx::Error) -> Fault {
    match error {
        sqlx::Error::PoolTimedOut => Fault::Timeout,
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Fault::Unreachable,
        sqlx::Error::Database(db) => db.code().map_or(Fault::Error, |code| code_fault(&code)),
        _ => Fault::Error,
    }
}

/// A driver's error code: PostgreSQL's five-character SQLSTATE, or SQLite's result code
/// (at most four digits; an extended code keeps the primary one in its low byte).
fn code_fault(code: &str) -> Fault {
    if code.len() == 5 {
        // 53100 disk_full, 25006 read_only_sql_transaction, 55P03 lock_not_available,
        // 40P01 deadlock, 57014 query_canceled (statement timeout), class 08 connection
        // exceptions, 57P01-03 shutting down or cannot connect now.
        return match code {
            "53100" => Fault::DiskFull,
            "25006" => Fault::ReadOnly,
            "55P03" | "40P01" => Fault::Locked,
            "57014" => Fault::Timeout,
            _ if code.starts_with("08") || code.starts_with("57P") => Fault::Unreachable,
            _ => Fault::Error,
        };
    }
    match code.parse::<u32>().map(|c| c & 0xff) {
        Ok(13) => Fault::DiskFull,
        Ok(8) => Fault::ReadOnly,
        Ok(5 | 6) => Fault::Locked,
        _ => Fault::Error,
    }
}

/// How long a request waits for a connection or for the database to answer a write,
/// well under a client's deadline (Okta's is 3 s): a database that cannot answer in time
/// refuses the send at once instead of holding the client until it gives up.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The longest readiness waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_millis(800);

/// Between probe writes while the last write failed (default).
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The database's state as the last write found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    /// The last write was committed.
    Up,
    /// The last write failed, for this reason.
    Failing(Fault),
}

/// Shared by every clone of one [`super::Db`].
#[derive(Debug)]
pub(super) struct Health {
    state: Mutex<Probing>,
    /// Rows that failed, indexed by `Fault as usize` (the order of [`Fault::ALL`]).
    failures: [AtomicU64; Fault::ALL.len()],
}

/// What the last write left, and when readiness last probed.
#[derive(Debug)]
struct Probing {
    failing: Option<Fault>,
    last_probe: Option<Instant>,
    every: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: Mutex::new(Probing {
                failing: None,
                last_probe: None,
                every: PROBE_EVERY,
            }),
            failures: Default::default(),
        }
    }
}

impl Health {
    fn probing(&self) -> std::sync::MutexGuard<'_, Probing> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the result of a write of `rows` rows; logs once when the state changes.
    pub(super) fn record(&self, result: Result<(), &DbError>, rows: usize) {
        let now = result.err().map(DbError::fault);
        if let Some(fault) = now {
            self.failures[fault as usize].fetch_add(rows as u64, Ordering::Relaxed);
        }
        let mut probing = self.probing();
        if probing.failing != now {
            match (now, probing.failing) {
                (Some(fault), _) => {
                    tracing::error!(
                        fault = fault.as_str(),
                        "database writes are failing: sends are refused until they succeed again"
                    );
                }
                (None, Some(was)) => {
                    tracing::warn!(was = was.as_str(), "database writes succeed again");
                }
                (None, None) => {}
            }
            probing.failing = now;
        }
    }

    pub(super) fn state(&self) -> DbState {
        self.probing().failing.map_or(DbState::Up, DbState::Failing)
    }

    pub(super) fn set_probe_every(&self, every: Duration) {
        self.probing().every = every;
    }

    /// Whether a probe write is due at `now` (the last write failed and no probe ran
    /// within the probe interval); claims it if so.
    pub(super) fn claim_probe(&self, now: Instant) -> bool {
        let mut probing = self.probing();
        let every = probing.every;
        if probing.failing.is_none()
            || probing
                .last_probe
                .is_some_and(|at| now.duration_since(at) < every)
        {
            return false;
        }
        probing.last_probe = Some(now);
        true
    }

    /// Rows that failed to be written so far, per fault.
    pub(super) fn failures(&self) -> Vec<(Fault, u64)> {
        Fault::ALL
            .iter()
            .zip(&self.failures)
            .map(|(fault, count)| (*fault, count.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_read_from_either_drivers_codes() {
        for (code, fault) in [
            ("13", Fault::DiskFull),
            ("8", Fault::ReadOnly),
            ("1032", Fault::ReadOnly),
            ("5", Fault::Locked),
            ("517", Fault::Locked),
            ("1", Fault::Error),
            ("53100", Fault::DiskFull),
            ("25006", Fault::ReadOnly),
            ("55P03", Fault::Locked),
            ("57014", Fault::Timeout),
            ("08006", Fault::Unreachable),
            ("57P01", Fault::Unreachable),
            ("23505", Fault::Error),
        ] {
            assert_eq!(code_fault(code), fault, "{code}");
        }
        for (index, fault) in Fault::ALL.iter().enumerate() {
            assert_eq!(*fault as usize, index, "ALL is in declaration order");
        }
        assert!(!Fault::Error.is_whole_database());
        assert!(Fault::DiskFull.is_whole_database());
    }

    #[test]
    fn probes_run_only_while_failing_and_at_most_once_an_interval() {
        let health = Health::default();
        let start = Instant::now();
        assert!(!health.claim_probe(start), "no probe while writes succeed");
        health.record(Err(&DbError::Timeout), 3);
        assert_eq!(health.state(), DbState::Failing(Fault::Timeout));
        assert!(health.claim_probe(start));
        assert!(!health.claim_probe(start + Duration::from_millis(999)));
        assert!(health.claim_probe(start + PROBE_EVERY));
        health.record(Ok(()), 1);
        assert_eq!(health.state(), DbState::Up);
        assert!(!health.claim_probe(start + PROBE_EVERY * 5));
        let timeouts = health
            .failures()
            .into_iter()
            .find(|(f, _)| *f == Fault::Timeout);
        assert_eq!(timeouts, Some((Fault::Timeout, 3)));
    }
}
