//! The binary's TOML configuration, and how it becomes a running [`Gateway`].
//!
//! Secrets never sit in the file: it names the environment variables that hold them
//! (`secret_env`, `hmac_key_env`), and provider adapters read their own variables
//! (`TWILIO_*`, `NTT_CPAAS_*`, `SMSLINK_*`). See `examples/gateway.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use phone_otp::totp::{TotpAlgorithm, TotpKeys, TotpService, TotpSettings};
use phone_otp::{
    Channel, DestinationPolicy, Failover, HmacKey, KeyRing, Limits, OtpService, PhoneProvider,
    Quota, RelayTextPolicy, Router, StubProvider,
};
use secrecy::{SecretSlice, SecretString};
use serde::Deserialize;
use tracing::warn;

use crate::app::{BearerAccess, Gateway, OktaHook, TwilioCallbacks};
use crate::auth::cidr::Cidr;
use crate::auth::jwt::{Algorithm, JwtIssuer};
use crate::auth::scope::{Scope, Scopes};
use crate::db::Db;
use crate::telemetry::LogFormat;

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
}

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
    fn service(&self, otp: &OtpService, keys: &str) -> Result<TotpService, ConfigError> {
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

/// One authorization server (`[[jwt]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` value, exactly (Okta: `https://example.okta.com/oauth2/default`; Auth0:
    /// `https://example.auth0.com/`).
    pub issuer: String,
    /// Our API identifier, which `aud` must contain.
    pub audience: String,
    /// The issuer's JWKS (Okta: `{issuer}/v1/keys`; Auth0:
    /// `{issuer}.well-known/jwks.json`). HTTPS.
    pub jwks_url: String,
    /// Allowed algorithms (default: RS256, RS384, RS512, PS256, PS384, PS512, ES256,
    /// ES384, EdDSA). `none` and HMAC are never accepted.
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed, in seconds (default 30).
    pub leeway_s: Option<u64>,
    /// Least seconds between two JWKS fetches (default 30).
    pub min_refetch_s: Option<u64>,
    /// Accept tokens without `typ: at+jwt` (Okta's custom authorization servers and
    /// Auth0's default profile issue such tokens). Default false.
    #[serde(default)]
    pub danger_accept_untyped: bool,
    /// Clients' systems are `<namespace>:<client_id>` (default namespace: the issuer
    /// without its scheme).
    pub namespace: Option<String>,
    /// Or: client ids mapped to system names (then only these clients are accepted). A
    /// mapped name may not be a key owner's.
    #[serde(default)]
    pub clients: BTreeMap<String, String>,
}

/// The SQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A URL without secrets (`sqlite://gateway.db?mode=rwc`).
    pub url: Option<String>,
    /// Or the environment variable holding it (a PostgreSQL URL carries a password).
    pub url_env: Option<String>,
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

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_hmac_env() -> String {
    "PHONE_OTP_HMAC_KEY".to_owned()
}

/// HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body (default 16 KiB).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Longest a request may run (default 10 s).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Proxies (CIDR blocks) whose forwarding header is believed for key allow-lists and
    /// the per-network failure limit.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies set: `x-forwarded-for` (default) or `forwarded` (RFC 7239).
    #[serde(default)]
    pub forwarded_header: crate::auth::forwarded::ForwardedHeader,
    /// Failed authentications a source network (IPv4 /24, IPv6 /48) may have a minute
    /// before it is refused unread (default 30).
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: NonZeroU32,
    /// The longest a client may take to send a request head (default 10 s).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// The longest a connection may stay open without a request (default 5 s).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Connections open at once (default 4096, and at most the open-file limit less 64);
    /// past it the oldest one not serving a request is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit(),
            request_timeout_ms: default_request_timeout(),
            trusted_proxies: Vec::new(),
            forwarded_header: crate::auth::forwarded::ForwardedHeader::default(),
            auth_failures_per_minute: default_auth_failures(),
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl ServerConfig {
    /// The connection limits, with the cap fitted under `descriptors` (the open-file
    /// limit) so accepting never fails for want of one.
    pub fn connection_limits(&self, descriptors: Option<u64>) -> crate::serve::ConnectionLimits {
        let fits = descriptors
            .and_then(|n| usize::try_from(n.saturating_sub(64)).ok())
            .unwrap_or(usize::MAX)
            .max(1);
        crate::serve::ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            max_connections: self.max_connections.min(fits).max(1),
        }
    }
}

