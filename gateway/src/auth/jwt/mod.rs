//! OAuth 2.0 access tokens from an identity provider (RFC 9068 JWTs): machine-to-machine
//! callers authenticate with the client-credentials token their IdP (Auth0, Okta, any
//! OIDC issuer) gives them, and Okta's OAuth option for the telephony hook sends one.
//!
//! A token passes when, in order: its algorithm is on the allow-list (asymmetric only:
//! never `none`, never HMAC); its `typ` is `at+jwt` (unless the issuer is configured with
//! [`JwtIssuer::danger_accept_untyped`]); its `iss` is a configured issuer, exactly; its
//! signature verifies with the key its `kid` names in that issuer's JWKS;
//! `exp` is in the future and `nbf` in the past (within the leeway); `aud` contains our
//! audience. Its `scope` (space-separated) or `scp` (Okta's array) claim maps to the
//! gateway's scopes, and `client_id` (else `azp`, else `sub`) names the calling system:
//! namespaced by its issuer (`<namespace>:<client>`), or as the issuer's client map says,
//! so two issuers' clients, and a client and a key owner, are never one system.

#[cfg(feature = "console")]
pub(crate) mod id_token;
mod jwks;
mod token;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::scope::{Scope, Scopes};
pub use token::Algorithm;
use token::{Unverified, string_claim, time_claim};

/// Default allowance for clock skew between the issuer and us.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default least time between two fetches of an issuer's JWKS.
pub const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);

/// An authorization server whose access tokens the gateway accepts.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    issuer: String,
    audience: String,
    jwks_url: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    min_refetch: Duration,
    accept_untyped: bool,
    /// What a client's system is called: `<namespace>:<client>`...
    namespace: String,
    /// ...unless clients are mapped to systems, and then only mapped ones are accepted.
    clients: BTreeMap<String, String>,
}

/// The separator between an issuer's namespace and a client id in a system's name. Key
/// owners cannot contain it, so a token's system is never a key owner's.
pub const NAMESPACE_SEPARATOR: char = ':';

impl JwtIssuer {
    /// Tokens whose `iss` is exactly `issuer` and whose `aud` contains `audience` (the
    /// API identifier configured at the IdP), signed by a key from `jwks_url` (Okta:
    /// `{issuer}/v1/keys`; Auth0: `{issuer}.well-known/jwks.json`). The URL must be
    /// HTTPS, except on loopback.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_url: impl Into<String>,
    ) -> Self {
        let issuer: String = issuer.into();
        // `https://example.okta.com/oauth2/default` -> `example.okta.com/oauth2/default`.
        let namespace = issuer
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self {
            issuer,
            audience: audience.into(),
            jwks_url: jwks_url.into(),
            algorithms: Algorithm::ALL.to_vec(),
            leeway: DEFAULT_LEEWAY,
            min_refetch: DEFAULT_MIN_REFETCH,
            accept_untyped: false,
            namespace,
            clients: BTreeMap::new(),
        }
    }

    /// Names this issuer's clients `<namespace>:<client>` (default namespace: the issuer
    /// without its scheme, e.g. `example.okta.com/oauth2/default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Maps the client `client_id` to the calling system `system` (a short name, without
    /// `:`, that no key owner may take). Once one client is mapped, this issuer's tokens
    /// from any unmapped client are refused.
    pub fn client(mut self, client_id: impl Into<String>, system: impl Into<String>) -> Self {
        self.clients.insert(client_id.into(), system.into());
        self
    }

    /// The systems clients are mapped to ([`JwtIssuer::client`]).
    pub fn mapped_systems(&self) -> impl Iterator<Item = &str> {
        self.clients.values().map(String::as_str)
    }

    /// The calling system of `client`, or `None` when clients are mapped and it is not.
    fn system_of(&self, client: &str) -> Option<String> {
        if self.clients.is_empty() {
            Some(format!("{}{NAMESPACE_SEPARATOR}{client}", self.namespace))
        } else {
            self.clients.get(client).cloned()
        }
    }

    /// Only these algorithms (default: every asymmetric one in [`Algorithm`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Least time between two JWKS fetches, however many unknown `kid`s arrive (default
    /// 30 s).
    pub fn min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// Also accepts tokens without `typ: at+jwt`. Okta's custom authorization servers and
    /// Auth0's default token profile issue such tokens; without the type, an ID token
    /// from the same issuer whose `aud` happened to equal our audience would pass too.
    /// Prefer Auth0's "RFC 9068" token profile where there is a choice.
    pub fn danger_accept_untyped(mut self) -> Self {
        self.accept_untyped = true;
        self
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Why a token was refused. Never carries the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a compact JWS with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// `none`, HMAC, or an algorithm not on the allow-list.
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// `typ` is not `at+jwt`.
    #[error("not an access token (typ is not at+jwt)")]
    Untyped,
    /// `iss` is not a configured issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No key in the issuer's JWKS has this `kid`, even after a refetch.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key is pinned to another algorithm.
    #[error("the signing key is for another algorithm")]
    KeyAlgorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// A required claim is missing or of the wrong type.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not contain our audience.
    #[error("wrong audience")]
    Audience,
    /// The issuer maps its clients to systems, and this client is not one of them.
    #[error("the client is not mapped to a system")]
    UnknownClient,
    /// The issuer's JWKS cannot be fetched (and no key is cached): fail closed.
    #[error("the issuer's signing keys cannot be fetched")]
    KeysUnavailable,
}

