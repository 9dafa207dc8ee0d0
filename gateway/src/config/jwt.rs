//! `[[jwt]]`: authorization servers whose OAuth 2.0 access tokens callers may present.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::auth::jwt::{Algorithm, JwtIssuer};

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

impl JwtConfig {
    pub(super) fn to_issuer(&self, index: usize) -> Result<JwtIssuer, ConfigError> {
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
