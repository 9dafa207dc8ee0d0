//! The authenticator-app factor as a service: enrollment (secret, key URI and recovery
//! codes shown once), confirmation by a first code, verification with replay protection,
//! recovery codes, and disabling. It runs on the [`OtpService`]'s store, key ring, clock
//! and failure cap, so a subject's wrong TOTP codes and wrong SMS codes count against one
//! cap: alternating factors brings no extra guesses.

use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::SecretString;
use tracing::info;

use super::account::Account;
use super::service::OtpService;
use crate::challenge::AccountId;
use crate::limit::{Admission, Limit, LimitKey, Quota};
use crate::store::{FactorWrite, OtpStore, StepDecision, StoreError, TotpFactor};
use crate::totp::{SealedTotpSecret, TotpKeys, TotpSecret, TotpSettings, base32, key_uri};

/// Recovery codes issued at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (5 bits each: 50 bits), shown as `xxxxx-xxxxx`.
const RECOVERY_CHARS: usize = 10;
/// Crockford's base32 alphabet, lowercase (no i, l, o or u): typing `o` for `0` or `i`/`l`
/// for `1` still works.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// What a TOTP check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpOutcome {
    /// The code is right and was not used before.
    Verified,
    /// The code is wrong (counted against the account).
    Mismatch,
    /// The code is right but its time step was already accepted: a replay.
    AlreadyUsed,
    /// The subject has no factor (or, for `verify`, none confirmed yet).
    NotEnrolled,
    /// The account is past its failure cap.
    AccountLocked,
    /// Too many attempts for this subject just now.
    Limited {
        /// When one more attempt is allowed.
        retry_after: Duration,
    },
}

impl TotpOutcome {
    /// A stable snake_case name (`verified`, `mismatch`, `already_used`, `not_enrolled`,
    /// `account_locked`, `limited`), for logs and wire formats.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Mismatch => "mismatch",
            Self::AlreadyUsed => "already_used",
            Self::NotEnrolled => "not_enrolled",
            Self::AccountLocked => "account_locked",
            Self::Limited { .. } => "limited",
        }
    }
}

/// What enrollment hands the user, once.
pub struct Enrollment {
    /// The `otpauth://` URI (show as a QR code).
    pub uri: SecretString,
    /// The secret in base32, for typing into an app by hand.
    pub secret_base32: SecretString,
    /// Single-use recovery codes.
    pub recovery_codes: Vec<SecretString>,
}

impl Enrollment {
    /// The URI as an SVG QR code for the app to scan (feature `totp-qr`); it holds the
    /// secret like the URI. `None` only for a URI too long for a QR code.
    #[cfg(feature = "totp-qr")]
    pub fn qr_svg(&self) -> Option<SecretString> {
        crate::totp::qr_svg(&self.uri)
    }
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment(..)")
    }
}

