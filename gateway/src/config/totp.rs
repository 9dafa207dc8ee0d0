//! `[totp]`: authenticator-app codes on `/v1/totp`, and the keys that seal their secrets.

use std::num::NonZeroU32;

use base64::Engine as _;
use phone_otp::OtpService;
use phone_otp::totp::{TotpAlgorithm, TotpKeys, TotpService, TotpSettings};
use secrecy::SecretSlice;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[totp]`: authenticator-app codes (RFC 6238) on `/v1/totp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// What authenticator apps show above the code (e.g. the company name; no `:`).
    pub issuer: String,
    /// Environment variable holding the keys that seal secrets at rest: comma-separated
    /// `id:base64` pairs (32-byte keys, ids 0-255), the primary first, older ones after
    /// it until every secret was resealed; a bare base64 key is id 1.
    #[serde(default = "default_totp_keys_env")]
    pub keys_env: String,
    /// `SHA1` (default: every app reads it), `SHA256` or `SHA512`.
    pub algorithm: Option<String>,
    /// 6 (default) or 8.
    pub digits: Option<u8>,
    /// Steps accepted either side of now: 0-2, default 1.
    pub window: Option<u8>,
    /// Attempts per user a minute (default 5), besides the per-account failure cap.
    pub attempts_per_minute: Option<u32>,
}

fn default_totp_keys_env() -> String {
    "PHONE_OTP_TOTP_KEYS".to_owned()
}

impl TotpConfig {
    /// The factor service on `otp`, its keys read from `keys`.
    pub(super) fn service(&self, otp: &OtpService, keys: &str) -> Result<TotpService, ConfigError> {
        let mut settings = TotpSettings::new(self.issuer.clone());
        settings.algorithm = match self.algorithm.as_deref().map(str::to_ascii_uppercase) {
            None => TotpAlgorithm::Sha1,
            Some(name) if name == "SHA1" => TotpAlgorithm::Sha1,
            Some(name) if name == "SHA256" => TotpAlgorithm::Sha256,
            Some(name) if name == "SHA512" => TotpAlgorithm::Sha512,
            Some(_) => return Err(invalid("totp.algorithm", "SHA1, SHA256 or SHA512")),
        };
        settings.digits = self.digits.unwrap_or(6);
        settings.window = self.window.unwrap_or(1);
        let keys = parse_totp_keys(keys).map_err(|reason| invalid(&self.keys_env, reason))?;
        let mut totp = otp.totp(settings, keys).ok_or_else(|| {
            invalid(
                "totp",
                "issuer must be set without ':', digits 6 or 8, window at most 2",
            )
        })?;
        if let Some(per_minute) = self.attempts_per_minute {
            let per_minute = NonZeroU32::new(per_minute)
                .ok_or_else(|| invalid("totp.attempts_per_minute", "at least 1"))?;
            totp = totp.attempts(phone_otp::Quota::per_minute(per_minute));
        }
        Ok(totp)
    }
}

/// `id:base64,id:base64` (primary first), or one bare base64 key (id 1).
fn parse_totp_keys(text: &str) -> Result<TotpKeys, String> {
    let mut ring: Option<TotpKeys> = None;
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, encoded) = match entry.split_once(':') {
            Some((id, encoded)) => (
                id.parse::<u8>()
                    .map_err(|_| format!("key id {id:?} is not 0-255"))?,
                encoded,
            ),
            None => (1, entry),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| format!("key {id} is not base64"))?;
        let secret = SecretSlice::from(bytes);
        ring = Some(
            match ring {
                None => TotpKeys::new(id, &secret),
                Some(ring) => ring.with_older(id, &secret),
            }
            .map_err(|e| e.to_string())?,
        );
    }
    ring.ok_or_else(|| "no key".to_owned())
}
