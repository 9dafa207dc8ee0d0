//! The operator console: server-rendered pages under `/console` for a platform team,
//! behind a sign-in (`console/signin.rs`). One small script (copy buttons), no external
//! asset (all embedded), charts drawn as SVG on the server, every page in English and
//! Japanese.
//! Every answer carries a strict Content-Security-Policy, `no-store` and anti-framing
//! headers; sessions are signed cookies (`HttpOnly`, `Secure`, `SameSite=Strict`) and
//! every form carries a CSRF token.
//!
//! | page | what |
//! |---|---|
//! | `GET /console/signin`, `POST /console/signin` | sign in with an admin or viewer key |
//! | `POST /console/signout` | sign out |
//! | `GET /console/overview` | the last 24 hours: sends per hour by system, delivery, cost, refusals, budgets |
//! | `GET /console/keys`, `POST /console/keys`, `.../{id}/rotate`, `.../{id}/revoke` | every key; administrators create, rotate and revoke |

mod chart;
mod form;
mod html;
mod i18n;
mod keys;
mod operator;
mod overview;
mod session;
mod signin;

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

use session::SessionKey;
pub use session::WeakSessionKey;

use crate::state::AppState;

/// Sessions last this long unless configured (a working day).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// How the console signs its sessions, and for how long.
pub struct ConsoleSettings {
    key: Option<SessionKey>,
    session_ttl: Duration,
    own_listener: bool,
}

impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSettings")
            .field("session_ttl", &self.session_ttl)
            .field("own_listener", &self.own_listener)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleSettings {
    /// A random session key (sessions end with the process, and each instance has its
    /// own: set [`Self::session_key`] behind a load balancer) and 8-hour sessions.
    pub fn new() -> Self {
        Self {
            key: None,
            session_ttl: DEFAULT_SESSION_TTL,
            own_listener: false,
        }
    }

    /// Signs sessions with `secret` (at least 32 bytes), shared by every instance.
    ///
    /// # Errors
    /// A secret shorter than 32 bytes.
    pub fn session_key(mut self, secret: &[u8]) -> Result<Self, WeakSessionKey> {
        self.key = Some(SessionKey::new(secret)?);
        Ok(self)
    }

    /// How long a session lasts after sign-in (a key's own expiry ends it sooner).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Serves the console from [`Gateway::console_router`](crate::Gateway::console_router)
    /// only, for a listener of its own (an internal address), not beside the API.
    pub fn own_listener(mut self, own: bool) -> Self {
        self.own_listener = own;
        self
    }

    /// `reserved`: the systems the configuration defines (no key may be owned by one).
    pub(crate) fn into_console(self, reserved: Vec<String>) -> Option<Console> {
        Some(Console {
            reserved,
            key: match self.key {
                Some(key) => key,
                None => SessionKey::random()?,
            },
            session_ttl: self.session_ttl,
            own_listener: self.own_listener,
        })
    }
}

/// The console's part of the shared state.
#[derive(Debug)]
pub(crate) struct Console {
    pub(crate) key: SessionKey,
    /// Systems the configuration defines (static tokens' tenants, JWT clients).
    pub(crate) reserved: Vec<String>,
    pub(crate) session_ttl: Duration,
    pub(crate) own_listener: bool,
}

/// The console's routes; `audited` wraps the sign-in post in the audit layer.
pub(crate) fn routes(
    audited: impl Fn(&'static str, MethodRouter<AppState>) -> MethodRouter<AppState>,
) -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route(
            "/console/signin",
            get(signin::form).merge(audited("console_signin", post(signin::submit))),
        )
        .route("/console/signout", post(signin::sign_out))
        .route("/console/overview", get(overview::overview))
        .route(
            "/console/keys",
            get(keys::list).merge(audited("console_key_create", post(keys::create))),
        )
        .route(
            "/console/keys/{id}/rotate",
            audited("console_key_rotate", post(keys::rotate)),
        )
        .route(
            "/console/keys/{id}/revoke",
            get(keys::confirm_revoke).merge(audited("console_key_revoke", post(keys::revoke))),
        )
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/favicon.svg", get(favicon))
        .route("/console/assets/console.js", get(script))
        .layer(axum::middleware::from_fn(page_headers))
}

const STYLESHEET: &str = include_str!("assets/console.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

const SCRIPT: &str = include_str!("assets/console.js");

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

const FAVICON: &str = include_str!("assets/favicon.svg");

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// Only the console's own stylesheet, script and inline SVG; no inline script, no frame,
/// forms only to itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Every console answer: the security headers, `no-store` for pages (they show usage and
/// keys), and the language cookie when `?lang=` switched it.
async fn page_headers(request: Request, next: Next) -> Response {
    let lang = request
        .uri()
        .query()
        .and_then(|q| query_param(q, "lang"))
        .filter(|l| matches!(l.as_str(), "en" | "ja"));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(lang) = lang {
        headers.append(
            header::SET_COOKIE,
            set_cookie(i18n::LANG_COOKIE, &lang, "/console", 365 * 86_400),
        );
    }
    response
}

/// A cookie for `path`, `HttpOnly; Secure; SameSite=Strict`, kept `max_age` seconds (0
/// deletes it). Values are base64url or fixed words, never needing quotes.
pub(crate) fn set_cookie(name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        max_age.max(0)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// One query parameter's value.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; potp_console_lang=ja"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("potp_console=sealed.tag"),
        );
        assert_eq!(cookie(&headers, "potp_console"), Some("sealed.tag"));
        assert_eq!(cookie(&headers, "potp_console_lang"), Some("ja"));
        assert_eq!(cookie(&headers, "potp"), None);
        let set = set_cookie("potp_console", "v", "/console", -5);
        assert_eq!(
            set.to_str().ok(),
            Some("potp_console=v; Path=/console; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
        );
    }
}