/// Why a TOTP operation failed (not a wrong code: that is an outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// A subject, tenant or label is unusable (empty, over
    /// [`MAX_LABEL_BYTES`](crate::MAX_LABEL_BYTES), or a label with `:`, which key URIs
    /// reserve). Nothing was looked up, counted or stored.
    #[error("invalid TOTP request: {0}")]
    InvalidRequest(&'static str),
    /// The store failed; never treat it as verified.
    #[error("store unavailable")]
    Store(#[from] StoreError),
    /// A confirmed factor exists: disable it first.
    #[error("a confirmed authenticator is already enrolled")]
    AlreadyEnrolled,
    /// The stored secret does not open (its key left the ring, or it was altered).
    #[error("the stored secret cannot be opened with these keys")]
    Unreadable,
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// The authenticator-app factor of an [`OtpService`]. Cheap to clone.
#[derive(Clone)]
pub struct TotpService {
    otp: OtpService,
    settings: TotpSettings,
    keys: TotpKeys,
    attempts: Quota,
}

impl std::fmt::Debug for TotpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OtpService {
    /// The authenticator-app factor on this service's store, key ring, clock and failure
    /// cap, sealing secrets with `keys`. `None` for settings a verifier may not use (see
    /// [`TotpSettings::is_valid`]).
    pub fn totp(&self, settings: TotpSettings, keys: TotpKeys) -> Option<TotpService> {
        settings.is_valid().then(|| TotpService {
            otp: self.clone(),
            settings,
            keys,
            attempts: Quota::per_minute(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)),
        })
    }
}

impl TotpService {
    /// Attempts per subject (default 5 a minute), on top of the account failure cap.
    pub fn attempts(mut self, quota: Quota) -> Self {
        self.attempts = quota;
        self
    }

    /// The settings codes are made with.
    pub fn settings(&self) -> &TotpSettings {
        &self.settings
    }

    fn subject_name<'a>(tenant: Option<&'a str>, subject: &'a str) -> Account<'a> {
        Account::Subject { tenant, subject }
    }

    fn now_secs(&self) -> u64 {
        self.otp.inner.clock.now().as_millis() / 1000
    }

    /// The sealed secret and confirmation of `account`'s factor, under its `primary` id
    /// (the primary key's), moving the factor there from an older key's id after a
    /// rotation (only then are the older ids computed).
    ///
    /// The move writes only where the primary id has nothing yet: of concurrent first
    /// uses after a rotation one moves it, and the others read what it moved, so a step
    /// or recovery code used under the new id is never brought back by a late copy, and a
    /// disable's marker is never written over. `None` for the marker.
    async fn factor(
        &self,
        primary: AccountId,
        account: &Account<'_>,
    ) -> Result<Option<Factor>, TotpError> {
        let store = &self.otp.inner.store;
        if let Some(found) = Self::primary_factor(store.as_ref(), primary).await? {
            return Ok(found.usable());
        }
        let ids = self.otp.keys().account_ids(account);
        if ids.len() < 2 {
            return Ok(None);
        }
        for id in ids.iter().skip(1) {
            if let Some(factor) = store.totp_factor(*id).await? {
                if factor.is_disabled() {
                    // A marker left when that key was primary: nothing to move.
                    store.remove_totp_factor(*id).await?;
                    continue;
                }
                let found = Factor {
                    sealed: factor.sealed_secret.clone(),
                    confirmed: factor.confirmed,
                };
                let moved = store
                    .put_totp_factor(primary, factor, FactorWrite::IfAbsent)
                    .await?;
                store.remove_totp_factor(*id).await?;
                if moved {
                    info!("authenticator factor moved to the primary key's account id");
                    return Ok(Some(found));
                }
                // Another request moved it first, or a disable left its marker: use what
                // is there now.
                return Ok(Self::primary_factor(store.as_ref(), primary)
                    .await?
                    .and_then(Factor::usable));
            }
        }
        // Not under an older id either. A concurrent request may have moved it between
        // the first read and these: a move writes the primary id before it removes the
        // old one, so the primary id now holds it, unless it was disabled.
        Ok(Self::primary_factor(store.as_ref(), primary)
            .await?
            .and_then(Factor::usable))
    }

    async fn primary_factor(
        store: &dyn OtpStore,
        primary: AccountId,
    ) -> Result<Option<Factor>, TotpError> {
        Ok(store
            .totp_secret(primary)
            .await?
            .map(|(sealed, confirmed)| Factor { sealed, confirmed }))
    }

    /// Starts enrollment for `subject`: a new secret (replacing an unconfirmed one), its
    /// key URI labelled `label` (what the app shows, e.g. an email), and recovery codes.
    /// The factor works only after [`TotpService::confirm`].
    ///
    /// # Errors
    /// [`TotpError::InvalidRequest`] for an unusable subject, tenant or label;
    /// [`TotpError::AlreadyEnrolled`] if a confirmed factor exists; store or randomness
    /// failures.
    pub async fn enroll(
        &self,
        tenant: Option<&str>,
        subject: &str,
        label: &str,
    ) -> Result<Enrollment, TotpError> {
        check_names(tenant, subject)?;
        if label.is_empty() || label.len() > crate::MAX_LABEL_BYTES || label.contains(':') {
            return Err(TotpError::InvalidRequest(
                "the label must be 1-256 bytes without ':'",
            ));
        }
        let account = Self::subject_name(tenant, subject);
        let id = self.otp.keys().account_id(&account);
        let existing = self.factor(id, &account).await?;
        if existing.is_some_and(|f| f.confirmed) {
            return Err(TotpError::AlreadyEnrolled);
        }
        let secret = TotpSecret::generate().map_err(|_| TotpError::Random)?;
        let sealed = self
            .keys
            .seal_for(&SealingLabel::new(tenant, subject).parts(), &secret)
            .map_err(|_| TotpError::Random)?;
        let mut recovery_codes = Vec::with_capacity(RECOVERY_CODES);
        let mut recovery = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let code = recovery_code().map_err(|_| TotpError::Random)?;
            recovery.push(
                self.otp
                    .keys()
                    .recovery_digest(id, &normalize_recovery(&code)),
            );
            recovery_codes.push(SecretString::from(code));
        }
        // Confirmed since the check above (a confirm racing this enrollment): keep it.
        let written = self
            .otp
            .inner
            .store
            .put_totp_factor(
                id,
                TotpFactor {
                    sealed_secret: sealed.as_bytes().to_vec(),
                    confirmed: false,
                    last_step: None,
                    recovery,
                },
                FactorWrite::UnlessConfirmed,
            )
            .await?;
        if !written {
            return Err(TotpError::AlreadyEnrolled);
        }
        info!("authenticator enrollment started");
        Ok(Enrollment {
            uri: SecretString::from(key_uri(&self.settings, label, &secret)),
            secret_base32: SecretString::from(base32(secret.expose())),
            recovery_codes,
        })
    }

    /// Activates an enrolled factor with a first correct code.
    ///
    /// # Errors
    /// [`TotpError::InvalidRequest`] for an unusable subject or tenant; store failures; a
    /// secret that does not open.
    pub async fn confirm(
        &self,
        tenant: Option<&str>,
        subject: &str,
        code: &str,
    ) -> Result<TotpOutcome, TotpError> {
        self.check(tenant, subject, code, true).await
    }

    /// Checks a code of a confirmed factor. A code's time step is accepted once.
    ///
    /// # Errors
    /// [`TotpError::InvalidRequest`] for an unusable subject or tenant; store failures; a
    /// secret that does not open.
    pub async fn verify(
        &self,
        tenant: Option<&str>,
        subject: &str,
        code: &str,
    ) -> Result<TotpOutcome, TotpError> {
        self.check(tenant, subject, code, false).await
    }

    async fn check(
        &self,
        tenant: Option<&str>,
        subject: &str,
        code: &str,
        confirming: bool,
    ) -> Result<TotpOutcome, TotpError> {
        let inner = &self.otp.inner;
        let now = inner.clock.now();
        let (id, factor) = match self.admit(tenant, subject, now).await? {
            Ok(found) => found,
            Err(limited) => return Ok(limited),
        };
        let Some(factor) = factor.filter(|f| f.confirmed != confirming) else {
            return Ok(TotpOutcome::NotEnrolled);
        };
        let label = SealingLabel::new(tenant, subject);
        let sealed = SealedTotpSecret::from_bytes(factor.sealed);
        let (secret, stale) = self
            .keys
            .open_for(&label.parts(), &sealed)
            .ok_or(TotpError::Unreadable)?;
        let Some(step) = self
            .settings
            .matching_step(secret.expose(), code, self.now_secs())
        else {
            return self.failed(id, now).await;
        };
        let decision = inner
            .store
            .accept_totp_step(id, step, inner.failure_cap, now)
            .await?;
        let outcome = match decision {
            StepDecision::Accepted => TotpOutcome::Verified,
            StepDecision::Replayed => TotpOutcome::AlreadyUsed,
            StepDecision::AccountLocked => TotpOutcome::AccountLocked,
            _ => TotpOutcome::NotEnrolled,
        };
        if outcome == TotpOutcome::Verified && (confirming || stale) {
            // Confirm, and seal again under the primary key after a rotation: one atomic
            // update that leaves the last step and recovery codes alone, and changes
            // nothing if the factor was re-enrolled or disabled meanwhile.
            let resealed = if stale {
                let sealed = self.keys.seal_for(&label.parts(), &secret);
                Some(sealed.map_err(|_| TotpError::Random)?.as_bytes().to_vec())
            } else {
                None
            };
            let updated = inner
                .store
                .update_totp_factor(id, sealed.as_bytes(), confirming, resealed)
                .await?;
            if confirming && !updated {
                // The secret this code belongs to was replaced: it confirms nothing.
                return Ok(TotpOutcome::NotEnrolled);
            }
        }
        Ok(outcome)
    }

    /// Checks a recovery code of a confirmed factor; each works once.
    ///
    /// # Errors
    /// [`TotpError::InvalidRequest`] for an unusable subject or tenant; store failures.
    pub async fn verify_recovery(
        &self,
        tenant: Option<&str>,
        subject: &str,
        code: &str,
    ) -> Result<TotpOutcome, TotpError> {
        let inner = &self.otp.inner;
        let now = inner.clock.now();
        let (id, factor) = match self.admit(tenant, subject, now).await? {
            Ok(found) => found,
            Err(limited) => return Ok(limited),
        };
        if !factor.is_some_and(|f| f.confirmed) {
            return Ok(TotpOutcome::NotEnrolled);
        }
        let account = Self::subject_name(tenant, subject);
        let digests = self
            .otp
            .keys()
            .recovery_digests(&account, &normalize_recovery(code));
        match inner
            .store
            .use_recovery_code(id, &digests, inner.failure_cap, now)
            .await?
        {
            StepDecision::Accepted => Ok(TotpOutcome::Verified),
            StepDecision::AccountLocked => Ok(TotpOutcome::AccountLocked),
            StepDecision::NotEnrolled => Ok(TotpOutcome::NotEnrolled),
            _ => self.failed(id, now).await,
        }
    }

    /// Removes the subject's factor (e.g. after the user proved themselves another way).
    ///
    /// While the key ring holds older keys (a rotation), it leaves a marker with no secret
    /// under the current key's id ([`TotpFactor::disabled`]) rather than nothing: a check
    /// that started before and is moving the factor from an older key's id then finds the
    /// marker and does not write, so the factor does not come back. A new enrollment
    /// replaces the marker.
    ///
    /// # Errors
    /// [`TotpError::InvalidRequest`] for an unusable subject or tenant; store failures.
    pub async fn disable(&self, tenant: Option<&str>, subject: &str) -> Result<(), TotpError> {
        check_names(tenant, subject)?;
        let account = Self::subject_name(tenant, subject);
        let store = &self.otp.inner.store;
        let ids = self.otp.keys().account_ids(&account);
        let Some((primary, older)) = ids.split_first() else {
            return Ok(());
        };
        if older.is_empty() {
            // One key: no factor can be on its way from an older id.
            store.remove_totp_factor(*primary).await?;
        } else {
            // The marker first, then the older ids: a move that read an older id before
            // its removal meets the marker when it writes.
            store
                .put_totp_factor(*primary, TotpFactor::disabled(), FactorWrite::Replace)
                .await?;
            for id in older {
                store.remove_totp_factor(*id).await?;
            }
        }
        info!("authenticator factor disabled");
        Ok(())
    }

    /// Counts a wrong code against the account: `Mismatch`, or `AccountLocked` once the
    /// count reaches the cap.
    async fn failed(
        &self,
        id: AccountId,
        now: crate::clock::Timestamp,
    ) -> Result<TotpOutcome, TotpError> {
        let inner = &self.otp.inner;
        let count = inner
            .store
            .count_failure(id, inner.failure_cap, now)
            .await?;
        Ok(if count >= inner.failure_cap.max_consecutive.get() {
            TotpOutcome::AccountLocked
        } else {
            TotpOutcome::Mismatch
        })
    }

    /// What every check starts with: the subject's attempt limit, before any lookup (a
    /// flood of guesses costs no factor read), then its factor. `Err` is the `Limited`
    /// outcome to answer at once.
    async fn admit(
        &self,
        tenant: Option<&str>,
        subject: &str,
        now: crate::clock::Timestamp,
    ) -> Result<Result<(AccountId, Option<Factor>), TotpOutcome>, TotpError> {
        check_names(tenant, subject)?;
        let account = Self::subject_name(tenant, subject);
        let id = self.otp.keys().account_id(&account);
        if let Some(limited) = self.limit(id, now).await? {
            return Ok(Err(limited));
        }
        Ok(Ok((id, self.factor(id, &account).await?)))
    }

    async fn limit(
        &self,
        id: AccountId,
        now: crate::clock::Timestamp,
    ) -> Result<Option<TotpOutcome>, TotpError> {
        let limit = [Limit::new(LimitKey::totp_attempts(id), self.attempts)];
        Ok(match self.otp.inner.store.throttle(&limit, now).await? {
            Admission::Allowed => None,
            Admission::Limited { retry_after, .. } => Some(TotpOutcome::Limited { retry_after }),
        })
    }
}

