//! An issuer's signing keys (its JWKS), fetched on first use and cached.
//!
//! A token naming an unknown `kid` triggers one refetch (the issuer may have rotated its
//! keys), at most once per `min_refetch` however many such tokens arrive, so forged
//! `kid`s cannot make the gateway hammer the issuer. Concurrent requests share one fetch.
//! Keys older than their `Cache-Control: max-age` (bounded to `[min_refetch, 24 h]`,
//! default one hour) are refreshed; if that fails, the keys in hand are kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tracing::{info, warn};

use super::JwtError;
use super::token::PublicKey;

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// JWKS documents over this are refused (real ones hold 2-3 keys, a few KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A key and the algorithm it is pinned to, if the JWKS says.
#[derive(Debug, Clone)]
pub(crate) struct Jwk {
    pub(crate) key: PublicKey,
    pub(crate) alg: Option<String>,
}

#[derive(Debug, Default)]
struct Cached {
    keys: HashMap<String, Arc<Jwk>>,
    /// Unix ms of the last fetch that succeeded.
    fetched_at: Option<i64>,
    max_age_ms: i64,
}

/// One issuer's keys.
#[derive(Debug)]
pub(crate) struct KeySet {
    url: String,
    client: reqwest::Client,
    min_refetch_ms: i64,
    cached: RwLock<Arc<Cached>>,
    /// Unix ms of the last fetch attempt; held across a fetch so callers queue behind it.
    last_attempt: tokio::sync::Mutex<Option<i64>>,
}

