//! Signing in and out. Without single sign-on, an operator signs in with an API key that
//! has `keys:admin` (an administrator) or `usage:read:all` (a viewer): the key is checked
//! like a request's (checksum, hash, expiry, revocation, address allow-list), a wrong one
//! counts against its network like any failed authentication, and a good one is recorded
//! in the audit trail (`console_signin`, under the key's system and id). The key itself is
//! never kept: the session names its id, and is checked against it on every page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::form::Form;
use super::html::{Html, Nav, page};
use super::i18n::Lang;
use super::operator::{Operator, PageLang, role_of, session_of};
use super::session::{COOKIE, SIGNIN_COOKIE, Session, Via, csrf_matches, random_token};
use super::{cookie, set_cookie};
use crate::audit::AuditHandle;
use crate::outcome::Outcome;
use crate::routes::caller::{Peer, check_address, failed_authentication, find_key};
use crate::routes::extract::Screened;
use crate::state::AppState;

/// `GET /console/signin`: the form (or the overview, when already signed in).
pub(crate) async fn form(
    State(state): State<AppState>,
    PageLang(lang): PageLang,
    headers: HeaderMap,
) -> Response {
    if session_of(&state, &headers).is_some() {
        return Redirect::to("/console/overview").into_response();
    }
    signin_page(&state, lang, None, StatusCode::OK, "ok")
}

/// `POST /console/signin`: checks the key and its form token, then starts a session.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Screened(network): Screened,
    audit: AuditHandle,
    peer: Peer,
    PageLang(lang): PageLang,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let t = lang.text();
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if !csrf_matches(expected, form.get("csrf")) {
        return signin_page(
            &state,
            lang,
            Some(t.form_expired),
            StatusCode::FORBIDDEN,
            "csrf",
        );
    }
    let key = match find_key(&state, form.get("key").trim().as_bytes()).await {
        Ok(key) => key,
        Err(problem) if problem.status == StatusCode::UNAUTHORIZED => {
            failed_authentication(&state, network);
            return signin_page(
                &state,
                lang,
                Some(t.key_refused),
                problem.status,
                "unauthorized",
            );
        }
        Err(problem) => {
            return signin_page(
                &state,
                lang,
                Some(t.unavailable),
                problem.status,
                problem.code,
            );
        }
    };
    audit.record().caller(&key.owner, Some(&key.id));
    let now = state.now_millis();
    if !key.is_live(now) {
        failed_authentication(&state, network);
        return signin_page(
            &state,
            lang,
            Some(t.key_refused),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    if let Err(problem) = check_address(&state, &key, &headers, peer) {
        return signin_page(
            &state,
            lang,
            Some(t.key_refused),
            problem.status,
            problem.code,
        );
    }
    let Some(role) = role_of(key.scopes) else {
        return signin_page(
            &state,
            lang,
            Some(t.key_lacks_scope),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        );
    };
    let (Some(console), Some(csrf)) = (state.console.as_ref(), random_token()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no session").into_response();
    };
    crate::routes::caller::touch_key(&state, &key, now).await;
    let ttl = i64::try_from(console.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires = key.expires_at.map_or(now.saturating_add(ttl), |at| {
        at.min(now.saturating_add(ttl))
    });
    let session = Session {
        operator: key.owner.clone(),
        role,
        via: Via::Key { id: key.id.clone() },
        expires,
        csrf,
    };
    let mut response = Redirect::to("/console/overview").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            COOKIE,
            &console.key.seal(&session),
            "/console",
            (expires - now) / 1000,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", "/console/signin", 0),
    );
    response
}

/// `POST /console/signout`: ends the session in this browser.
pub(crate) async fn sign_out(operator: Operator, form: Form) -> Response {
    if !csrf_matches(&operator.session.csrf, form.get("csrf")) {
        return (StatusCode::FORBIDDEN, operator.lang.text().form_expired).into_response();
    }
    let mut response = Redirect::to("/console/signin").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE, "", "/console", 0));
    response
}

/// The sign-in form with a fresh token (also set as a cookie the post must match).
fn signin_page(
    state: &AppState,
    lang: Lang,
    error: Option<&str>,
    status: StatusCode,
    outcome: &'static str,
) -> Response {
    let t = lang.text();
    let Some(token) = random_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random token").into_response();
    };
    let mut body = Html::default();
    if state
        .console
        .as_ref()
        .is_some_and(|console| console.sso.is_some())
    {
        body.raw("<p><a class=\"button\" href=\"/console/sso/start\">")
            .text(t.sign_in_sso)
            .raw("</a></p><p class=\"note\">")
            .text(t.or_key)
            .raw("</p>");
    }
    body.raw("<p class=\"note\">")
        .text(t.sign_in_intro)
        .raw("</p>");
    if let Some(error) = error {
        body.raw("<p class=\"error\" role=\"alert\">")
            .text(error)
            .raw("</p>");
    }
    body.raw("<form class=\"signin\" method=\"post\" action=\"/console/signin\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&token)
        .raw("\"><label for=\"key\">")
        .text(t.admin_key)
        .raw("</label><input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" required><button type=\"submit\">")
        .text(t.sign_in)
        .raw("</button></form>");
    let html = page(lang, t.sign_in, Nav::SignIn, None, "/console/signin", &body);
    let mut response = (status, axum::response::Html(html)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &token, "/console/signin", 600),
    );
    if outcome != "ok" {
        response.extensions_mut().insert(Outcome(outcome));
    }
    response
}