/// A subject of 1 to [`MAX_LABEL_BYTES`](crate::MAX_LABEL_BYTES) bytes, and a tenant
/// no longer than that: the limits SMS challenges take too.
fn check_names(tenant: Option<&str>, subject: &str) -> Result<(), TotpError> {
    if subject.is_empty() || subject.len() > crate::MAX_LABEL_BYTES {
        return Err(TotpError::InvalidRequest("the subject must be 1-256 bytes"));
    }
    if tenant.is_some_and(|t| t.len() > crate::MAX_LABEL_BYTES) {
        return Err(TotpError::InvalidRequest(
            "the tenant must be at most 256 bytes",
        ));
    }
    Ok(())
}

/// What a check needs of a stored factor.
struct Factor {
    sealed: Vec<u8>,
    confirmed: bool,
}

impl Factor {
    /// `None` for a disable's marker (no secret).
    fn usable(self) -> Option<Self> {
        (!self.sealed.is_empty()).then_some(self)
    }
}

/// Ten symbols from the unambiguous alphabet, shown as `xxxxx-xxxxx`.
fn recovery_code() -> Result<String, crate::RandomError> {
    let mut bytes = [0u8; RECOVERY_CHARS];
    crate::random::fill(&mut bytes)?;
    let symbols: String = bytes
        .iter()
        .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(format!("{}-{}", &symbols[..5], &symbols[5..]))
}

/// A typed recovery code as stored: lowercase, without spaces or hyphens, with the
/// letters people confuse for digits read as those digits.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect()
}

/// What a sealed secret is bound to: the tenant and the subject (a secret copied into
/// another user's record, or another tenant's, does not open). The tenant's length goes
/// first, so `("ab", "c")` and `("a", "bc")` differ.
struct SealingLabel<'a> {
    tenant_len: [u8; 8],
    tenant: &'a str,
    subject: &'a str,
}

impl<'a> SealingLabel<'a> {
    fn new(tenant: Option<&'a str>, subject: &'a str) -> Self {
        let tenant = tenant.unwrap_or_default();
        Self {
            tenant_len: (tenant.len() as u64).to_be_bytes(),
            tenant,
            subject,
        }
    }

    fn parts(&self) -> [&[u8]; 3] {
        [
            &self.tenant_len,
            self.tenant.as_bytes(),
            self.subject.as_bytes(),
        ]
    }
}
