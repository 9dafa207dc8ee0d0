//! Accounts: whose consecutive failed verifications are counted and capped.

use crate::phone::PhoneNumber;

/// The account a challenge belongs to: its subject (within its tenant, if any), or its
/// number when it was started without a subject. Consecutive wrong codes are counted per
/// account across all its challenges, so fresh challenges do not bring fresh guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account<'a> {
    /// A user id, scoped by tenant when one is given.
    Subject {
        /// The tenant the subject belongs to.
        tenant: Option<&'a str>,
        /// The user id.
        subject: &'a str,
    },
    /// A number, for challenges without a subject.
    Number(&'a PhoneNumber),
}

impl<'a> Account<'a> {
    /// The account of a challenge with these fields.
    pub(crate) fn of(
        subject: Option<&'a str>,
        tenant: Option<&'a str>,
        to: &'a PhoneNumber,
    ) -> Self {
        match subject {
            Some(subject) => Self::Subject { tenant, subject },
            None => Self::Number(to),
        }
    }
}
