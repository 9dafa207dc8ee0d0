//! Group commit for the audit trail. Every audited request waits for its record to be
//! committed, and one commit per record would cap a gateway near the disk's sync rate.
//! Writes queue on a [`Batcher`]; each batch is one transaction. A failed batch is
//! retried one write at a time, so one bad write fails only its own request, unless the
//! database as a whole failed (disk full, down...): then all fail at once.

use super::batch::{BatchFuture, Batcher};
use super::{AuditWrite, Db};

/// The audit trail's writers for one database.
pub(crate) type AuditWriter = Batcher<AuditWrite, ()>;

pub(crate) fn audit_writer(db: Db) -> AuditWriter {
    Batcher::new(db, write_batch)
}

fn write_batch(db: Db, writes: Vec<AuditWrite>) -> BatchFuture<()> {
    Box::pin(async move {
        match db.write_audit_batch(&writes).await {
            Ok(()) => writes.iter().map(|_| Ok(())).collect(),
            // The whole database fails (full, read-only, locked, down): every write alike,
            // at once, without a retry per row that would hold the queue.
            Err(error) if writes.len() == 1 || error.fault().is_whole_database() => {
                writes.iter().map(|_| Err(error.to_string())).collect()
            }
            Err(_) => {
                let mut answers = Vec::with_capacity(writes.len());
                for write in &writes {
                    answers.push(
                        db.write_audit_batch(std::slice::from_ref(write))
                            .await
                            .map_err(|error| error.to_string()),
                    );
                }
                answers
            }
        }
    })
}
