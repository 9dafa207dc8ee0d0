//! The console's OpenID Connect client: the identity provider found by discovery
//! (`/.well-known/openid-configuration`), the authorization code redeemed with its PKCE
//! verifier, the ID token checked against the provider's JWKS, and the group or role claim
//! mapped to a console role. The browser's side of the flow is `sso.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::session::Role;
use crate::auth::jwt::https_or_loopback;
use crate::auth::jwt::id_token::IdTokenVerifier;

/// The identity provider and how its users map to console roles.
pub struct SsoSettings {
    issuer: String,
    pub(crate) client_id: String,
    client_secret: Option<SecretString>,
    pub(crate) redirect_url: String,
    roles_claim: String,
    admin_values: Vec<String>,
    viewer_values: Vec<String>,
}

impl std::fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

/// A provider URL that is neither HTTPS nor loopback, or no role values.
#[derive(Debug, thiserror::Error)]
#[error("console sso: {0}")]
pub struct SsoError(&'static str);

impl SsoSettings {
    /// Users of `issuer` (its `iss`, e.g. `https://example.okta.com/oauth2/default`) sign
    /// in through the console's client `client_id`, coming back to `redirect_url` (the
    /// console's `/console/sso/callback` as the browser reaches it). Roles come from the
    /// `groups` claim unless [`Self::roles`] says otherwise.
    ///
    /// # Errors
    /// An issuer or redirect URL that is not HTTPS (loopback excepted).
    pub fn new(issuer: &str, client_id: &str, redirect_url: &str) -> Result<Self, SsoError> {
        if !secure_url(issuer) {
            return Err(SsoError("the issuer must be an https URL"));
        }
        if !secure_url(redirect_url) || !redirect_url.ends_with("/console/sso/callback") {
            return Err(SsoError(
                "the redirect URL must be https and end in /console/sso/callback",
            ));
        }
        if client_id.is_empty() {
            return Err(SsoError("the client id must not be empty"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            redirect_url: redirect_url.to_owned(),
            roles_claim: "groups".to_owned(),
            admin_values: Vec::new(),
            viewer_values: Vec::new(),
        })
    }

    /// The client's secret, for a confidential client (`client_secret_basic`); without it
    /// the console is a public client and PKCE alone binds the code.
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// The claim naming the user's roles or groups (a string or a list), and the values
    /// that make an administrator or a viewer.
    pub fn roles(mut self, claim: &str, admin: Vec<String>, viewer: Vec<String>) -> Self {
        self.roles_claim = claim.to_owned();
        self.admin_values = admin;
        self.viewer_values = viewer;
        self
    }

    pub(crate) fn into_sso(self) -> Result<Sso, SsoError> {
        if self.admin_values.is_empty() && self.viewer_values.is_empty() {
            return Err(SsoError("name the claim values of admins or viewers"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| SsoError("no HTTP client"))?;
        Ok(Sso {
            settings: self,
            client,
            provider: Mutex::new(None),
        })
    }
}

/// A provider URL the console may use (see [`https_or_loopback`]).
fn secure_url(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|url| https_or_loopback(&url))
}

/// The console's side of the provider.
#[derive(Debug)]
pub(crate) struct Sso {
    settings: SsoSettings,
    client: reqwest::Client,
    /// Found by discovery on the first sign-in, then kept.
    provider: Mutex<Option<Arc<Provider>>>,
}

#[derive(Debug)]
pub(crate) struct Provider {
    pub(crate) authorization_endpoint: String,
    token_endpoint: String,
    pub(crate) id_tokens: IdTokenVerifier,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

impl Sso {
    pub(crate) fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    pub(crate) async fn provider(&self) -> Result<Arc<Provider>, String> {
        if let Some(provider) = lock(&self.provider).clone() {
            return Ok(provider);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("discovery answered {}", response.status().as_u16()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let found: Discovery =
            serde_json::from_slice(&body).map_err(|_| "discovery is not JSON".to_owned())?;
        if found.issuer != self.settings.issuer {
            return Err("discovery names another issuer".to_owned());
        }
        for endpoint in [
            &found.authorization_endpoint,
            &found.token_endpoint,
            &found.jwks_uri,
        ] {
            if !secure_url(endpoint) {
                return Err("a discovered endpoint is not https".to_owned());
            }
        }
        let provider = Arc::new(Provider {
            authorization_endpoint: found.authorization_endpoint,
            token_endpoint: found.token_endpoint,
            id_tokens: IdTokenVerifier::new(
                found.issuer,
                self.settings.client_id.clone(),
                found.jwks_uri,
                self.client.clone(),
            ),
        });
        *lock(&self.provider) = Some(Arc::clone(&provider));
        Ok(provider)
    }

    /// Exchanges the code for tokens and returns the ID token.
    pub(crate) async fn redeem(
        &self,
        provider: &Provider,
        code: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let settings = &self.settings;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &settings.redirect_url)
            .append_pair("client_id", &settings.client_id)
            .append_pair("code_verifier", verifier)
            .finish();
        let mut request = self
            .client
            .post(&provider.token_endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body);
        if let Some(secret) = &settings.client_secret {
            request = request.basic_auth(&settings.client_id, Some(secret.expose_secret()));
        }
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            let error: Value = serde_json::from_slice(&body).unwrap_or_default();
            return Err(format!(
                "the token endpoint answered {}: {}",
                status.as_u16(),
                error["error"].as_str().unwrap_or("no error code")
            ));
        }
        let tokens: Value =
            serde_json::from_slice(&body).map_err(|_| "the token answer is not JSON".to_owned())?;
        tokens["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the token answer has no id_token".to_owned())
    }

    /// The console role the token's claim grants, if any (admin wins).
    pub(crate) fn role(&self, claims: &serde_json::Map<String, Value>) -> Option<Role> {
        let values: Vec<&str> = match claims.get(&self.settings.roles_claim) {
            Some(Value::String(value)) => vec![value.as_str()],
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let has = |wanted: &[String]| values.iter().any(|v| wanted.iter().any(|w| w == v));
        if has(&self.settings.admin_values) {
            Some(Role::Admin)
        } else if has(&self.settings.viewer_values) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_must_be_https_or_loopback() {
        assert!(secure_url("https://example.okta.com/oauth2/default"));
        assert!(secure_url("http://127.0.0.1:3000"));
        assert!(secure_url("http://localhost:3000"));
        assert!(!secure_url("http://example.okta.com"));
        assert!(!secure_url("ftp://127.0.0.1"));
        assert!(
            SsoSettings::new(
                "http://idp.example",
                "c",
                "https://ops.example/console/sso/callback"
            )
            .is_err()
        );
        assert!(
            SsoSettings::new("https://idp.example", "c", "https://ops.example/elsewhere").is_err()
        );
        let settings = SsoSettings::new(
            "https://idp.example",
            "c",
            "https://ops.example/console/sso/callback",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(settings.into_sso().is_err(), "no role values");
    }

    #[test]
    fn roles_come_from_the_claim_and_admin_wins() {
        let sso = SsoSettings::new(
            "https://idp.example",
            "c",
            "https://ops.example/console/sso/callback",
        )
        .map(|s| {
            s.roles(
                "groups",
                vec!["otp-admins".into()],
                vec!["otp-viewers".into()],
            )
        })
        .and_then(SsoSettings::into_sso)
        .unwrap_or_else(|e| unreachable!("{e}"));
        let claims = |value: Value| match serde_json::json!({ "groups": value }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert_eq!(
            sso.role(&claims(serde_json::json!(["x", "otp-viewers"]))),
            Some(Role::Viewer)
        );
        assert_eq!(
            sso.role(&claims(serde_json::json!(["otp-viewers", "otp-admins"]))),
            Some(Role::Admin)
        );
        assert_eq!(
            sso.role(&claims(serde_json::json!("otp-admins"))),
            Some(Role::Admin)
        );
        assert_eq!(sso.role(&claims(serde_json::json!(["everyone"]))), None);
        assert_eq!(sso.role(&serde_json::Map::new()), None);
    }
}
