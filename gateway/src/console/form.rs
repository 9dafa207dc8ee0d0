//! A submitted HTML form (`application/x-www-form-urlencoded`), read only from a request
//! the browser says comes from the console's own pages: a cross-site form post (CSRF)
//! is refused before its fields are read, and every form also carries a token.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The fields of a form post (the last value of a repeated name).
#[derive(Debug)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// A field's value, or empty.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        if !same_origin(request.headers()) {
            return Err(
                (StatusCode::FORBIDDEN, "cross-site form posts are refused").into_response()
            );
        }
        let urlencoded = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !urlencoded {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a form post is expected",
            )
                .into_response());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// Whether the browser says the request comes from this origin: `Sec-Fetch-Site` (every
/// current browser sends it) is `same-origin`, or, from an older one, `Origin` names the
/// `Host` the request was sent to. A request with neither (a script, not a browser) passes
/// here and still needs the form's token.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_origin_may_post() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "https://ops.example.com"),
            ("host", "ops.example.com")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "ops.example.com")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "ops.example.com")
        ])));
        assert!(same_origin(&headers(&[])));
    }
}
