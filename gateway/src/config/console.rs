//! `[console]`: the operator console (off unless the section is present).

use std::net::SocketAddr;

use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretString;
use serde::Deserialize;
use tracing::warn;

use super::{Config, ConfigError, invalid};

/// The operator console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console on its own address (an internal network) instead of beside the
    /// API on `listen`.
    pub listen: Option<SocketAddr>,
    /// Environment variable holding the session key (base64, 32 bytes or more), the same
    /// on every instance behind one address. Unset: a random key per process, so sessions
    /// end on restart and hold on one instance only.
    pub session_key_env: Option<String>,
    /// How long a sign-in lasts, in hours (default 8).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Single sign-on with the organisation's identity provider.
    pub sso: Option<SsoConfig>,
}

/// `[console.sso]`: OpenID Connect, authorization code with PKCE.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer (`https://example.okta.com/oauth2/default`).
    pub issuer: String,
    /// The console's client id at the provider.
    pub client_id: String,
    /// Environment variable holding the client secret (a confidential client); unset for
    /// a public client (PKCE alone).
    pub client_secret_env: Option<String>,
    /// Where the provider sends the browser back: `https://<console>/console/sso/callback`.
    pub redirect_url: String,
    /// The claim listing the user's groups or roles (default `groups`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim values that make an administrator.
    #[serde(default)]
    pub admin_values: Vec<String>,
    /// Claim values that make a viewer.
    #[serde(default)]
    pub viewer_values: Vec<String>,
}

fn default_roles_claim() -> String {
    "groups".to_owned()
}

fn default_session_hours() -> u64 {
    8
}

#[cfg(feature = "console")]
impl Config {
    /// The console's settings from `[console]`, with the secrets `build` read.
    pub(super) fn console_settings(
        &self,
        config: &super::ConsoleConfig,
        key: Option<String>,
        sso_secret: Option<String>,
    ) -> Result<crate::console::ConsoleSettings, ConfigError> {
        if self.database.is_none() {
            return Err(invalid("console", "the console needs [database]"));
        }
        if config.session_hours == 0 || config.session_hours > 24 * 30 {
            return Err(invalid("console.session_hours", "between 1 and 720"));
        }
        let mut settings = crate::console::ConsoleSettings::new()
            .session_ttl(Duration::from_secs(config.session_hours * 3600))
            .own_listener(config.listen.is_some());
        match (key, &config.session_key_env) {
            (Some(encoded), Some(name)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| invalid(name, "not base64"))?;
                settings = settings
                    .session_key(&bytes)
                    .map_err(|e| invalid(name, e.to_string()))?;
            }
            _ => warn!(
                "console.session_key_env is not set: sessions are signed with a random key, \
                 end on restart and hold on this instance only"
            ),
        }
        if let Some(sso) = &config.sso {
            let mut provider =
                crate::console::SsoSettings::new(&sso.issuer, &sso.client_id, &sso.redirect_url)
                    .map_err(|e| invalid("console.sso", e.to_string()))?
                    .roles(
                        &sso.roles_claim,
                        sso.admin_values.clone(),
                        sso.viewer_values.clone(),
                    );
            if let Some(secret) = sso_secret {
                provider = provider.client_secret(SecretString::from(secret));
            }
            settings = settings
                .sso(provider)
                .map_err(|e| invalid("console.sso", e.to_string()))?;
        }
        Ok(settings)
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use crate::config::Config;

    #[tokio::test]
    async fn the_console_needs_a_database_and_a_long_session_key() {
        let build = |toml: &'static str| async move {
            let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
            let env = |name: &str| match name {
                "SHORT" => Some("c2hvcnQ=".to_owned()),
                "LONG" => Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".to_owned()),
                _ => None,
            };
            config.build(&env).await.err().map(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    source = cause.source();
                }
                text
            })
        };
        let error = build("[console]\n").await.unwrap_or_default();
        assert!(
            error.contains("console") && error.contains("[database]"),
            "{error}"
        );
        let path =
            std::env::temp_dir().join(format!("potp-console-config-{}.db", std::process::id()));
        let db = format!(
            "[database]\nurl = \"sqlite://{}?mode=rwc\"\n",
            path.display()
        );
        let short = format!("{db}[console]\nsession_key_env = \"SHORT\"\n");
        let error = build(Box::leak(short.into_boxed_str()))
            .await
            .unwrap_or_default();
        assert!(
            error.contains("SHORT") && error.contains("32 bytes"),
            "{error}"
        );
        let unset = format!("{db}[console]\nsession_key_env = \"UNSET\"\n");
        let error = build(Box::leak(unset.into_boxed_str()))
            .await
            .unwrap_or_default();
        assert!(error.contains("UNSET"), "{error}");
        let hours = format!("{db}[console]\nsession_hours = 0\n");
        let error = build(Box::leak(hours.into_boxed_str()))
            .await
            .unwrap_or_default();
        assert!(error.contains("session_hours"), "{error}");
        let ok = format!("{db}[console]\nsession_key_env = \"LONG\"\n");
        assert_eq!(build(Box::leak(ok.into_boxed_str())).await, None);
    }
}
