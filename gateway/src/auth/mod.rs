//! Caller authentication: API keys and personal tokens ([`api_key`]) with scopes and
//! source-IP allow-lists, and the shared secrets of Okta's header and bearer surfaces,
//! compared in constant time. How a request's caller is found with them, against the
//! gateway's state, is `routes/caller.rs`.

pub mod api_key;
pub mod cidr;
pub(crate) mod failures;
pub mod forwarded;
pub mod jwt;
pub mod key_admin;
mod key_lookup;
pub mod scope;
mod shared_secret;

use axum::http::{HeaderMap, header};

pub(crate) use key_lookup::{KeyLookup, key_lookup};
pub(crate) use shared_secret::SharedSecret;

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then_some(token)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_bearer_tokens_only() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            bearer(&headers).map(<[u8]>::to_vec)
        };
        assert_eq!(with("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(with("bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