impl KeySet {
    pub(crate) fn new(url: String, client: reqwest::Client, min_refetch: Duration) -> Self {
        Self {
            url,
            client,
            min_refetch_ms: millis(min_refetch),
            cached: RwLock::new(Arc::new(Cached::default())),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn snapshot(&self) -> Arc<Cached> {
        match self.cached.read() {
            Ok(cached) => Arc::clone(&cached),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key `kid` names (or the only key, for a token without `kid`), fetching the
    /// JWKS when it is unknown or stale and the rate limit allows.
    pub(crate) async fn key(&self, kid: Option<&str>, now: i64) -> Result<Arc<Jwk>, JwtError> {
        let cached = self.snapshot();
        let stale = cached
            .fetched_at
            .is_none_or(|at| now.saturating_sub(at) >= cached.max_age_ms);
        if let Some(found) = find(&cached, kid) {
            if stale {
                // Refresh in line, but a failure keeps the key in hand.
                let _ = self.refetch(now, cached.fetched_at).await;
            }
            return Ok(found);
        }
        match self.refetch(now, cached.fetched_at).await {
            Ok(fresh) => find(&fresh, kid).ok_or(JwtError::UnknownKey),
            Err(Refetch::TooSoon) if cached.fetched_at.is_some() => Err(JwtError::UnknownKey),
            Err(_) => Err(JwtError::KeysUnavailable),
        }
    }

    /// Whether a key of this set signed `token` with the algorithm the key is pinned to.
    pub(crate) async fn check_signature(
        &self,
        token: &super::token::Unverified,
        now: i64,
    ) -> Result<(), JwtError> {
        let jwk = self.key(token.kid.as_deref(), now).await?;
        if jwk
            .alg
            .as_deref()
            .is_some_and(|alg| alg != token.alg.name())
        {
            return Err(JwtError::KeyAlgorithm);
        }
        if !token.signed_by(&jwk.key) {
            return Err(JwtError::Signature);
        }
        Ok(())
    }

    /// Fetches unless someone fetched since `seen` or an attempt was made too recently.
    async fn refetch(&self, now: i64, seen: Option<i64>) -> Result<Arc<Cached>, Refetch> {
        let mut last = self.last_attempt.lock().await;
        let current = self.snapshot();
        if current.fetched_at != seen {
            return Ok(current);
        }
        if last.is_some_and(|at| now.saturating_sub(at) < self.min_refetch_ms) {
            return Err(Refetch::TooSoon);
        }
        *last = Some(now);
        match self.fetch().await {
            Ok((keys, max_age)) => {
                info!(url = %self.url, keys = keys.len(), "fetched the issuer's signing keys");
                let fresh = Arc::new(Cached {
                    keys,
                    fetched_at: Some(now),
                    max_age_ms: max_age.max(self.min_refetch_ms),
                });
                match self.cached.write() {
                    Ok(mut cached) => *cached = Arc::clone(&fresh),
                    Err(poisoned) => *poisoned.into_inner() = Arc::clone(&fresh),
                }
                Ok(fresh)
            }
            Err(error) => {
                warn!(url = %self.url, error = %error, "could not fetch the issuer's signing keys");
                Err(Refetch::Failed)
            }
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<Jwk>>, i64), String> {
        let response = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| error.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(LONGEST_MAX_AGE);
        let body = response
            .bytes()
            .await
            .map_err(|error| error.without_url().to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("the JWKS is too large".to_owned());
        }
        let keys = parse_jwks(&body)?;
        Ok((keys, millis(max_age)))
    }
}

#[derive(Debug)]
enum Refetch {
    TooSoon,
    Failed,
}

fn find(cached: &Cached, kid: Option<&str>) -> Option<Arc<Jwk>> {
    match kid {
        Some(kid) => cached.keys.get(kid).cloned(),
        None if cached.keys.len() == 1 => cached.keys.values().next().cloned(),
        None => None,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `max-age` from a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().parse().ok().map(Duration::from_secs))
            .flatten()
    })
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<RawJwk>,
}

#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(rename = "use", default)]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The signing keys of a JWKS document, by `kid`. Encryption keys, key types we do not
/// verify with and malformed keys are skipped (one bad key must not hide the others).
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<Jwk>>, String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|_| "the JWKS is not a key set".to_owned())?;
    let mut keys = HashMap::new();
    for (index, raw) in set.keys.into_iter().enumerate() {
        if raw.use_.as_deref().is_some_and(|use_| use_ != "sig") {
            continue;
        }
        let Some(key) = public_key(&raw) else {
            continue;
        };
        let kid = raw.kid.unwrap_or_else(|| format!("#{index}"));
        keys.insert(kid, Arc::new(Jwk { key, alg: raw.alg }));
    }
    Ok(keys)
}

fn public_key(raw: &RawJwk) -> Option<PublicKey> {
    let bytes = |field: &Option<String>| URL_SAFE_NO_PAD.decode(field.as_deref()?).ok();
    let point = |size: usize| {
        let (x, y) = (bytes(&raw.x)?, bytes(&raw.y)?);
        (x.len() == size && y.len() == size).then(|| [&[4u8][..], &x, &y].concat())
    };
    match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => Some(PublicKey::Rsa {
            n: bytes(&raw.n)?,
            e: bytes(&raw.e)?,
        }),
        ("EC", Some("P-256")) => point(32).map(PublicKey::P256),
        ("EC", Some("P-384")) => point(48).map(PublicKey::P384),
        ("OKP", Some("Ed25519")) => bytes(&raw.x)
            .filter(|x| x.len() == 32)
            .map(PublicKey::Ed25519),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600, must-revalidate"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn keeps_signing_keys_and_skips_the_rest() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let y = URL_SAFE_NO_PAD.encode([2u8; 32]);
        let body = format!(
            r#"{{"keys":[
                {{"kty":"EC","crv":"P-256","kid":"ec","x":"{x}","y":"{y}","alg":"ES256"}},
                {{"kty":"EC","crv":"P-256","kid":"enc","x":"{x}","y":"{y}","use":"enc"}},
                {{"kty":"EC","crv":"P-256","kid":"short","x":"AA","y":"{y}"}},
                {{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}},
                {{"kty":"RSA","kid":"rsa","n":"AQAB","e":"AQAB"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"{x}"}}
            ]}}"#
        );
        let keys = parse_jwks(body.as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec", "ed", "rsa"]);
        assert_eq!(keys["ec"].alg.as_deref(), Some("ES256"));
        assert!(
            matches!(&keys["ec"].key, PublicKey::P256(point) if point.len() == 65 && point[0] == 4)
        );
        assert!(parse_jwks(b"[]").is_err());
    }
}
