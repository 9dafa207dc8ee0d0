//! What a store keeps of a subject's authenticator-app factor, and the decision of the one
//! atomic step that accepts a TOTP code's time step (replay protection).

use std::fmt;

/// A subject's authenticator-app factor: its sealed secret, whether a first code confirmed
/// it, the last time step accepted (a step is accepted once: a replayed code is refused),
/// and the keyed digests of its unused recovery codes. `Debug` shows no secret material.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TotpFactor {
    /// The secret, sealed (see `totp::TotpKeys`).
    pub sealed_secret: Vec<u8>,
    /// Whether a first correct code activated it.
    pub confirmed: bool,
    /// The newest time step accepted; only a newer one is accepted next.
    pub last_step: Option<u64>,
    /// Keyed digests of the recovery codes not used yet.
    pub recovery: Vec<[u8; 32]>,
}

impl TotpFactor {
    /// What disabling leaves under the account's current id: no secret, so it verifies
    /// nothing and every check answers `NotEnrolled`, yet it is there, so a factor that a
    /// check started before the disable is moving from an older key's id cannot land on
    /// it ([`FactorWrite::IfAbsent`]). A new enrollment replaces it.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Whether this is the marker [`TotpFactor::disabled`] leaves.
    pub fn is_disabled(&self) -> bool {
        self.sealed_secret.is_empty()
    }
}

impl fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpFactor")
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .field("recovery_left", &self.recovery.len())
            .finish_non_exhaustive()
    }
}

/// When [`OtpStore::put_totp_factor`](super::OtpStore::put_totp_factor) may write: the
/// condition is checked in the same atomic step as the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FactorWrite {
    /// Only where the account has no factor. A factor moved after a key rotation never
    /// overwrites one a concurrent request already moved (and may have used since).
    IfAbsent,
    /// Where the account has no factor or an unconfirmed one. A new enrollment never
    /// replaces a factor confirmed meanwhile.
    UnlessConfirmed,
    /// Over whatever is there: disabling, which leaves [`TotpFactor::disabled`].
    Replace,
}

/// What the atomic accept step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepDecision {
    /// Accepted and recorded; the account's failures are cleared.
    Accepted,
    /// This step (or a newer one) was accepted before: a replay. Nothing changed.
    Replayed,
    /// The account is past its failure cap. Nothing changed.
    AccountLocked,
    /// The subject has no factor (or only the marker a disable left).
    NotEnrolled,
}
