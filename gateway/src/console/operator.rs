//! Who is looking: the signed-in operator, from the session cookie, and the page
//! language. A page handler takes [`Operator`] and never sees a request without a valid
//! session: those are sent to the sign-in page. A session made with an API key is checked
//! against that key on every request (one batched read), so revoking the key or taking
//! its scope away ends the session at once on every instance.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tracing::warn;

use super::html::{Html, Nav};
use super::i18n::{LANG_COOKIE, Lang};
use super::session::{COOKIE, Role, Session, Via};
use super::{cookie, query_param};
use crate::auth::scope::{Scope, Scopes};
use crate::state::AppState;

/// A signed-in operator and the language of their pages.
#[derive(Debug)]
pub(crate) struct Operator {
    pub(crate) session: Session,
    pub(crate) lang: Lang,
}

impl Operator {
    /// A console page for this operator: `body` in the shared layout, answered `status`.
    pub(crate) fn page(
        &self,
        title: &str,
        nav: Nav,
        path: &'static str,
        body: &Html,
        status: StatusCode,
    ) -> Response {
        let html = super::html::page(self.lang, title, nav, Some(&self.session), path, body);
        (status, axum::response::Html(html)).into_response()
    }
}

/// The page language alone (the sign-in page has no operator yet).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageLang(pub(crate) Lang);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(lang_of(parts)))
    }
}

pub(crate) fn lang_of(parts: &Parts) -> Lang {
    let query = parts.uri.query().and_then(|q| query_param(q, "lang"));
    Lang::choose(
        query.as_deref(),
        cookie(&parts.headers, LANG_COOKIE),
        &parts.headers,
    )
}

/// What a key's scopes let its holder do in the console: `keys:admin` administers,
/// `usage:read:all` views, anything else signs nobody in.
pub(crate) fn role_of(scopes: Scopes) -> Option<Role> {
    if scopes.contains(Scope::KeysAdmin) {
        Some(Role::Admin)
    } else if scopes.contains(Scope::UsageReadAll) {
        Some(Role::Viewer)
    } else {
        None
    }
}

/// The session in the request's cookie, if it is valid now (signature and expiry only).
pub(crate) fn session_of(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let console = state.console.as_ref()?;
    console
        .key
        .open(cookie(headers, COOKIE)?, state.now_millis())
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = lang_of(parts);
        let Some(session) = session_of(state, &parts.headers) else {
            return Err(Redirect::to("/console/signin").into_response());
        };
        if let Via::Key { id } = &session.via {
            let Some(lookup) = &state.key_lookup else {
                return Err(Redirect::to("/console/signin").into_response());
            };
            match lookup.call(id.clone()).await {
                Ok(Some((key, _)))
                    if key.is_live(state.now_millis())
                        && role_of(key.scopes).is_some_and(|role| role >= session.role) => {}
                Ok(_) => return Err(Redirect::to("/console/signin").into_response()),
                Err(error) => {
                    warn!(error = %error, "console: the session's key cannot be checked");
                    return Err(
                        (StatusCode::SERVICE_UNAVAILABLE, lang.text().unavailable).into_response()
                    );
                }
            }
        }
        Ok(Self { session, lang })
    }
}
