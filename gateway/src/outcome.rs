//! What a response says happened, in one word, for the audit trail and the metrics.
//!
//! Handlers and problems put it into the response's extensions; the audit layer reads it
//! back. It lives apart from both so that neither imports the other for it.

/// What the audit record and the metrics call a response's outcome when it is not `ok`:
/// a problem's code, or an answer's own (`mismatch`, `unknown`, `replayed`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome(pub(crate) &'static str);
