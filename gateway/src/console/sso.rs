//! Single sign-on for operators, the browser's side (the client is `oidc.rs`), with the organisation's identity provider over OpenID
//! Connect: the authorization code flow with PKCE (S256), a `state` and a `nonce`, the
//! provider found by discovery (`/.well-known/openid-configuration`), the ID token checked
//! against the provider's JWKS. A role or group claim maps to `admin` or `viewer`; a user
//! with neither is refused. Okta and Auth0 are the expected providers; any certified one
//! works.
//!
//! The flow's state (state, nonce, PKCE verifier) rides in a signed, single-use cookie
//! that is `SameSite=Lax` (it must come back on the provider's redirect) and lives ten
//! minutes; the session cookie stays `Strict`, so the callback answers with a page that
//! moves on to the overview by itself (a same-site navigation, which sends it).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use tracing::warn;

use super::html::{Html, Nav, page};
use super::operator::PageLang;
use super::session::{COOKIE, Session, Via, csrf_matches, random_token};
use super::{cookie, query_param, set_cookie, set_lax_cookie};
use crate::audit::AuditHandle;
use crate::outcome::Outcome;
use crate::state::AppState;

/// The cookie holding a sign-in in progress.
const PENDING_COOKIE: &str = "potp_console_sso";
/// How long a sign-in may take at the provider.
const PENDING_MS: i64 = 10 * 60_000;

/// A sign-in in progress, sealed into its cookie.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    expires: i64,
}

/// `GET /console/sso/start`: off to the provider, with PKCE, state and nonce.
pub(crate) async fn start(State(state): State<AppState>, PageLang(lang): PageLang) -> Response {
    let Some((console, sso)) = state
        .console
        .as_ref()
        .and_then(|console| Some((console, console.sso.as_ref()?)))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let provider = match sso.provider().await {
        Ok(provider) => provider,
        Err(error) => {
            warn!(error = %error, "console sso: the identity provider cannot be reached");
            return message(
                lang,
                lang.text().sso_unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
            );
        }
    };
    let (Some(state_token), Some(nonce), Some(verifier)) =
        (random_token(), random_token(), random_token())
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let settings = sso.settings();
    let Ok(url) = reqwest::Url::parse_with_params(
        &provider.authorization_endpoint,
        [
            ("response_type", "code"),
            ("client_id", settings.client_id.as_str()),
            ("redirect_uri", settings.redirect_url.as_str()),
            ("scope", "openid profile email"),
            ("state", state_token.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    ) else {
        return message(
            lang,
            lang.text().sso_unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
        );
    };
    let pending = Pending {
        state: state_token,
        nonce,
        verifier,
        expires: state.now_millis() + PENDING_MS,
    };
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_lax_cookie(
            PENDING_COOKIE,
            &console.key.seal_value(&pending),
            "/console/sso",
            PENDING_MS / 1000,
        ),
    );
    response
}

/// `GET /console/sso/callback?code=&state=`: the provider's answer becomes a session.
pub(crate) async fn callback(
    State(state): State<AppState>,
    audit: AuditHandle,
    PageLang(lang): PageLang,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let t = lang.text();
    let Some((console, sso)) = state
        .console
        .as_ref()
        .and_then(|console| Some((console, console.sso.as_ref()?)))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let query = query.unwrap_or_default();
    let now = state.now_millis();
    let pending: Option<Pending> = cookie(&headers, PENDING_COOKIE)
        .and_then(|value| console.key.open_value(value))
        .filter(|pending: &Pending| pending.expires > now);
    let Some(pending) = pending else {
        return message(lang, t.sso_expired, StatusCode::BAD_REQUEST, "sso_expired");
    };
    if !csrf_matches(
        &pending.state,
        &query_param(&query, "state").unwrap_or_default(),
    ) {
        return message(lang, t.sso_expired, StatusCode::BAD_REQUEST, "sso_state");
    }
    let Some(code) = query_param(&query, "code") else {
        // The provider said no (`error=access_denied`, ...).
        return message(lang, t.sso_refused, StatusCode::FORBIDDEN, "sso_refused");
    };
    let refused = |error: String| {
        warn!(error = %error, "console sso: sign-in refused");
        message(lang, t.sso_refused, StatusCode::FORBIDDEN, "sso_refused")
    };
    let provider = match sso.provider().await {
        Ok(provider) => provider,
        Err(error) => return refused(error),
    };
    let id_token = match sso.redeem(&provider, &code, &pending.verifier).await {
        Ok(token) => token,
        Err(error) => return refused(error),
    };
    let claims = match provider
        .id_tokens
        .verify(id_token.as_bytes(), &pending.nonce, now)
        .await
    {
        Ok(claims) => claims,
        Err(error) => return refused(format!("id token: {error}")),
    };
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let operator = ["email", "preferred_username", "name"]
        .into_iter()
        .find_map(|name| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        })
        .unwrap_or(subject.as_str())
        .chars()
        .take(128)
        .collect::<String>();
    audit
        .record()
        .caller(&operator, Some(&format!("sso:{subject}")));
    let Some(role) = sso.role(&claims) else {
        return message(
            lang,
            t.sso_no_role,
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        );
    };
    let Some(csrf) = random_token() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ttl = i64::try_from(console.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(ttl);
    let session = Session {
        operator,
        role,
        via: Via::Sso { subject },
        expires,
        csrf,
    };
    // A page, not a redirect: the overview request it makes is same-site, so the Strict
    // session cookie goes with it.
    let mut body = Html::default();
    body.raw("<p><a href=\"/console/overview\">")
        .text(t.overview)
        .raw("</a></p>");
    let html = page(lang, t.sign_in, Nav::SignIn, None, "/console/signin", &body).replacen(
        "<head>",
        "<head><meta http-equiv=\"refresh\" content=\"0;url=/console/overview\">",
        1,
    );
    let mut response = axum::response::Html(html).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &console.key.seal(&session), "/console", ttl / 1000),
    );
    headers.append(
        header::SET_COOKIE,
        set_lax_cookie(PENDING_COOKIE, "", "/console/sso", 0),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn message(
    lang: super::i18n::Lang,
    text: &str,
    status: StatusCode,
    outcome: &'static str,
) -> Response {
    let t = lang.text();
    let mut body = Html::default();
    body.raw("<p class=\"error\" role=\"alert\">")
        .text(text)
        .raw("</p><p><a href=\"/console/signin\">")
        .text(t.sign_in)
        .raw("</a></p>");
    let html = page(lang, t.sign_in, Nav::SignIn, None, "/console/signin", &body);
    let mut response = (status, axum::response::Html(html)).into_response();
    response.extensions_mut().insert(Outcome(outcome));
    response
}