/// A verified token's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenCaller {
    /// The calling system: its issuer's name for `client_id` (else `azp`, else `sub`).
    pub(crate) client: String,
    pub(crate) scopes: Scopes,
    /// `jti`, for the audit trail.
    pub(crate) token_id: Option<String>,
}

struct Issuer {
    config: JwtIssuer,
    keys: jwks::KeySet,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Checks tokens against every configured issuer.
#[derive(Debug)]
pub(crate) struct JwtVerifier {
    issuers: Vec<Issuer>,
    /// Every algorithm some issuer accepts (a token's header is checked against it first).
    allowed: Vec<Algorithm>,
}

/// A JWKS URL that is not HTTPS (outside loopback), or a client that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("issuer {issuer}: {reason}")]
pub struct IssuerError {
    issuer: String,
    reason: String,
}

impl JwtVerifier {
    pub(crate) fn new(issuers: Vec<JwtIssuer>) -> Result<Self, IssuerError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("phone-otp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| IssuerError {
                issuer: String::new(),
                reason: error.to_string(),
            })?;
        let issuers = issuers
            .into_iter()
            .map(|config| {
                let fail = |reason: &str| IssuerError {
                    issuer: config.issuer.clone(),
                    reason: reason.to_owned(),
                };
                let url = reqwest::Url::parse(&config.jwks_url)
                    .map_err(|_| fail("jwks_url is not a URL"))?;
                if !https_or_loopback(&url) {
                    return Err(fail("jwks_url must be https"));
                }
                if config.algorithms.is_empty() {
                    return Err(fail("no algorithm is allowed"));
                }
                if config.issuer.is_empty() || config.audience.is_empty() {
                    return Err(fail("issuer and audience must not be empty"));
                }
                if config.namespace.is_empty() {
                    return Err(fail("the namespace must not be empty"));
                }
                if let Some(bad) = config
                    .mapped_systems()
                    .find(|system| system.is_empty() || system.contains(NAMESPACE_SEPARATOR))
                {
                    return Err(fail(&format!(
                        "client system {bad:?} must be non-empty and without ':'"
                    )));
                }
                let keys =
                    jwks::KeySet::new(config.jwks_url.clone(), client.clone(), config.min_refetch);
                Ok(Issuer { config, keys })
            })
            .collect::<Result<Vec<Issuer>, _>>()?;
        // Two issuers must not name a system alike: their clients would be one tenant.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for issuer in &issuers {
            let names: Vec<String> = if issuer.config.clients.is_empty() {
                vec![format!("{}{NAMESPACE_SEPARATOR}", issuer.config.namespace)]
            } else {
                issuer.config.mapped_systems().map(str::to_owned).collect()
            };
            for name in names {
                if let Some(other) = seen.insert(name.clone(), &issuer.config.issuer)
                    && other != issuer.config.issuer
                {
                    return Err(IssuerError {
                        issuer: issuer.config.issuer.clone(),
                        reason: format!("names systems like issuer {other} ({name:?})"),
                    });
                }
            }
        }
        let allowed = Algorithm::ALL
            .into_iter()
            .filter(|alg| issuers.iter().any(|i| i.config.algorithms.contains(alg)))
            .collect();
        Ok(Self { issuers, allowed })
    }

    /// Whether `token` looks like a JWS (three base64url parts, JSON header first).
    pub(crate) fn looks_like_jwt(token: &[u8]) -> bool {
        token.starts_with(b"eyJ") && token.iter().filter(|byte| **byte == b'.').count() == 2
    }

    /// Verifies `token` at `now` (Unix ms).
    pub(crate) async fn verify(&self, token: &[u8], now: i64) -> Result<TokenCaller, JwtError> {
        let unverified = Unverified::parse(token, &self.allowed)?;
        let iss = string_claim(&unverified.claims, "iss").ok_or(JwtError::MissingClaim("iss"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.config.issuer == iss)
            .ok_or(JwtError::UnknownIssuer)?;
        let config = &issuer.config;
        if !config.algorithms.contains(&unverified.alg) {
            return Err(JwtError::Algorithm(unverified.alg.name().to_owned()));
        }
        if !unverified.typed && !config.accept_untyped {
            return Err(JwtError::Untyped);
        }
        issuer.keys.check_signature(&unverified, now).await?;
        check_claims(&unverified.claims, config, now)
    }
}

