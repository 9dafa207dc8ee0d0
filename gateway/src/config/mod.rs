//! The binary's TOML configuration, one file per concern, and how it becomes a running
//! [`Gateway`](crate::Gateway) ([`Config::build`], in `build.rs`).
//!
//! Secrets never sit in the file: it names the environment variables that hold them
//! (`secret_env`, `hmac_key_env`), and provider adapters read their own variables
//! (`TWILIO_*`, `NTT_CPAAS_*`, `SMSLINK_*`). See `examples/gateway.toml`.

mod build;
#[cfg_attr(not(feature = "console"), allow(unused_imports))]
mod console;
mod database;
mod jwt;
mod limits;
mod policy;
mod providers;
mod server;
mod store;
mod surfaces;
mod totp;

use std::net::SocketAddr;

use serde::Deserialize;

use crate::telemetry::LogFormat;

pub use build::Built;
pub use console::{ConsoleConfig, SsoConfig};
pub use database::DatabaseConfig;
pub use jwt::JwtConfig;
pub use limits::{BudgetConfig, LimitsConfig, SafeListConfig, parse_duration};
pub use policy::PolicyConfig;
pub use providers::{Chains, ProviderConfig, RoutingConfig};
pub use server::ServerConfig;
pub use store::{StoreConfig, StoreKind};
pub use surfaces::{
    BearerConfig, CallbacksConfig, OktaAuthKind, OktaConfig, RelayConfig, TokenConfig,
    TwilioCallbacksConfig,
};
pub use totp::TotpConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Log output (`text` or `json`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Region of numbers given without `+` (ISO 3166, e.g. `US`).
    pub default_region: Option<String>,
    /// Environment variable holding the HMAC key (base64, 32 bytes or more). Required
    /// with a Redis store, so every instance fingerprints numbers alike.
    #[serde(default = "default_hmac_env")]
    pub hmac_key_env: String,
    /// HTTP limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where challenges, limits and hook dedupe live.
    #[serde(default)]
    pub store: StoreConfig,
    /// Providers, by kind; none means the stub (nothing is delivered).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Provider chains per country, prefix and channel.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Destination policy beyond the defaults (premium-rate, VoIP and no-country numbers
    /// are always refused).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Send limits (`"5/10m"`, `"30s"`, `"off"`); unset ones keep the library defaults.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What relayed texts (Okta, Auth0, `/v1/messages`) may say.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Okta's telephony inline hook.
    pub okta: Option<OktaConfig>,
    /// Auth0 Actions (`POST /hooks/auth0/phone-message`).
    pub auth0: Option<BearerConfig>,
    /// The `/v1` API: messages and challenges.
    pub api: Option<BearerConfig>,
    /// Delivery-receipt callbacks from providers.
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    /// The SQL database of API keys (SQLite file or PostgreSQL). With it, `/v1` and the
    /// Auth0 hook accept API keys and personal tokens.
    pub database: Option<DatabaseConfig>,
    /// Prices per SMS segment and per call, by provider and country: the audit trail
    /// records each send's estimated cost.
    pub prices: Option<phone_otp::PriceTable>,
    /// Authorization servers whose OAuth 2.0 access tokens (RFC 9068 JWTs) callers may
    /// present instead of an API key.
    #[serde(default)]
    pub jwt: Vec<JwtConfig>,
    /// Authenticator-app codes on `/v1/totp`.
    pub totp: Option<TotpConfig>,
    /// The operator console (needs `[database]`).
    pub console: Option<ConsoleConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_hmac_env() -> String {
    "PHONE_OTP_HMAC_KEY".to_owned()
}

/// Why the configuration cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML for this schema.
    #[error("invalid config file: {0}")]
    Parse(String),
    /// Environment variables the configuration needs are not set (all of them listed).
    #[error("environment variables not set: {}", .0.join(", "))]
    MissingEnv(Vec<String>),
    /// A value is malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which setting.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be reached.
    #[error("store unavailable")]
    Store(#[source] phone_otp::StoreError),
    /// The database could not be opened or migrated.
    #[error("database unavailable")]
    Database(#[source] crate::db::DbError),
    /// The gateway refused the settings.
    #[error("invalid gateway settings")]
    Gateway(#[source] crate::app::BuildError),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and field.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// The calling systems the configuration itself defines: JWT clients mapped to
    /// systems and the static tokens' tenants. No API key may be owned by one of them.
    pub fn reserved_systems(&self) -> Vec<String> {
        let mut reserved: Vec<String> = self
            .jwt
            .iter()
            .flat_map(|jwt| jwt.clients.values().cloned())
            .collect();
        if let Some(okta) = &self.okta {
            reserved.push(okta.tenant.clone().unwrap_or_else(|| "okta".to_owned()));
        }
        if let Some(auth0) = &self.auth0 {
            reserved.push(auth0.tenant.clone().unwrap_or_else(|| "auth0".to_owned()));
        }
        if let Some(api) = &self.api {
            reserved.push(api.tenant.clone().unwrap_or_else(|| "api".to_owned()));
        }
        reserved
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn prices_load_from_toml() {
        let config = Config::from_toml(
            "[prices]\ncurrency = \"USD\"\n[[prices.rates]]\nprovider = \"*\"\ncountry = \"*\"\nsms = 0.05\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let prices = config
            .prices
            .unwrap_or_else(|| phone_otp::PriceTable::new("none"));
        assert_eq!(
            prices.cost("twilio", Some("JP"), phone_otp::Channel::Sms, 2),
            Some(phone_otp::Micros(100_000))
        );
        let negative = Config::from_toml(
            "[prices]\ncurrency = \"USD\"\n[[prices.rates]]\nprovider = \"*\"\ncountry = \"*\"\nsms = -1.0\n",
        );
        assert!(negative.is_err());
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let error = Config::from_toml("listen = \"127.0.0.1:1\"\nlisten_port = 3\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("listen_port"), "{error}");
    }
}
