//! The surfaces callers reach the gateway by: Okta's hook, the bearer-token surfaces
//! (Auth0 Actions, `/v1`), what relayed texts may say, and providers' receipt callbacks.

use phone_otp::RelayTextPolicy;
use serde::Deserialize;
use tracing::warn;

use super::{ConfigError, invalid};
use crate::auth::scope::{Scope, Scopes};

/// Okta's hook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// How Okta authenticates: `header` (the hook's `authScheme`, default) or `oauth`
    /// (a bearer access token with the `hooks:okta` scope from a `[[jwt]]` issuer).
    #[serde(default)]
    pub auth: OktaAuthKind,
    /// The `authScheme` key: the header Okta sends the secret in.
    #[serde(default = "default_okta_header")]
    pub header: String,
    /// Environment variable holding the header's value (with `Authorization`, include
    /// the scheme: `Basic dXNlcjpwYXNz`). Required with `auth = "header"`.
    pub secret_env: Option<String>,
    /// Delivery deadline (default 2500 ms, under Okta's 3 s).
    pub deadline_ms: Option<u64>,
    /// Tenant its sends are counted under (default `okta`).
    pub tenant: Option<String>,
    /// Answer Okta's console preview (its fictional numbers `+15555551212` and
    /// `9876543210`) with a `SUCCESSFUL` from provider `dry-run`, sending nothing
    /// (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// The numbers dry-run applies to, instead of Okta's two.
    pub dry_run_numbers: Option<Vec<String>>,
}

/// How Okta's hook authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OktaAuthKind {
    /// One header and its secret value.
    #[default]
    Header,
    /// An OAuth 2.0 access token.
    OAuth,
}

fn default_okta_header() -> String {
    "authorization".to_owned()
}

/// `[relay]`: the rules for texts a caller asks the gateway to relay with its code.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Host names (with their subdomains) a relayed text may name, e.g. your own domain;
    /// every other link or host name is refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Ignore callers' texts and send the gateway's own templates (per purpose and
    /// locale): only a code is ever relayed.
    #[serde(default)]
    pub templates_only: bool,
    /// Let relayed texts carry any link: a caller could then send phishing texts.
    #[serde(default)]
    pub danger_allow_links: bool,
}

impl RelayConfig {
    pub(super) fn policy(&self) -> Result<RelayTextPolicy, ConfigError> {
        if self.templates_only && self.danger_allow_links {
            return Err(invalid(
                "relay",
                "templates_only and danger_allow_links exclude each other",
            ));
        }
        let mut policy = self
            .allowed_hosts
            .iter()
            .fold(RelayTextPolicy::default(), |policy, host| {
                policy.allow_host(host.clone())
            });
        if self.templates_only {
            policy = policy.templates_only();
        }
        if self.danger_allow_links {
            warn!("relayed texts may carry any link ([relay] danger_allow_links)");
            policy = policy.danger_allow_links();
        }
        Ok(policy)
    }
}

/// A bearer-token surface (Auth0 Actions, the `/v1` API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerConfig {
    /// Environment variable holding the token callers send (16 characters or more).
    pub token_env: String,
    /// Tenant their sends are counted under (default `auth0`, or `api`).
    pub tenant: Option<String>,
    /// What the `[api]` token may call (required there: nothing is implied). Auth0's
    /// token calls its hook only and takes none.
    pub scopes: Option<Vec<String>>,
    /// `[auth0]` only: deliver Auth0's security notices (`blocked_account`,
    /// `change_password`, `password_breach`) in the gateway's own words (default true).
    pub notices: Option<bool>,
}

impl BearerConfig {
    /// The `[api]` token's scopes, each a known name.
    pub(super) fn api_scopes(&self) -> Result<Scopes, ConfigError> {
        let names = self.scopes.as_ref().ok_or_else(|| {
            invalid(
                "api.scopes",
                "required: name what the static token may call, e.g. [\"messages:send\", \"challenges:start\", \"challenges:verify\"]",
            )
        })?;
        let scopes = names.iter().try_fold(Scopes::default(), |set, name| {
            Scope::parse(name)
                .map(|scope| set.with(scope))
                .ok_or_else(|| invalid("api.scopes", format!("{name:?} is not a scope")))
        })?;
        if scopes.is_empty() {
            return Err(invalid("api.scopes", "name at least one scope"));
        }
        Ok(scopes)
    }
}

/// Delivery-receipt callbacks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Twilio status callbacks.
    pub twilio: Option<TwilioCallbacksConfig>,
    /// NTT CPaaS delivery reports.
    pub ntt_cpaas: Option<TokenConfig>,
}

/// Twilio status callbacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioCallbacksConfig {
    /// The URL Twilio calls, as configured in Twilio (the signature covers it).
    pub public_url: String,
    /// Environment variable holding the Auth Token (default `TWILIO_AUTH_TOKEN`).
    pub auth_token_env: Option<String>,
}

/// A callback that carries a shared token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Environment variable holding the token (16 characters or more).
    pub token_env: String,
}
