//! Authenticator-app codes (TOTP, RFC 6238): the non-restricted factor NIST SP 800-63B asks
//! a service to offer beside SMS. This module holds the parts that need no store: code
//! computation and the time window ([`TotpSettings`]), secrets and their encryption at rest
//! ([`TotpSecret`], [`TotpKeys`]), and the `otpauth://` URI authenticator apps read
//! ([`key_uri`]).
//!
//! Codes come from `totp-lite`. A code is checked against every step of the window and
//! compared in constant time, so timing says neither whether nor where it matched.

#[cfg(feature = "totp-qr")]
mod qr;
mod secret;
mod uri;

use std::time::Duration;

use subtle::ConstantTimeEq;

pub use crate::otp::{Enrollment, RECOVERY_CODES, TotpError, TotpOutcome, TotpService};
#[cfg(feature = "totp-qr")]
pub use qr::qr_svg;
pub use secret::{SealedTotpSecret, TOTP_SECRET_BYTES, TotpKeyError, TotpKeys, TotpSecret};
pub use uri::{base32, base32_decode, key_uri};

/// The hash behind the codes. Authenticator apps all read SHA-1; some ignore the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1 (the default, for app compatibility).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name in a key URI (`SHA1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// Most steps a window may reach back or forward.
pub const MAX_TOTP_WINDOW: u8 = 2;

/// How codes are made and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSettings {
    /// Shown in the app above the account (and the URI's label prefix).
    pub issuer: String,
    /// The hash (default SHA-1).
    pub algorithm: TotpAlgorithm,
    /// 6 (default) or 8.
    pub digits: u8,
    /// The time step (default 30 s).
    pub period: Duration,
    /// Steps accepted before and after the current one, for clock drift and typing time:
    /// default 1, at most [`MAX_TOTP_WINDOW`].
    pub window: u8,
}

impl TotpSettings {
    /// SHA-1, 6 digits, 30 s, one step either side: what every authenticator app reads.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: Duration::from_secs(30),
            window: 1,
        }
    }

    /// Settings a verifier may use: 6 or 8 digits, a period of 1 s or more, a window of
    /// at most [`MAX_TOTP_WINDOW`].
    pub fn is_valid(&self) -> bool {
        matches!(self.digits, 6 | 8)
            && self.period.as_secs() >= 1
            && self.window <= MAX_TOTP_WINDOW
            && !self.issuer.is_empty()
            && !self.issuer.contains(':')
    }

    fn period_secs(&self) -> u64 {
        self.period.as_secs().max(1)
    }

    /// The time step `unix_secs` falls in.
    pub fn step_at(&self, unix_secs: u64) -> u64 {
        unix_secs / self.period_secs()
    }

    /// The code of step `step`.
    pub fn code_for_step(&self, secret: &[u8], step: u64) -> String {
        let (period, digits) = (self.period_secs(), u32::from(self.digits));
        // totp-lite takes a time and divides it by the period itself.
        let time = step.saturating_mul(period);
        match self.algorithm {
            TotpAlgorithm::Sha1 => {
                totp_lite::totp_custom::<totp_lite::Sha1>(period, digits, secret, time)
            }
            TotpAlgorithm::Sha256 => {
                totp_lite::totp_custom::<totp_lite::Sha256>(period, digits, secret, time)
            }
            TotpAlgorithm::Sha512 => {
                totp_lite::totp_custom::<totp_lite::Sha512>(period, digits, secret, time)
            }
        }
    }

    /// The code at `unix_secs`.
    pub fn code_at(&self, secret: &[u8], unix_secs: u64) -> String {
        self.code_for_step(secret, self.step_at(unix_secs))
    }

    /// The step of the window around `unix_secs` whose code is `code`, if any. Every step
    /// of the window is computed and compared in constant time (no early exit). The
    /// caller must still refuse a step already used (replay).
    pub fn matching_step(&self, secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != usize::from(self.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = self.step_at(unix_secs);
        let window = u64::from(self.window.min(MAX_TOTP_WINDOW));
        let mut found = None;
        for step in now.saturating_sub(window)..=now.saturating_add(window) {
            let candidate = self.code_for_step(secret, step);
            let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
            // Keep the first match without branching on secrets more than once per step.
            if equal && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges() {
        let settings = TotpSettings::new("Example");
        let secret = b"12345678901234567890";
        let now = 1_700_000_015; // 15 s into a step
        let code_now = settings.code_at(secret, now);
        let step = settings.step_at(now);
        assert_eq!(settings.matching_step(secret, &code_now, now), Some(step));
        // One step either side is accepted; two are not.
        let before = settings.code_for_step(secret, step - 1);
        let after = settings.code_for_step(secret, step + 1);
        let too_old = settings.code_for_step(secret, step - 2);
        assert_eq!(settings.matching_step(secret, &before, now), Some(step - 1));
        assert_eq!(settings.matching_step(secret, &after, now), Some(step + 1));
        assert_eq!(settings.matching_step(secret, &too_old, now), None);
        // The last second of the next step still takes the previous code; the one after not.
        let edge = (step + 2) * 30 - 1;
        assert_eq!(settings.matching_step(secret, &code_now, edge), Some(step));
        assert_eq!(settings.matching_step(secret, &code_now, edge + 1), None);
        // Malformed input never matches.
        for bad in ["", "12345", "1234567", "12a456"] {
            assert_eq!(settings.matching_step(secret, bad, now), None);
        }
    }

    #[test]
    fn only_valid_settings_are_accepted() {
        let ok = TotpSettings::new("Example");
        assert!(ok.is_valid());
        assert!(
            !TotpSettings {
                digits: 7,
                ..ok.clone()
            }
            .is_valid()
        );
        assert!(
            !TotpSettings {
                window: 3,
                ..ok.clone()
            }
            .is_valid()
        );
        assert!(
            !TotpSettings {
                issuer: "a:b".into(),
                ..ok.clone()
            }
            .is_valid()
        );
        assert!(
            !TotpSettings {
                period: Duration::ZERO,
                ..ok
            }
            .is_valid()
        );
    }
}
