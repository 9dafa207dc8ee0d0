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
//! | `GET /console/sso/start`, `/console/sso/callback` | sign in with the identity provider (OpenID Connect, PKCE) |
//! | `POST /console/signout` | sign out |
//! | `GET /console/overview` | the last 24 hours: sends per hour by system, delivery, cost, refusals, budgets |
//! | `GET /console/systems[?system=&from=&to=]`, `/console/systems/usage.csv` | usage and cost per system by day, country and provider; its budgets and keys; CSV |
//! | `GET /console/abuse[?from=&to=]` | refusals per day by limit, conversion per country, the most-sent prefixes, what the conversion guard throttles now and why |
//! | `GET /console/providers[?from=&to=]` | each provider's calls, latency, failures and breaker now; sends, receipts and failures per country |
//! | `GET /console/audit[?system=&endpoint=&outcome=&from=&to=&before=]`, `/console/audit/{id}`, `/console/audit.csv` | the audit trail searched, a record, CSV |
//! | `GET /console/keys`, `POST /console/keys`, `.../{id}/rotate`, `.../{id}/revoke` | every key; administrators create, rotate and revoke |

mod abuse;
mod audit;
mod chart;
mod form;
mod html;
mod i18n;
mod keys;
mod oidc;
mod operator;
mod overview;
mod providers;
mod session;
pub(crate) mod settings;
mod signin;
mod sso;
mod systems;
mod table;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

pub use oidc::{SsoError, SsoSettings};
pub use session::WeakSessionKey;
pub use settings::{ConsoleSettings, DEFAULT_SESSION_TTL};

use crate::state::AppState;

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
        .route("/console/sso/start", get(sso::start))
        .route(
            "/console/sso/callback",
            audited("console_signin_sso", get(sso::callback)),
        )
        .route("/console/overview", get(overview::overview))
        .route("/console/systems", get(systems::systems))
        .route("/console/systems/usage.csv", get(systems::usage_csv))
        .route("/console/abuse", get(abuse::abuse))
        .route("/console/providers", get(providers::providers))
        .route("/console/audit", get(audit::search))
        .route("/console/audit.csv", get(audit::export))
        .route("/console/audit/{id}", get(audit::record))
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
    cookie_with(name, value, path, max_age, "Strict")
}

/// A cookie as [`set_cookie`], but `SameSite=Lax`: sent on the identity provider's
/// redirect back (a cross-site navigation), for the single-use sign-in state only.
pub(crate) fn set_lax_cookie(name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    cookie_with(name, value, path, max_age, "Lax")
}

fn cookie_with(name: &str, value: &str, path: &str, max_age: i64, same_site: &str) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; Secure; SameSite={same_site}",
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