/// The registered claims, after the signature is known good.
fn check_claims(
    claims: &serde_json::Map<String, Value>,
    config: &JwtIssuer,
    now: i64,
) -> Result<TokenCaller, JwtError> {
    let leeway = i64::try_from(config.leeway.as_millis()).unwrap_or(i64::MAX);
    let exp = time_claim(claims, "exp").ok_or(JwtError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    for name in ["nbf", "iat"] {
        if claims.contains_key(name) {
            let at = time_claim(claims, name).ok_or(JwtError::MissingClaim(name))?;
            if at > now.saturating_add(leeway) {
                return Err(JwtError::NotYetValid);
            }
        }
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.audience,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|aud| aud.as_str() == Some(config.audience.as_str())),
        _ => return Err(JwtError::MissingClaim("aud")),
    };
    if !audience_ok {
        return Err(JwtError::Audience);
    }
    let client = ["client_id", "azp", "sub"]
        .into_iter()
        .find_map(|name| string_claim(claims, name).filter(|value| !value.is_empty()))
        .ok_or(JwtError::MissingClaim("client_id"))?;
    let names: Vec<&str> = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => scope.split_ascii_whitespace().collect(),
        (_, Some(Value::Array(scp))) => scp.iter().filter_map(Value::as_str).collect(),
        (_, Some(Value::String(scp))) => scp.split_ascii_whitespace().collect(),
        _ => Vec::new(),
    };
    let scopes = names
        .into_iter()
        .filter_map(Scope::parse)
        .fold(Scopes::default(), Scopes::with);
    Ok(TokenCaller {
        client: config.system_of(client).ok_or(JwtError::UnknownClient)?,
        scopes,
        token_id: string_claim(claims, "jti").map(|jti| jti.chars().take(64).collect()),
    })
}

