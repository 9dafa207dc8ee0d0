//! The cap on consecutive failed verifications per account.

use std::num::NonZeroU32;
use std::time::Duration;

/// At most `max_consecutive` wrong codes in a row per account (subject, or number without
/// a subject), across all its challenges; then `verify` answers
/// [`AccountLocked`](crate::VerifyOutcome::AccountLocked) and `start` refuses, until a code
/// verifies, [`OtpService::reset_failures`](crate::OtpService::reset_failures) is called,
/// or `forget_after` passes without a new failure.
///
/// Each challenge allows only a few attempts, but every new challenge would otherwise
/// bring fresh guesses. NIST SP 800-63B 5.2.2 asks for at most 100 consecutive failures
/// per account: the default is 100, forgotten 24 hours after the last failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCap {
    /// Wrong codes in a row that lock the account.
    pub max_consecutive: NonZeroU32,
    /// How long after its last failure an account's count is dropped (at the first whole
    /// second after that).
    pub forget_after: Duration,
}

impl FailureCap {
    /// A cap of `max_consecutive`, forgotten `forget_after` after the last failure.
    pub const fn new(max_consecutive: NonZeroU32, forget_after: Duration) -> Self {
        Self {
            max_consecutive,
            forget_after,
        }
    }
}

impl Default for FailureCap {
    fn default() -> Self {
        match NonZeroU32::new(100) {
            Some(max) => Self::new(max, Duration::from_secs(86_400)),
            None => unreachable!("100 is not zero"),
        }
    }
}
