//! One file per endpoint group.

pub(crate) mod fields;
pub(crate) mod okta;
pub(crate) mod ops;

use axum::http::{HeaderMap, header};

/// Whether the request says its body is JSON (`application/json`, any parameters).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