/// HTTPS, or HTTP to a loopback host (a provider run beside the gateway in tests): the
/// only URLs keys and tokens are fetched from.
pub(crate) fn https_or_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn clients_are_namespaced_or_mapped() {
        let now = 1_000_000_000;
        let token = claims(json!({"exp": 1_000_100, "aud": "api://otp", "client_id": "sysa"}));
        let named = JwtIssuer::new(
            "https://idp.example.com/oauth2/two/",
            "api://otp",
            "https://k",
        )
        .namespace("idp2");
        assert_eq!(
            check_claims(&token, &named, now).unwrap().client,
            "idp2:sysa"
        );
        let default = JwtIssuer::new(
            "https://idp.example.com/oauth2/two/",
            "api://otp",
            "https://k",
        );
        assert_eq!(
            check_claims(&token, &default, now).unwrap().client,
            "idp.example.com/oauth2/two:sysa"
        );
        let mapped = default.clone().client("0oa-billing", "billing");
        assert_eq!(
            check_claims(&token, &mapped, now),
            Err(JwtError::UnknownClient),
            "unmapped clients are refused once any is mapped"
        );
        let billing =
            claims(json!({"exp": 1_000_100, "aud": "api://otp", "client_id": "0oa-billing"}));
        assert_eq!(
            check_claims(&billing, &mapped, now).unwrap().client,
            "billing"
        );
        // Mapped names cannot carry the separator; two issuers cannot share a namespace.
        let colon = default.clone().client("x", "a:b");
        assert!(JwtVerifier::new(vec![colon]).is_err());
        let twin = JwtIssuer::new("https://other.example/", "api://otp", "https://k")
            .namespace("idp.example.com/oauth2/two");
        assert!(JwtVerifier::new(vec![default.clone(), twin]).is_err());
        let same_system = JwtIssuer::new("https://other.example/", "api://otp", "https://k")
            .client("y", "billing");
        assert!(JwtVerifier::new(vec![mapped, same_system]).is_err());
    }

    #[test]
    fn checks_time_audience_and_maps_scopes() {
        let config = JwtIssuer::new("https://idp", "api://otp", "https://idp/keys");
        let now = 1_000_000_000;
        let base = json!({"exp": 1_000_100, "aud": ["x", "api://otp"], "client_id": "billing",
            "azp": "other", "scope": "messages:send unknown usage:read", "jti": "t1"});
        let caller = check_claims(&claims(base.clone()), &config, now).unwrap();
        // Namespaced by the issuer: never a key owner's name, nor another issuer's client.
        assert_eq!(caller.client, "idp:billing");
        assert!(caller.scopes.contains(Scope::MessagesSend));
        assert!(caller.scopes.contains(Scope::UsageRead));
        assert!(!caller.scopes.contains(Scope::ChallengesStart));
        assert_eq!(caller.token_id.as_deref(), Some("t1"));

        let with = |patch: Value| {
            let mut map = claims(base.clone());
            map.extend(claims(patch));
            check_claims(&map, &config, now)
        };
        // Leeway 30 s either side.
        assert!(with(json!({"exp": 999_971})).is_ok());
        assert_eq!(with(json!({"exp": 999_970})), Err(JwtError::Expired));
        assert!(with(json!({"nbf": 1_000_030})).is_ok());
        assert_eq!(with(json!({"nbf": 1_000_031})), Err(JwtError::NotYetValid));
        assert_eq!(with(json!({"iat": 1_000_031})), Err(JwtError::NotYetValid));
        assert_eq!(with(json!({"aud": "api://other"})), Err(JwtError::Audience));
        assert_eq!(
            with(json!({"exp": "soon"})),
            Err(JwtError::MissingClaim("exp"))
        );
        // Okta's scp array.
        let okta = with(json!({"scope": null, "scp": ["hooks:okta"]})).unwrap();
        assert!(okta.scopes.contains(Scope::HooksOkta));
        // azp, then sub, when client_id is absent.
        let mut map = claims(base.clone());
        map.remove("client_id");
        assert_eq!(
            check_claims(&map, &config, now).unwrap().client,
            "idp:other"
        );
        map.remove("azp");
        assert_eq!(
            check_claims(&map, &config, now),
            Err(JwtError::MissingClaim("client_id"))
        );
    }
}
