//! The operator's session: a cookie holding who signed in, with which role, until when,
//! and the session's CSRF token, signed with HMAC-SHA256 so a browser can carry it but not
//! change it. Nothing is stored on the server: any instance with the same session key
//! reads it, and signing out clears it from the browser. A key-based session is checked
//! against the key on every request (see `console::operator`), so revoking the key ends it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "potp_console";
/// The short-lived cookie that carries the sign-in form's CSRF token before a session.
pub(crate) const SIGNIN_COOKIE: &str = "potp_console_signin";

/// What an operator may do: viewers read every page, admins also change keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Reads usage, audit and keys.
    Viewer,
    /// Also creates, rotates and revokes keys.
    Admin,
}

/// How the operator signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Via {
    /// With an API key (its public id; the secret is never kept).
    Key { id: String },
    /// With the organisation's identity provider (the token's `sub`).
    Sso { subject: String },
}

/// One operator's session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Who, as the audit trail names them (the key's owner, or the SSO user's name).
    pub(crate) operator: String,
    pub(crate) role: Role,
    pub(crate) via: Via,
    /// Unix ms after which the cookie is refused, whatever the browser does with it.
    pub(crate) expires: i64,
    /// Every form of this session carries it back (compared in constant time).
    pub(crate) csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The CSRF token is a secret of the session: never printed.
        f.debug_struct("Session")
            .field("operator", &self.operator)
            .field("role", &self.role)
            .field("via", &self.via)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// The key sessions are signed with.
pub(crate) struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A session key shorter than 32 bytes.
#[derive(Debug, thiserror::Error)]
#[error("the console session key must be at least 32 bytes")]
pub struct WeakSessionKey;

impl SessionKey {
    /// A key from at least 32 secret bytes (every instance behind one address shares it).
    pub(crate) fn new(secret: &[u8]) -> Result<Self, WeakSessionKey> {
        if secret.len() < 32 {
            return Err(WeakSessionKey);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// A fresh random key: sessions end when this process does.
    pub(crate) fn random() -> Option<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).ok()?;
        Self::new(&secret).ok()
    }

    /// The cookie value: the session, then its signature.
    pub(crate) fn seal(&self, session: &Session) -> String {
        self.seal_value(session)
    }

    /// The session in `value`, if this key signed it and it has not expired by `now`.
    pub(crate) fn open(&self, value: &str, now: i64) -> Option<Session> {
        let session: Session = self.open_value(value)?;
        (session.expires > now).then_some(session)
    }

    /// Any value as `base64url(json).base64url(hmac)`.
    pub(crate) fn seal_value<T: Serialize>(&self, value: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let tag = hmac::sign(&self.0, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The value [`Self::seal_value`] sealed, if this key signed it.
    pub(crate) fn open_value<T: serde::de::DeserializeOwned>(&self, value: &str) -> Option<T> {
        let (payload, tag) = value.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // ring compares the tag in constant time.
        hmac::verify(&self.0, payload.as_bytes(), &tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

/// 32 random bytes, URL-safe: CSRF tokens.
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a form's token is the expected one, in constant time (an empty one never is).
pub(crate) fn csrf_matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn session(expires: i64) -> Session {
        Session {
            operator: "platform-team".to_owned(),
            role: Role::Admin,
            via: Via::Key {
                id: "k_1".to_owned(),
            },
            expires,
            csrf: "token".to_owned(),
        }
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let key = SessionKey::new(&[7u8; 32]).unwrap();
        let sealed = key.seal(&session(1_000));
        assert_eq!(key.open(&sealed, 999), Some(session(1_000)));
        assert_eq!(key.open(&sealed, 1_000), None);
    }

    #[test]
    fn a_changed_or_foreign_cookie_is_refused() {
        let key = SessionKey::new(&[7u8; 32]).unwrap();
        let sealed = key.seal(&session(1_000));
        // A viewer who rewrites their role keeps the old signature.
        let (payload, tag) = sealed.split_once('.').unwrap();
        let mut forged =
            serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap();
        forged["expires"] = serde_json::json!(i64::MAX);
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(key.open(&forged, 0), None);
        let other = SessionKey::new(&[8u8; 32]).unwrap();
        assert_eq!(other.open(&sealed, 0), None);
        assert_eq!(key.open("not-a-cookie", 0), None);
        assert!(SessionKey::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
        assert!(!csrf_matches("", ""));
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