fn default_header_read_timeout() -> u64 {
    duration_ms(crate::serve::DEFAULT_HEADER_READ_TIMEOUT)
}

fn default_idle_timeout() -> u64 {
    duration_ms(crate::serve::DEFAULT_IDLE_TIMEOUT)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn default_max_connections() -> usize {
    crate::serve::DEFAULT_MAX_CONNECTIONS
}

fn default_auth_failures() -> NonZeroU32 {
    crate::auth::failures::DEFAULT_AUTH_FAILURES_PER_MINUTE
}

fn default_body_limit() -> usize {
    crate::app::DEFAULT_BODY_LIMIT
}

fn default_request_timeout() -> u64 {
    10_000
}

/// The store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (one instance) or `redis` (many).
    #[serde(default)]
    pub kind: StoreKind,
    /// Environment variable holding the Redis URL (default `REDIS_URL`).
    pub url_env: Option<String>,
    /// Key prefix in Redis (default `potp:`).
    pub prefix: Option<String>,
}

/// Which store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process.
    #[default]
    Memory,
    /// Shared through Redis.
    Redis,
}

/// One provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `twilio`, `ntt-cpaas`, `smslink` or `stub`.
    pub kind: String,
    /// Overrides the provider's API base URL (tests, regional endpoints). Requests go
    /// there with the provider's credentials, hence the name.
    pub danger_base_url: Option<String>,
    /// At most this many messages and calls through this provider per UTC day; past it
    /// the router skips it and tries the next in the chain.
    pub messages_per_day: Option<u64>,
    /// At most this much estimated cost (`[prices]`) through this provider per UTC day.
    pub money_per_day: Option<f64>,
}

/// Chains: provider kinds in the order to try.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chains {
    /// For SMS.
    #[serde(default)]
    pub sms: Vec<String>,
    /// For voice calls.
    #[serde(default)]
    pub voice: Vec<String>,
}

/// Routing rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Chains for any destination (default: every provider in file order).
    pub default: Option<Chains>,
    /// Chains per ISO region (`JP`).
    #[serde(default)]
    pub countries: BTreeMap<String, Chains>,
    /// Chains per E.164 prefix (`+8170`), checked before countries.
    #[serde(default)]
    pub prefixes: BTreeMap<String, Chains>,
    /// Per provider call (default 1500 ms).
    pub attempt_timeout_ms: Option<u64>,
    /// Per send, failovers included (default 2500 ms).
    pub deadline_ms: Option<u64>,
    /// Providers called per send at most (default 3).
    pub max_attempts: Option<usize>,
    /// Try the next provider after one that was reached and did not answer in time
    /// (default false: that one may still deliver, and a second would be a second code,
    /// billed twice; the send is answered as `unknown` instead). Counted as
    /// `phone_otp_provider_possible_duplicates_total` when on.
    #[serde(default)]
    pub failover_after_timeout: bool,
}

/// Destination policy additions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Regions refused on every channel.
    #[serde(default)]
    pub deny_countries: Vec<String>,
    /// If set, only these regions are served.
    pub allow_only_countries: Option<Vec<String>>,
}

/// Send limits, each `"<count>/<period>"` (`"5/10m"`), a duration for the cooldown
/// (`"30s"`), or `"off"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsConfig {
    pub resend_cooldown: Option<String>,
    pub per_destination: Option<String>,
    pub per_subject: Option<String>,
    pub per_client_ip: Option<String>,
    pub per_client_network: Option<String>,
    pub per_tenant: Option<String>,
    pub per_country: Option<String>,
    pub global: Option<String>,
    /// Progressive backoff per user and per number: `"on"` (three sends at once, then
    /// waits of 1, 2, 4 ... 32 minutes with 20% jitter, one step forgotten per quiet
    /// hour) or `"off"` (default).
    pub backoff: Option<String>,
    /// The conversion guard against SMS pumping: `"on"` (defaults: 7-digit prefixes, a
    /// 1-hour window, throttled below half the country's learned conversion) or `"off"`
    /// (default).
    pub conversion_guard: Option<String>,
    /// Daily budgets (`[[limits.budgets]]`); money is priced with `[prices]`.
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// Exempt from the conversion guard and backoff (never from quotas or attempts).
    #[serde(default)]
    pub safe_list: SafeListConfig,
}

