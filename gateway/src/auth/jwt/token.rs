//! One compact JWS access token, read and checked: the header's algorithm and type, the
//! signature against a key from the issuer's JWKS, then the claims.
//!
//! Only asymmetric algorithms exist here. `none` and every HMAC algorithm are refused
//! before any key is looked up, so a token "signed" with a public key as an HMAC secret
//! cannot pass (the classic algorithm-confusion attack).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

use super::JwtError;

/// Tokens longer than this are refused unread (real access tokens are 1-2 KiB).
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A signature algorithm this gateway verifies (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (every authorization server supports it).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, the default allow-list.
    pub const ALL: [Self; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm named `name`, if it is one of ours (never `none` or `HS*`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

/// A verification key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point (`0x04 || x || y`) on P-256.
    P256(Vec<u8>),
    /// An uncompressed point on P-384.
    P384(Vec<u8>),
    /// 32 bytes.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// Whether `signature` over `message` is valid under `alg` with this key. A key of the
    /// wrong type for `alg` never verifies.
    pub(crate) fn verifies(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        let rsa = |params: &'static signature::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok()
        };
        match (self, alg) {
            (Self::Rsa { n, e }, Algorithm::Rs256) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e)
            }
            (Self::Rsa { n, e }, Algorithm::Rs384) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e)
            }
            (Self::Rsa { n, e }, Algorithm::Rs512) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA512, n, e)
            }
            (Self::Rsa { n, e }, Algorithm::Ps256) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e)
            }
            (Self::Rsa { n, e }, Algorithm::Ps384) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA384, n, e)
            }
            (Self::Rsa { n, e }, Algorithm::Ps512) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA512, n, e)
            }
            (Self::P256(point), Algorithm::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (Self::P384(point), Algorithm::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            (Self::Ed25519(x), Algorithm::EdDsa) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// The JOSE header fields we read.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub(crate) struct Unverified {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// Whether `typ` is `at+jwt` (RFC 9068 section 2.1).
    pub(crate) typed: bool,
    pub(crate) claims: serde_json::Map<String, Value>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl Unverified {
    /// Splits and decodes `token`, refusing `none`, HMAC and any algorithm not in
    /// `allowed` before anything else is read.
    pub(crate) fn parse(token: &[u8], allowed: &[Algorithm]) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split(|byte| *byte == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |part: &[u8]| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
        let alg = Algorithm::from_name(&header.alg)
            .filter(|alg| allowed.contains(alg))
            .ok_or_else(|| JwtError::Algorithm(header.alg.chars().take(16).collect()))?;
        // We understand no extension, so any critical one must be refused (RFC 7515 4.1.11).
        if header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        let typed = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        let claims = match serde_json::from_slice(&decode(payload)?) {
            Ok(Value::Object(claims)) => claims,
            _ => return Err(JwtError::Malformed),
        };
        let signing_input = token[..header_len(token)].to_vec();
        Ok(Self {
            alg,
            kid: header.kid,
            typed,
            claims,
            signing_input,
            signature: decode(signature)?,
        })
    }

    /// Whether `key` signed this token.
    pub(crate) fn signed_by(&self, key: &PublicKey) -> bool {
        key.verifies(self.alg, &self.signing_input, &self.signature)
    }
}

/// The length of `header.payload`, the signing input.
fn header_len(token: &[u8]) -> usize {
    token
        .iter()
        .rposition(|byte| *byte == b'.')
        .unwrap_or(token.len())
}

/// A claim as a string, if it is one.
pub(crate) fn string_claim<'a>(
    claims: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// A NumericDate claim in Unix milliseconds (fractions allowed, RFC 7519 section 2).
pub(crate) fn time_claim(claims: &serde_json::Map<String, Value>, name: &str) -> Option<i64> {
    let seconds = claims.get(name)?.as_f64()?;
    seconds
        .is_finite()
        .then(|| (seconds * 1000.0).clamp(i64::MIN as f64, i64::MAX as f64) as i64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> Vec<u8> {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(b"sig")
        )
        .into_bytes()
    }

    #[test]
    fn refuses_none_hmac_and_algorithms_not_allowed() {
        for alg in ["none", "HS256", "HS512", "RS1", "rs256"] {
            let parsed = Unverified::parse(
                &token(&format!(r#"{{"alg":"{alg}"}}"#), "{}"),
                &Algorithm::ALL,
            );
            assert!(matches!(parsed, Err(JwtError::Algorithm(ref a)) if a == alg));
        }
        let es_only = Unverified::parse(&token(r#"{"alg":"RS256"}"#, "{}"), &[Algorithm::Es256]);
        assert!(matches!(es_only, Err(JwtError::Algorithm(_))));
    }

    #[test]
    fn reads_type_kid_and_claims() {
        let parsed = Unverified::parse(
            &token(
                r#"{"alg":"ES256","kid":"k1","typ":"at+JWT"}"#,
                r#"{"iss":"x","exp":1.5}"#,
            ),
            &Algorithm::ALL,
        )
        .unwrap();
        assert_eq!(parsed.alg, Algorithm::Es256);
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert!(parsed.typed);
        assert_eq!(time_claim(&parsed.claims, "exp"), Some(1500));
        assert_eq!(string_claim(&parsed.claims, "iss"), Some("x"));
        let untyped = Unverified::parse(
            &token(r#"{"alg":"ES256","typ":"JWT"}"#, "{}"),
            &Algorithm::ALL,
        )
        .unwrap();
        assert!(!untyped.typed);
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            b"a.b".to_vec(),
            b"a.b.c.d".to_vec(),
            token(r#"{"alg":"ES256","crit":["x"]}"#, "{}"),
            token(r#"{"alg":"ES256"}"#, "[1]"),
            b"%%%.e30.e30".to_vec(),
            vec![b'a'; MAX_TOKEN_BYTES + 1],
        ] {
            assert!(matches!(
                Unverified::parse(&bad, &Algorithm::ALL),
                Err(JwtError::Malformed)
            ));
        }
    }
}
