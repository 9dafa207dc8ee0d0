//! The wiring: a [`Config`] becomes a running [`Gateway`]. Secrets are read here, all at
//! once (every missing variable is named in one error); each section builds its own part.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use phone_otp::{HmacKey, KeyRing, OtpService};
use secrecy::{SecretSlice, SecretString};
use tracing::warn;

use super::providers::missing_provider_env;
use super::{Config, ConfigError, DatabaseConfig, OktaAuthKind, StoreKind, invalid};
use crate::app::Gateway;
use crate::auth::cidr::Cidr;
use crate::db::Db;
use crate::surfaces::{BearerAccess, OktaHook, TwilioCallbacks};

/// What the binary runs.
#[derive(Debug)]
pub struct Built {
    /// The gateway.
    pub gateway: Gateway,
    /// Whether it delivers through the stub only (nothing reaches a phone).
    pub stub_only: bool,
}

impl Config {
    /// Builds the gateway, reading secrets through `env` (the process environment in
    /// the binary). Every missing variable is reported at once.
    ///
    /// # Errors
    /// Missing variables, malformed values, an unreachable store, or an API key owned by
    /// a system the configuration defines ([`Config::reserved_systems`]).
    pub async fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Built, ConfigError> {
        let mut missing = Vec::new();
        let mut need = |name: &str| {
            let value = env(name).filter(|v| !v.is_empty());
            if value.is_none() {
                missing.push(name.to_owned());
            }
            value
        };
        let okta_secret = match &self.okta {
            Some(okta) if okta.auth == OktaAuthKind::Header => match &okta.secret_env {
                Some(name) => need(name),
                None => {
                    return Err(invalid(
                        "okta.secret_env",
                        "required with auth = \"header\"",
                    ));
                }
            },
            _ => None,
        };
        let auth0_token = self.auth0.as_ref().and_then(|c| need(&c.token_env));
        let api_token = self.api.as_ref().and_then(|c| need(&c.token_env));
        let twilio_token = self
            .callbacks
            .twilio
            .as_ref()
            .and_then(|c| need(c.auth_token_env.as_deref().unwrap_or("TWILIO_AUTH_TOKEN")));
        let database_url = match &self.database {
            Some(DatabaseConfig { url: Some(url), .. }) => Some(url.clone()),
            Some(DatabaseConfig {
                url_env: Some(name),
                ..
            }) => need(name),
            Some(_) => {
                return Err(invalid("database", "set url or url_env"));
            }
            None => None,
        };
        let ntt_token = self
            .callbacks
            .ntt_cpaas
            .as_ref()
            .and_then(|c| need(&c.token_env));
        let totp_keys = self.totp.as_ref().and_then(|c| need(&c.keys_env));
        let console_key = self
            .console
            .as_ref()
            .and_then(|c| c.session_key_env.as_deref())
            .and_then(&mut need);
        let console_sso_secret = self
            .console
            .as_ref()
            .and_then(|c| c.sso.as_ref())
            .and_then(|sso| sso.client_secret_env.as_deref())
            .and_then(&mut need);
        let redis_url = match self.store.kind {
            StoreKind::Redis => need(self.store.url_env.as_deref().unwrap_or("REDIS_URL")),
            StoreKind::Memory => None,
        };
        let hmac = env(&self.hmac_key_env).filter(|v| !v.is_empty());
        if hmac.is_none() && self.store.kind == StoreKind::Redis {
            missing.push(self.hmac_key_env.clone());
        }
        for provider in &self.providers {
            missing.extend(missing_provider_env(&provider.kind, env));
        }
        if !missing.is_empty() {
            return Err(ConfigError::MissingEnv(missing));
        }

        let key = match hmac {
            Some(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| invalid(&self.hmac_key_env, "not base64"))?;
                HmacKey::new(1, &SecretSlice::from(bytes))
                    .map_err(|e| invalid(&self.hmac_key_env, e.to_string()))?
            }
            None => {
                warn!(
                    variable = %self.hmac_key_env,
                    "no HMAC key configured: using a random one (fine for one instance with the memory store)"
                );
                HmacKey::generate(1).map_err(|e| invalid(&self.hmac_key_env, e.to_string()))?
            }
        };