/// `[limits.safe_list]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeListConfig {
    /// Whole numbers, with `+` and country code.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Leading digits with country code (`+8190123`).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// User ids.
    #[serde(default)]
    pub subjects: Vec<String>,
}

/// One daily budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Whose sends: `each_tenant` (each calling system), `tenant:<name>`, `each_country`,
    /// `country:<ISO>` or `total`.
    pub scope: String,
    /// At most this many messages and calls per UTC day.
    pub messages_per_day: Option<u64>,
    /// At most this much estimated cost per UTC day, in the `[prices]` currency.
    pub money_per_day: Option<f64>,
}

impl BudgetConfig {
    fn to_budget(&self, index: usize) -> Result<phone_otp::Budget, ConfigError> {
        use phone_otp::{BudgetCap, BudgetScope};
        let field = |name: &str| format!("limits.budgets[{index}].{name}");
        let scope = match self.scope.split_once(':') {
            None if self.scope == "each_tenant" => BudgetScope::EachTenant,
            None if self.scope == "each_country" => BudgetScope::EachCountry,
            None if self.scope == "total" => BudgetScope::Total,
            Some(("tenant", name)) if !name.is_empty() => BudgetScope::Tenant(name.to_owned()),
            Some(("country", code)) if code.len() == 2 => {
                BudgetScope::Country(code.to_ascii_uppercase())
            }
            _ => {
                return Err(invalid(
                    field("scope"),
                    "each_tenant, tenant:<name>, each_country, country:<ISO> or total",
                ));
            }
        };
        let per_day = match (self.messages_per_day, self.money_per_day) {
            (Some(messages), None) => BudgetCap::Messages(messages),
            (None, Some(money)) => BudgetCap::Money(
                phone_otp::Micros::from_decimal(money)
                    .ok_or_else(|| invalid(field("money_per_day"), "a non-negative amount"))?,
            ),
            _ => {
                return Err(invalid(
                    field("messages_per_day"),
                    "set messages_per_day or money_per_day (one of them)",
                ));
            }
        };
        Ok(phone_otp::Budget { scope, per_day })
    }
}

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
    fn policy(&self) -> Result<RelayTextPolicy, ConfigError> {
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
    fn api_scopes(&self) -> Result<Scopes, ConfigError> {
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

impl JwtConfig {
    fn to_issuer(&self, index: usize) -> Result<JwtIssuer, ConfigError> {
        let mut issuer = JwtIssuer::new(&self.issuer, &self.audience, &self.jwks_url);
        if let Some(names) = &self.algorithms {
            let algorithms = names
                .iter()
                .map(|name| {
                    Algorithm::from_name(name).ok_or_else(|| {
                        invalid(
                            format!("jwt[{index}].algorithms"),
                            format!("{name:?} is not an accepted algorithm (asymmetric only)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            issuer = issuer.algorithms(algorithms);
        }
        if let Some(seconds) = self.leeway_s {
            issuer = issuer.leeway(Duration::from_secs(seconds));
        }
        if let Some(seconds) = self.min_refetch_s {
            issuer = issuer.min_refetch(Duration::from_secs(seconds));
        }
        if let Some(namespace) = &self.namespace {
            issuer = issuer.namespace(namespace.clone());
        }
        for (client, system) in &self.clients {
            issuer = issuer.client(client.clone(), system.clone());
        }
        if self.danger_accept_untyped {
            issuer = issuer.danger_accept_untyped();
        }
        Ok(issuer)
    }
}

fn default_okta_header() -> String {
    "authorization".to_owned()
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

/// What the binary runs.
#[derive(Debug)]
pub struct Built {
    /// The gateway.
    pub gateway: Gateway,
    /// Whether it delivers through the stub only (nothing reaches a phone).
    pub stub_only: bool,
}

impl Config {
    /// Opens the configured database, for the `keys` commands.
    ///
    /// # Errors
    /// No database configured, its variable unset, or the database unreachable.
    pub async fn open_database(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Db, ConfigError> {
        let url = match &self.database {
            Some(DatabaseConfig { url: Some(url), .. }) => url.clone(),
            Some(DatabaseConfig {
                url_env: Some(name),
                ..
            }) => env(name).ok_or_else(|| ConfigError::MissingEnv(vec![name.clone()]))?,
            _ => return Err(invalid("database", "no [database] is configured")),
        };
        Db::connect(&url).await.map_err(ConfigError::Database)
    }

    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and field.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Builds the gateway, reading secrets through `env` (the process environment in
    /// the binary). Every missing variable is reported at once.
    ///
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
            Some(url) => Arc::new(self.redis(&url).await?),
            None => Arc::new(phone_otp::MemoryStore::new()),
        };
        let (router, stub_only) = self.router(&store)?;
        let otp = OtpService::builder()
            .key_ring(KeyRing::new(key))
            .provider(router.clone())
            .limits(self.limits_with_budgets()?)
            .destination_policy(self.policy()?)
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
                    None => hook.dry_run_for(crate::app::OKTA_PREVIEW_NUMBERS),
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

    #[cfg(feature = "redis")]
    async fn redis(&self, url: &str) -> Result<phone_otp::RedisStore, ConfigError> {
        let prefix = self.store.prefix.as_deref().unwrap_or("potp:");
        phone_otp::RedisStore::connect(url, prefix)
            .await
            .map_err(ConfigError::Store)
    }

    #[cfg(not(feature = "redis"))]
    async fn redis(&self, _: &str) -> Result<phone_otp::MemoryStore, ConfigError> {
        Err(invalid(
            "store.kind",
            "this build has no Redis support (feature `redis`)",
        ))
    }

    fn router(&self, store: &Arc<dyn phone_otp::OtpStore>) -> Result<(Router, bool), ConfigError> {
        let mut builder = Router::builder().name("gateway");
        if let Some(budgets) = self.provider_budgets(store)? {
            builder = builder.provider_budgets(budgets);
        }
        let mut names = Vec::new();
        let stub_only = self.providers.iter().all(|p| p.kind == "stub");
        if self.providers.is_empty() {
            builder = builder.provider(StubProvider::new());
            names.push("stub".to_owned());
        }
        let mut errors = Vec::new();
        for provider in &self.providers {
            let status_callback = self
                .callbacks
                .twilio
                .as_ref()
                .map(|c| c.public_url.as_str());
            match provider_from_env(provider, status_callback) {
                Ok(built) => {
                    names.push(built.name().to_owned());
                    builder = builder.provider(built);
                }
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(merge(errors));
        }
        let routing = &self.routing;
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        match &routing.default {
            Some(chains) => {
                builder = builder
                    .default_chain(Channel::Sms, &chain(&chains.sms))
                    .default_chain(Channel::Voice, &chain(&chains.voice));
            }
            None => {
                builder = builder
                    .default_chain(Channel::Sms, &all)
                    .default_chain(Channel::Voice, &all);
            }
        }
        for (region, chains) in &routing.countries {
            builder = builder
                .country(region, Channel::Sms, &chain(&chains.sms))
                .country(region, Channel::Voice, &chain(&chains.voice));
        }
        for (prefix, chains) in &routing.prefixes {
            builder = builder
                .prefix(prefix, Channel::Sms, &chain(&chains.sms))
                .prefix(prefix, Channel::Voice, &chain(&chains.voice));
        }
        let mut failover = Failover::default()
            .deadline(Duration::from_millis(routing.deadline_ms.unwrap_or(2500)));
        if let Some(ms) = routing.attempt_timeout_ms {
            failover = failover.per_attempt_timeout(Duration::from_millis(ms));
        }
        if routing.failover_after_timeout {
            failover = failover.move_on(phone_otp::ProviderErrorKind::Timeout);
        }
        if let Some(n) = routing.max_attempts {
            failover = failover.max_attempts(n);
        }
        let router = builder
            .failover(failover)
            .policy(self.policy()?)
            .build()
            .map_err(|e| invalid("routing", e.to_string()))?;
        Ok((router, stub_only || self.providers.is_empty()))
    }

    /// `messages_per_day` and `money_per_day` of each `[[providers]]` entry.
    fn provider_budgets(
        &self,
        store: &Arc<dyn phone_otp::OtpStore>,
    ) -> Result<Option<phone_otp::ProviderBudgets>, ConfigError> {
        let capped = self
            .providers
            .iter()
            .filter(|p| p.messages_per_day.is_some() || p.money_per_day.is_some());
        let prices = self.prices.clone();
        let mut budgets = None;
        for provider in capped {
            let name = provider.kind.clone();
            let entry = budgets.get_or_insert_with(|| {
                phone_otp::ProviderBudgets::new(
                    Arc::clone(store),
                    prices
                        .clone()
                        .unwrap_or_else(|| phone_otp::PriceTable::new("-")),
                )
            });
            if let Some(messages) = provider.messages_per_day {
                *entry = entry
                    .clone()
                    .cap(name.clone(), phone_otp::BudgetCap::Messages(messages));
            }
            if let Some(money) = provider.money_per_day {
                if prices.is_none() {
                    return Err(invalid(
                        "providers.money_per_day",
                        "a money budget needs [prices] to count in",
                    ));
                }
                let cap = phone_otp::Micros::from_decimal(money)
                    .ok_or_else(|| invalid("providers.money_per_day", "a non-negative amount"))?;
                *entry = entry.clone().cap(name, phone_otp::BudgetCap::Money(cap));
            }
        }
        Ok(budgets)
    }

    fn policy(&self) -> Result<DestinationPolicy, ConfigError> {
        let mut policy = DestinationPolicy::default();
        for channel in [Channel::Sms, Channel::Voice] {
            for region in &self.policy.deny_countries {
                policy = policy
                    .deny_country(channel, region)
                    .map_err(|e| invalid("policy.deny_countries", e.to_string()))?;
            }
            if let Some(only) = &self.policy.allow_only_countries {
                let only: Vec<&str> = only.iter().map(String::as_str).collect();
                policy = policy
                    .allow_only_countries(channel, &only)
                    .map_err(|e| invalid("policy.allow_only_countries", e.to_string()))?;
            }
        }
        Ok(policy)
    }
}

fn chain(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn merge(errors: Vec<ConfigError>) -> ConfigError {
    let mut missing = Vec::new();
    let mut other = None;
    for error in errors {
        match error {
            ConfigError::MissingEnv(names) => missing.extend(names),
            error => other = other.or(Some(error)),
        }
    }
    match other {
        Some(error) => error,
        None => ConfigError::MissingEnv(missing),
    }
}

/// The variables an adapter's `from_env` needs that `env` lacks, all of them (the adapter
/// itself stops at the first).
/// The provider's missing variables, by name, as the library's `from_lookup` reports them.
fn missing_provider_env(kind: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let refused = match kind {
        "twilio" => phone_otp::TwilioConfig::from_lookup(env).err(),
        "ntt-cpaas" => phone_otp::NttCpaasConfig::from_lookup(env).err(),
        "smslink" => phone_otp::SmslinkConfig::from_lookup(env).err(),
        _ => None,
    };
    match refused {
        Some(phone_otp::ConfigError::MissingEnv(names)) => {
            names.into_iter().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

/// Builds one adapter. Twilio asks for its status callbacks at `twilio_status_callback`
/// (`[callbacks.twilio] public_url`), unless `TWILIO_STATUS_CALLBACK` names another URL,
/// so every receipt carries the send's reference.
fn provider_from_env(
    config: &ProviderConfig,
    twilio_status_callback: Option<&str>,
) -> Result<Arc<dyn PhoneProvider>, ConfigError> {
    let adapter = |e: phone_otp::ConfigError| match e {
        phone_otp::ConfigError::MissingEnv(names) => {
            ConfigError::MissingEnv(names.into_iter().map(str::to_owned).collect())
        }
        other => invalid(format!("providers.{}", config.kind), other.to_string()),
    };
    let base = config.danger_base_url.as_deref();
    let provider: Arc<dyn PhoneProvider> = match config.kind.as_str() {
        "stub" => Arc::new(StubProvider::new()),
        "twilio" => {
            let mut p = phone_otp::TwilioProvider::from_env().map_err(adapter)?;
            if let Some(url) = twilio_status_callback
                && std::env::var_os("TWILIO_STATUS_CALLBACK").is_none()
            {
                p = p.status_callback(url).map_err(adapter)?;
            }
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        "ntt-cpaas" => {
            let p = phone_otp::NttCpaasProvider::from_env().map_err(adapter)?;
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        "smslink" => {
            let p = phone_otp::SmslinkProvider::from_env().map_err(adapter)?;
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        other => {
            return Err(invalid(
                "providers.kind",
                format!("unknown provider {other:?} (twilio, ntt-cpaas, smslink, stub)"),
            ));
        }
    };
    Ok(provider)
}

impl LimitsConfig {
    /// The library's [`Limits`], with each set field replacing its default (budgets are
    /// added when the config is built, with `[prices]`).
    ///
    /// # Errors
    /// A malformed rate or duration, naming the field.
    pub fn to_limits(&self) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        let quota = |field: &str, value: &Option<String>, current: Option<Quota>| match value {
            None => Ok(current),
            Some(text) => {
                parse_quota(text).map_err(|reason| invalid(format!("limits.{field}"), reason))
            }
        };
        if let Some(text) = &self.resend_cooldown {
            limits.resend_cooldown = match text.trim() {
                "off" => None,
                other => Some(parse_duration(other).ok_or_else(|| {
                    invalid("limits.resend_cooldown", "expected e.g. \"30s\" or \"off\"")
                })?),
            };
        }
        limits.per_destination = quota(
            "per_destination",
            &self.per_destination,
            limits.per_destination,
        )?;
        limits.per_subject = quota("per_subject", &self.per_subject, limits.per_subject)?;
        limits.per_client_ip = quota("per_client_ip", &self.per_client_ip, limits.per_client_ip)?;
        limits.per_client_network = quota(
            "per_client_network",
            &self.per_client_network,
            limits.per_client_network,
        )?;
        limits.per_tenant = quota("per_tenant", &self.per_tenant, limits.per_tenant)?;
        limits.per_country = quota("per_country", &self.per_country, limits.per_country)?;
        limits.global = quota("global", &self.global, limits.global)?;
        limits.backoff = match self.backoff.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some("on") => Some(phone_otp::Backoff::default()),
            Some(_) => return Err(invalid("limits.backoff", "expected \"on\" or \"off\"")),
        };
        for number in &self.safe_list.numbers {
            let parsed = phone_otp::PhoneNumber::parse(number)
                .map_err(|e| invalid("limits.safe_list.numbers", e.to_string()))?;
            limits.safe_list.numbers.insert(parsed.e164().to_owned());
        }
        for prefix in &self.safe_list.prefixes {
            let digits = prefix.trim_start_matches('+');
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "limits.safe_list.prefixes",
                    format!("{prefix:?} is not a digit prefix like \"+8190123\""),
                ));
            }
            limits.safe_list.prefixes.push(digits.to_owned());
        }
        limits
            .safe_list
            .subjects
            .extend(self.safe_list.subjects.iter().cloned());
        limits.conversion_guard = match self.conversion_guard.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some("on") => Some(phone_otp::ConversionGuard::default()),
            Some(_) => {
                return Err(invalid(
                    "limits.conversion_guard",
                    "expected \"on\" or \"off\"",
                ));
            }
        };
        Ok(limits)
    }
}

impl Config {
    /// `[limits]` with its budgets, priced by `[prices]`. A money budget without prices
    /// is refused here: every send would be unpriced, so refused.
    fn limits_with_budgets(&self) -> Result<Limits, ConfigError> {
        let mut limits = self.limits.to_limits()?;
        if self.limits.budgets.is_empty() {
            return Ok(limits);
        }
        let caps = self
            .limits
            .budgets
            .iter()
            .enumerate()
            .map(|(index, budget)| budget.to_budget(index))
            .collect::<Result<Vec<_>, _>>()?;
        let money = caps
            .iter()
            .any(|cap| matches!(cap.per_day, phone_otp::BudgetCap::Money(_)));
        let prices = match (&self.prices, money) {
            (Some(prices), _) => prices.clone(),
            (None, false) => phone_otp::PriceTable::new("-"),
            (None, true) => {
                return Err(invalid(
                    "limits.budgets",
                    "a money budget needs [prices] to count in",
                ));
            }
        };
        limits.budgets = Some(phone_otp::Budgets { prices, caps });
        Ok(limits)
    }
}

/// `"5/10m"` -> 5 per 10 minutes; `"off"` -> none.
fn parse_quota(text: &str) -> Result<Option<Quota>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let (count, period) = text.split_once('/').ok_or_else(|| {
        format!("{text:?}: expected \"<count>/<period>\" such as \"5/10m\", or \"off\"")
    })?;
    let count: NonZeroU32 = count
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the count must be a positive integer"))?;
    let period = parse_duration(period.trim())
        .ok_or_else(|| format!("{text:?}: the period must be like 30s, 10m, 1h or 1d"))?;
    Ok(Some(Quota::per_period(count, period)))
}

/// `"30s"`, `"10m"`, `"1h"`, `"1d"`, `"1m"` (a bare unit means one).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = if number.is_empty() {
        1
    } else {
        number.parse().ok()?
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    (n > 0).then(|| Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(
            parse_quota("5/10m"),
            Ok(Some(Quota::per_period(
                NonZeroU32::MIN.saturating_add(4),
                Duration::from_secs(600)
            )))
        );
        assert_eq!(parse_quota("off"), Ok(None));
        assert!(parse_quota("0/1h").is_err());
        assert!(parse_quota("5 per hour").is_err());
        assert!(parse_quota("5/1w").is_err());
        let limits = |backoff: &str| {
            LimitsConfig {
                backoff: Some(backoff.to_owned()),
                ..LimitsConfig::default()
            }
            .to_limits()
        };
        assert_eq!(
            limits("on").ok().map(|l| l.backoff),
            Some(Some(phone_otp::Backoff::default()))
        );
        assert_eq!(limits("off").ok().map(|l| l.backoff), Some(None));
        assert!(limits("yes").is_err());
        let guard = LimitsConfig {
            conversion_guard: Some("on".to_owned()),
            ..LimitsConfig::default()
        }
        .to_limits()
        .ok()
        .and_then(|l| l.conversion_guard);
        assert_eq!(guard, Some(phone_otp::ConversionGuard::default()));
        let safe = |numbers: &[&str], prefixes: &[&str]| {
            LimitsConfig {
                safe_list: SafeListConfig {
                    numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
                    prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
                    subjects: vec!["desk".to_owned()],
                },
                ..LimitsConfig::default()
            }
            .to_limits()
        };
        let list = safe(&["+81 90-1234-5678"], &["+8190111"])
            .map(|l| l.safe_list)
            .unwrap_or_default();
        assert!(list.numbers.contains("+819012345678"));
        assert_eq!(list.prefixes, ["8190111"]);
        assert!(list.subjects.contains("desk"));
        assert!(safe(&["12"], &[]).is_err());
        assert!(safe(&[], &["+"]).is_err());
        assert!(safe(&[], &["81-90"]).is_err());
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("30"), None);
    }

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

    #[test]
    fn budgets_load_with_their_prices() {
        let config = Config::from_toml(
            "[prices]\ncurrency = \"USD\"\n[[prices.rates]]\nprovider = \"*\"\ncountry = \"*\"\nsms = 0.05\n\
             [[limits.budgets]]\nscope = \"each_tenant\"\nmoney_per_day = 25.5\n\
             [[limits.budgets]]\nscope = \"country:jp\"\nmessages_per_day = 1000\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let budgets = config
            .limits_with_budgets()
            .unwrap_or_else(|e| panic!("{e}"))
            .budgets
            .map(|b| b.caps)
            .unwrap_or_default();
        assert_eq!(
            budgets,
            vec![
                phone_otp::Budget {
                    scope: phone_otp::BudgetScope::EachTenant,
                    per_day: phone_otp::BudgetCap::Money(phone_otp::Micros(25_500_000)),
                },
                phone_otp::Budget {
                    scope: phone_otp::BudgetScope::Country("JP".into()),
                    per_day: phone_otp::BudgetCap::Messages(1000),
                },
            ]
        );
        let error = |toml: &str| {
            Config::from_toml(toml)
                .unwrap_or_else(|e| panic!("{e}"))
                .limits_with_budgets()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            error("[[limits.budgets]]\nscope = \"total\"\nmoney_per_day = 1.0\n")
                .contains("[prices]")
        );
        assert!(
            error("[[limits.budgets]]\nscope = \"system\"\nmessages_per_day = 1\n")
                .contains("scope")
        );
        assert!(error("[[limits.budgets]]\nscope = \"total\"\n").contains("one of them"));
    }

    #[tokio::test]
    async fn provider_budgets_need_prices_for_money() {
        let build = |toml: &'static str| async move {
            let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
            config.build(&|_| None).await.err().map(|e| e.to_string())
        };
        assert_eq!(
            build("[[providers]]\nkind = \"stub\"\nmessages_per_day = 100\n").await,
            None
        );
        let error = build("[[providers]]\nkind = \"stub\"\nmoney_per_day = 5.0\n").await;
        assert!(error.unwrap_or_default().contains("[prices]"));
        let priced =
            "[prices]\ncurrency = \"USD\"\n[[providers]]\nkind = \"stub\"\nmoney_per_day = 5.0\n";
        assert_eq!(build(priced).await, None);
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
