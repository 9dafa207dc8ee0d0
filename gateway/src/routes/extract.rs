//! What a handler takes instead of writing its own prologue: the authenticated caller for
//! the route's scope ([`Authorized`]), and its JSON body ([`Json`]), each refusing with the
//! route's error shape.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::caller::{Caller, Peer, authorize, client_network, guard_network};
use crate::audit::AuditHandle;
use crate::auth::failures::Network;
use crate::problem::Problem;
use crate::state::{AppState, State};
use crate::surfaces::BearerAccess;

/// What a route requires of its caller: a scope, and which static token (if any) may stand
/// in for a key.
pub(crate) trait Required {
    /// The scope the key, token or static token must hold.
    const SCOPE: crate::auth::scope::Scope;
    /// The surface's static token, checked when the credential is neither a key nor a JWT.
    fn fallback(state: &State) -> Option<&BearerAccess>;
}

/// The marker types naming each route's requirement: `Authorized<need::MessagesSend>`.
pub(crate) mod need {
    use super::{BearerAccess, Required, State};
    use crate::auth::scope::Scope;

    macro_rules! required {
        ($($(#[$doc:meta])* $name:ident => $surface:ident;)*) => {$(
            $(#[$doc])*
            pub(crate) struct $name;
            impl Required for $name {
                const SCOPE: Scope = Scope::$name;
                fn fallback(state: &State) -> Option<&BearerAccess> {
                    state.$surface.as_ref()
                }
            }
        )*};
    }

    required! {
        /// `messages:send`, or the `[api]` token with it.
        MessagesSend => api;
        /// `challenges:start`.
        ChallengesStart => api;
        /// `challenges:verify`.
        ChallengesVerify => api;
        /// `totp:enroll`.
        TotpEnroll => api;
        /// `totp:verify`.
        TotpVerify => api;
        /// `usage:read`.
        UsageRead => api;
        /// `hooks:auth0`, or the `[auth0]` token.
        HooksAuth0 => auth0;
    }
}

/// The calling system, authenticated for `R`'s scope (see [`authorize`]): recorded on the
/// request's audit record as soon as it is known, so a refusal carries its system.
pub(crate) struct Authorized<R>(pub(crate) Caller, pub(crate) PhantomData<R>);

impl<R: Required> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let audit = AuditHandle::from_request_parts(parts, state).await?;
        let Ok(peer) = Peer::from_request_parts(parts, state).await;
        let caller = authorize(
            &audit,
            state,
            &parts.headers,
            peer,
            R::SCOPE,
            R::fallback(state),
        )
        .await?;
        Ok(Self(caller, PhantomData))
    }
}

/// A JSON body read as `T`, with the statuses a caller can act on: 413 too large, 415 not
/// JSON, 400 not parseable, 422 a missing, mistyped or unknown field. The bytes are kept
/// (an `Idempotency-Key` fingerprints them).
pub(crate) struct Json<T> {
    pub(crate) value: T,
    pub(crate) bytes: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await;
        let bytes = body.as_ref().map(Bytes::clone).unwrap_or_default();
        let value = super::json::read_json(&headers, body)?;
        Ok(Self { value, bytes })
    }
}

/// [`Json`], or `T::default()` for an empty body (a resend needs no fields).
pub(crate) struct JsonOrEmpty<T> {
    pub(crate) value: T,
    pub(crate) bytes: Bytes,
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for JsonOrEmpty<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await;
        if body.as_ref().is_ok_and(Bytes::is_empty) {
            return Ok(Self {
                value: T::default(),
                bytes: Bytes::new(),
            });
        }
        let bytes = body.as_ref().map(Bytes::clone).unwrap_or_default();
        let value = super::json::read_json(&headers, body)?;
        Ok(Self { value, bytes })
    }
}

/// A JSON body whatever its `Content-Type` claims (for callers whose published samples
/// send none): 413 too large, 400 not parseable.
pub(crate) struct AnyJson(pub(crate) serde_json::Value);

impl FromRequest<AppState> for AnyJson {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let body = Bytes::from_request(request, state).await;
        super::json::read_value_of_any_type(body).map(Self)
    }
}

/// The caller's source network (behind trusted proxies), refused unread (429) when it has
/// failed authentication too often: for routes that check their own secret.
pub(crate) struct Screened(pub(crate) Network);

impl FromRequestParts<AppState> for Screened {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Ok(peer) = Peer::from_request_parts(parts, state).await;
        let network = client_network(state, &parts.headers, peer);
        guard_network(state, network)?;
        Ok(Self(network))
    }
}
