//! What a verification attempt found.

use std::fmt;

use crate::message::Purpose;

/// The result of checking a code. Infrastructure failures are a separate error
/// ([`VerifyError`](crate::VerifyError)), never one of these.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// The code was right. The challenge is consumed: it will never verify again.
    Verified {
        /// What the challenge was started for.
        purpose: Purpose,
        /// The subject (user id) given at start, if any.
        subject: Option<String>,
    },
    /// The code was wrong (or malformed). The attempt was counted.
    Mismatch {
        /// Wrong attempts still allowed before the challenge locks.
        attempts_left: u8,
    },
    /// The challenge's lifetime is over.
    Expired,
    /// Too many wrong attempts: even the right code is refused now.
    AttemptsExhausted,
    /// The challenge was already verified once.
    AlreadyUsed,
    /// No such challenge (never started, cancelled after a failed send, or long gone).
    NotFound,
    /// The account (subject, or number without a subject) has had too many wrong codes in
    /// a row across its challenges ([`FailureCap`](crate::FailureCap)). Nothing was
    /// compared or counted; it stays locked until a reset or until the count is forgotten.
    AccountLocked,
}

impl VerifyOutcome {
    /// Whether the code was accepted.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }

    /// A short lowercase name, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified { .. } => "verified",
            Self::Mismatch { .. } => "mismatch",
            Self::Expired => "expired",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::AlreadyUsed => "already_used",
            Self::NotFound => "not_found",
            Self::AccountLocked => "account_locked",
        }
    }
}

impl fmt::Debug for VerifyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Subjects are user ids: fine to show, but keep Debug uniform and short.
            Self::Verified { purpose, subject } => f
                .debug_struct("Verified")
                .field("purpose", purpose)
                .field("subject", subject)
                .finish(),
            Self::Mismatch { attempts_left } => f
                .debug_struct("Mismatch")
                .field("attempts_left", attempts_left)
                .finish(),
            other => f.write_str(match other {
                Self::Expired => "Expired",
                Self::AttemptsExhausted => "AttemptsExhausted",
                Self::AlreadyUsed => "AlreadyUsed",
                Self::AccountLocked => "AccountLocked",
                _ => "NotFound",
            }),
        }
    }
}

/// Why a challenge cannot take a new code (resend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotPending {
    /// No such challenge.
    NotFound,
    /// Its lifetime is over.
    Expired,
    /// It was already verified.
    AlreadyUsed,
    /// It is locked after too many wrong attempts.
    AttemptsExhausted,
}

impl fmt::Display for NotPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "challenge not found",
            Self::Expired => "challenge expired",
            Self::AlreadyUsed => "challenge already used",
            Self::AttemptsExhausted => "challenge locked after too many wrong attempts",
        })
    }
}

impl From<NotPending> for VerifyOutcome {
    /// A challenge that cannot take a code cannot verify one either, for the same reason.
    fn from(reason: NotPending) -> Self {
        match reason {
            NotPending::NotFound => Self::NotFound,
            NotPending::Expired => Self::Expired,
            NotPending::AlreadyUsed => Self::AlreadyUsed,
            NotPending::AttemptsExhausted => Self::AttemptsExhausted,
        }
    }
}