        // One store for challenges, limits and the providers' budgets.
        let store: Arc<dyn phone_otp::OtpStore> = match redis_url {
            Some(url) => Arc::new(self.store.redis(&url).await?),
            None => Arc::new(phone_otp::MemoryStore::new()),
        };
        let (router, stub_only) = self.router(&store)?;
        let otp = OtpService::builder()
            .key_ring(KeyRing::new(key))
            .provider(router.clone())
            .limits(self.limits_with_budgets()?)
            .destination_policy(self.policy.to_policy()?)
            .relay_texts(self.relay.policy()?)
            .store(store);
        let otp = otp.build().map_err(|e| invalid("service", e.to_string()))?;

        let mut gateway = Gateway::builder(otp.clone())
            .provider_router(router)
            .body_limit(self.server.body_limit_bytes)
            .auth_failures_per_minute(self.server.auth_failures_per_minute)
            .request_timeout(Duration::from_millis(self.server.request_timeout_ms));
        if let Some(region) = &self.default_region {
            gateway = gateway.default_region(region);
        }
        let okta_hook = match (&self.okta, okta_secret) {
            (Some(okta), Some(secret)) => Some((
                okta,
                OktaHook::new(&okta.header, SecretString::from(secret)),
            )),
            (Some(okta), None) if okta.auth == OktaAuthKind::OAuth => {
                Some((okta, OktaHook::oauth()))
            }
            _ => None,
        };
        for (index, issuer) in self.jwt.iter().enumerate() {
            gateway = gateway.jwt(issuer.to_issuer(index)?);
        }
        if let Some((okta, mut hook)) = okta_hook {
            if let Some(ms) = okta.deadline_ms {
                hook = hook.deadline(Duration::from_millis(ms));
            }
            if let Some(tenant) = &okta.tenant {
                hook = hook.tenant(tenant.clone());
            }
            if okta.dry_run {
                hook = match &okta.dry_run_numbers {
                    Some(numbers) => hook.dry_run_for(numbers),
                    None => hook.dry_run_for(crate::surfaces::OKTA_PREVIEW_NUMBERS),
                };
            } else if okta.dry_run_numbers.is_some() {
                return Err(invalid(
                    "okta.dry_run_numbers",
                    "set dry_run = true to use them",
                ));
            }
            gateway = gateway.okta(hook);
        }
        if let (Some(config), Some(token)) = (&self.auth0, auth0_token) {
            if config.scopes.is_some() {
                return Err(invalid(
                    "auth0.scopes",
                    "Auth0's token calls its hook only: remove scopes",
                ));
            }
            let tenant = config.tenant.clone().unwrap_or_else(|| "auth0".to_owned());
            gateway = gateway
                .auth0(BearerAccess::new(SecretString::from(token), tenant))
                .auth0_notices(config.notices.unwrap_or(true));
        }
        if let Some(url) = database_url {
            let db = Db::connect(&url).await.map_err(ConfigError::Database)?;
            let reserved = self.reserved_systems();
            let keys = db.keys().await.map_err(ConfigError::Database)?;
            let taken = keys
                .iter()
                .find(|key| key.revoked_at.is_none() && reserved.contains(&key.owner));
            if let Some(taken) = taken {
                return Err(invalid(
                    "jwt.clients",
                    format!(
                        "system {:?} is both configured here and the owner of API key {}: \
                         they would share one tenant; rename one",
                        taken.owner, taken.id
                    ),
                ));
            }
            gateway = gateway.keys(db);
        }
        let proxies = self
            .server
            .trusted_proxies
            .iter()
            .map(|block| block.parse())
            .collect::<Result<Vec<Cidr>, _>>()
            .map_err(|e| invalid("server.trusted_proxies", e.to_string()))?;
        gateway = gateway
            .trusted_proxies(proxies)
            .forwarded_header(self.server.forwarded_header);
        if let Some(prices) = &self.prices {
            gateway = gateway.prices(prices.clone());
        }
        if let (Some(config), Some(keys)) = (&self.totp, totp_keys) {
            gateway = gateway.totp(config.service(&otp, &keys)?);
        }
        if let (Some(config), Some(token)) = (&self.callbacks.twilio, twilio_token) {
            gateway = gateway.twilio_callbacks(TwilioCallbacks::new(
                config.public_url.clone(),
                SecretString::from(token),
            ));
        }
        if let Some(config) = &self.console {
            #[cfg(feature = "console")]
            {
                gateway = gateway.console(self.console_settings(
                    config,
                    console_key,
                    console_sso_secret,
                )?);
            }
            #[cfg(not(feature = "console"))]
            {
                let _ = (config, console_key, console_sso_secret);
                return Err(invalid(
                    "console",
                    "this build has no console (cargo feature `console`)",
                ));
            }
        }
        if let Some(token) = ntt_token {
            gateway = gateway.ntt_cpaas_callbacks(SecretString::from(token));
        }
        if let (Some(config), Some(token)) = (&self.api, api_token) {
            if config.notices.is_some() {
                return Err(invalid("api.notices", "notices are an [auth0] setting"));
            }
            let tenant = config.tenant.clone().unwrap_or_else(|| "api".to_owned());
            let access = BearerAccess::new(SecretString::from(token), tenant);
            gateway = gateway.api(access.scopes(config.api_scopes()?));
        }
        Ok(Built {
            gateway: gateway.build().map_err(ConfigError::Gateway)?,
            stub_only,
        })
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use crate::config::Config;

