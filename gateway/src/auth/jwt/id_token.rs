//! OpenID Connect ID tokens (OpenID Connect Core 1.0, section 3.1.3.7), for operators who
//! sign in to the console with the organisation's identity provider: the signature by a
//! key of the provider's JWKS (asymmetric algorithms only), `iss`, `aud` (the console's
//! client id), `azp` when there are several audiences, `exp`, `iat` and the `nonce` the
//! sign-in started with.

use std::time::Duration;

use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::JwtError;
use super::jwks::KeySet;
use super::token::{Algorithm, Unverified, string_claim, time_claim};

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_MS: i64 = 60_000;

/// Checks one provider's ID tokens for one client.
#[derive(Debug)]
pub(crate) struct IdTokenVerifier {
    issuer: String,
    client_id: String,
    keys: KeySet,
}

impl IdTokenVerifier {
    /// Tokens from `issuer` for `client_id`, signed by a key of `jwks_url`.
    pub(crate) fn new(
        issuer: String,
        client_id: String,
        jwks_url: String,
        client: reqwest::Client,
    ) -> Self {
        Self {
            issuer,
            client_id,
            keys: KeySet::new(jwks_url, client, Duration::from_secs(60)),
        }
    }

    /// The token's claims, once everything above is checked at `now` (Unix ms).
    pub(crate) async fn verify(
        &self,
        token: &[u8],
        nonce: &str,
        now: i64,
    ) -> Result<Map<String, Value>, JwtError> {
        let unverified = Unverified::parse(token, &Algorithm::ALL)?;
        self.keys.check_signature(&unverified, now).await?;
        let claims = unverified.claims;
        if string_claim(&claims, "iss") != Some(self.issuer.as_str()) {
            return Err(JwtError::UnknownIssuer);
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => return Err(JwtError::MissingClaim("aud")),
        };
        if !audiences.contains(&self.client_id.as_str()) {
            return Err(JwtError::Audience);
        }
        if audiences.len() > 1 && string_claim(&claims, "azp") != Some(self.client_id.as_str()) {
            return Err(JwtError::Audience);
        }
        let exp = time_claim(&claims, "exp").ok_or(JwtError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(LEEWAY_MS) {
            return Err(JwtError::Expired);
        }
        let iat = time_claim(&claims, "iat").ok_or(JwtError::MissingClaim("iat"))?;
        if iat > now.saturating_add(LEEWAY_MS) {
            return Err(JwtError::NotYetValid);
        }
        // The nonce binds the token to this browser's sign-in (no replayed token).
        let presented = string_claim(&claims, "nonce").ok_or(JwtError::MissingClaim("nonce"))?;
        if nonce.is_empty() || !bool::from(presented.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(JwtError::MissingClaim("nonce"));
        }
        if string_claim(&claims, "sub").is_none_or(str::is_empty) {
            return Err(JwtError::MissingClaim("sub"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use serde_json::{Value, json};

    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 key, its JWKS served on loopback, and a verifier for client `console`.
    async fn provider() -> (EcdsaKeyPair, IdTokenVerifier) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let verifier = IdTokenVerifier::new(
            "https://idp.example".to_owned(),
            "console".to_owned(),
            url,
            reqwest::Client::new(),
        );
        (key, verifier)
    }

    fn sign(key: &EcdsaKeyPair, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }

    fn claims(patch: Value) -> Value {
        let mut claims = json!({"iss": "https://idp.example", "aud": "console", "sub": "alice",
            "nonce": "n-1", "iat": NOW / 1000, "exp": NOW / 1000 + 300, "groups": ["otp-admins"]});
        for (name, value) in patch.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    #[tokio::test]
    async fn only_a_fresh_token_for_this_client_and_sign_in_passes() {
        let (key, verifier) = provider().await;
        let good = sign(&key, &claims(json!({})));
        let verified = verifier.verify(good.as_bytes(), "n-1", NOW).await.unwrap();
        assert_eq!(verified["sub"], "alice");

        let refused = |patch: Value, nonce: &'static str| {
            let token = sign(&key, &claims(patch));
            let verifier = &verifier;
            async move { verifier.verify(token.as_bytes(), nonce, NOW).await.err() }
        };
        // Another sign-in's token (a replayed or injected one) carries another nonce.
        assert!(refused(json!({}), "n-2").await.is_some());
        assert!(refused(json!({}), "").await.is_some());
        assert!(refused(json!({"nonce": null}), "n-1").await.is_some());
        assert!(matches!(
            refused(json!({"aud": "other-app"}), "n-1").await,
            Some(JwtError::Audience)
        ));
        // Several audiences need azp naming this client.
        assert!(matches!(
            refused(json!({"aud": ["console", "x"]}), "n-1").await,
            Some(JwtError::Audience)
        ));
        assert!(
            refused(json!({"aud": ["console", "x"], "azp": "console"}), "n-1")
                .await
                .is_none()
        );
        assert!(matches!(
            refused(json!({"iss": "https://evil.example"}), "n-1").await,
            Some(JwtError::UnknownIssuer)
        ));
        assert!(matches!(
            refused(json!({"exp": NOW / 1000 - 120}), "n-1").await,
            Some(JwtError::Expired)
        ));
        assert!(matches!(
            refused(json!({"iat": NOW / 1000 + 3600}), "n-1").await,
            Some(JwtError::NotYetValid)
        ));
        assert!(refused(json!({"sub": ""}), "n-1").await.is_some());
        // A changed claim breaks the signature.
        let (head, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{signature}",
            b64(claims(json!({"sub": "mallory"})).to_string().as_bytes())
        );
        assert!(matches!(
            verifier.verify(forged.as_bytes(), "n-1", NOW).await,
            Err(JwtError::Signature)
        ));
        // So does an unsigned token.
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none"}).to_string().as_bytes()),
            b64(claims(json!({})).to_string().as_bytes())
        );
        assert!(verifier.verify(none.as_bytes(), "n-1", NOW).await.is_err());
    }
}