    #[tokio::test]
    async fn every_missing_variable_is_named_at_once() {
        let config =
            Config::from_toml("[store]\nkind = \"redis\"\n[okta]\nsecret_env = \"OKTA_SECRET\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let error = config.build(&|_| None).await.err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("environment variables not set: OKTA_SECRET, REDIS_URL, PHONE_OTP_HMAC_KEY")
        );
        let config = Config::from_toml(
            "[[providers]]\nkind = \"twilio\"\n[[providers]]\nkind = \"ntt-cpaas\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let only_sid = |name: &str| (name == "NTT_CPAAS_SENDER").then(|| "s".to_owned());
        let error = config.build(&only_sid).await.err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "environment variables not set: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, \
                 TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, NTT_CPAAS_BASE_URL, \
                 NTT_CPAAS_API_KEY"
            )
        );
    }

    #[tokio::test]
    async fn jwt_issuers_and_okta_oauth_are_checked() {
        let build = |toml: &'static str| async move {
            let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
            config.build(&|_| None).await.err().map(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    source = cause.source();
                }
                text
            })
        };
        let issuer = "[[jwt]]\nissuer = \"https://idp.example.com/\"\naudience = \"api://otp\"\n";
        let hmac = format!(
            "{issuer}jwks_url = \"https://idp.example.com/keys\"\nalgorithms = [\"HS256\"]\n"
        );
        let error = build(Box::leak(hmac.into_boxed_str()))
            .await
            .unwrap_or_default();
        assert!(
            error.contains("jwt[0].algorithms") && error.contains("HS256"),
            "{error}"
        );
        let plain = format!("{issuer}jwks_url = \"http://idp.example.com/keys\"\n");
        let error = build(Box::leak(plain.into_boxed_str()))
            .await
            .unwrap_or_default();
        assert!(error.contains("jwks_url must be https"), "{error}");
        let error = build("[okta]\nauth = \"oauth\"\n")
            .await
            .unwrap_or_default();
        assert!(error.contains("no jwt issuer"), "{error}");
        let error = build("[okta]\nauth = \"header\"\n")
            .await
            .unwrap_or_default();
        assert!(error.contains("okta.secret_env"), "{error}");
        let ok = format!(
            "{issuer}jwks_url = \"https://idp.example.com/keys\"\n[okta]\nauth = \"oauth\"\n"
        );
        assert_eq!(build(Box::leak(ok.into_boxed_str())).await, None);
    }

    #[tokio::test]
    async fn the_static_api_token_has_only_the_scopes_it_is_given() {
        let env = |name: &str| (name == "TOKEN").then(|| "a-static-token-for-tests".to_owned());
        let build = |toml: &'static str| async move {
            let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
            config.build(&env).await.err().map(|e| e.to_string())
        };
        let api = "[api]\ntoken_env = \"TOKEN\"\n";
        let error = build(api).await.unwrap_or_default();
        assert!(
            error.contains("api.scopes") && error.contains("required"),
            "{error}"
        );
        let error = build("[api]\ntoken_env = \"TOKEN\"\nscopes = []\n")
            .await
            .unwrap_or_default();
        assert!(error.contains("at least one"), "{error}");
        let error = build("[api]\ntoken_env = \"TOKEN\"\nscopes = [\"usage:everything\"]\n")
            .await
            .unwrap_or_default();
        assert!(
            error.contains("\"usage:everything\" is not a scope"),
            "{error}"
        );
        let error = build("[auth0]\ntoken_env = \"TOKEN\"\nscopes = [\"usage:read\"]\n")
            .await
            .unwrap_or_default();
        assert!(error.contains("auth0.scopes"), "{error}");
        let ok = "[api]\ntoken_env = \"TOKEN\"\nscopes = [\"messages:send\", \"usage:read:all\"]\n";
        assert_eq!(build(ok).await, None);
    }
}
