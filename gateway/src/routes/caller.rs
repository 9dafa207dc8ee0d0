//! Who is calling: the system behind an API key or personal token, checked for scope,
//! expiry, revocation and source address on every request (no cache, so a revocation
//! holds on the next request on every instance).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use tracing::{debug, warn};

use crate::audit::AuditHandle;
use crate::auth::api_key::PresentedKey;
use crate::auth::bearer;
use crate::auth::failures::Network;
use crate::auth::jwt::{JwtError, JwtVerifier};
use crate::auth::scope::{Scope, Scopes};
use crate::db::KeyRecord;
use crate::problem::Problem;
use crate::state::AppState;
use crate::surfaces::BearerAccess;

/// The calling system, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The key's owner, or the static token's tenant: sends are counted under it.
    pub(crate) system: String,
    /// The key's public id (none for a static token).
    pub(crate) key_id: Option<String>,
    /// What it may do.
    pub(crate) scopes: Scopes,
}

/// The TCP peer's address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Authenticates the request for `scope`: an API key or personal token when the gateway
/// has a key database, an access token from a configured issuer, else the surface's
/// static token. The caller goes into `audit` as soon as it is known, so a refusal for
/// scope, expiry or address is recorded with its system and key.
///
/// A network that has failed too often is refused (429) before any credential is looked
/// at; a failed authentication (no, malformed, unknown or wrong credentials) counts
/// against its network. A lacking scope or address does not: the credential was good.
pub(crate) async fn authorize(
    audit: &AuditHandle,
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
    scope: Scope,
    fallback: Option<&BearerAccess>,
) -> Result<Caller, Problem> {
    let network = client_network(state, headers, peer);
    guard_network(state, network)?;
    let result = authenticate(audit, state, headers, peer, scope, fallback).await;
    if let Err(problem) = &result
        && problem.status == StatusCode::UNAUTHORIZED
    {
        failed_authentication(state, network);
    }
    result
}

/// The source network a request's failed authentications count under (the client's
/// address behind trusted proxies, or unknown).
pub(crate) fn client_network(state: &AppState, headers: &HeaderMap, peer: Peer) -> Network {
    Network::of(state.trusted_proxies.client_ip(headers, peer.0))
}

/// Refuses a network that failed authentication too often, before any work.
pub(crate) fn guard_network(state: &AppState, network: Network) -> Result<(), Problem> {
    match state.auth_failures.throttled(network, state.clock.now()) {
        Some(wait) => {
            state.metrics.record_auth_throttled();
            Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_authentications",
                "too many failed authentications from this network",
            )
            .retry_after(wait))
        }
        None => Ok(()),
    }
}

/// Counts one failed authentication from `network` (metrics, and its minute's log line).
pub(crate) fn failed_authentication(state: &AppState, network: Network) {
    state.metrics.record_auth_failure();
    state.auth_failures.record(network, state.clock.now());
}

async fn authenticate(
    audit: &AuditHandle,
    state: &AppState,
    headers: &HeaderMap,
    peer: Peer,
    scope: Scope,
    fallback: Option<&BearerAccess>,
) -> Result<Caller, Problem> {
    let unauthorized =
        |message: &'static str| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let Some(token) = bearer(headers) else {
        return Err(unauthorized("a valid bearer token is required"));
    };
    if let Some(verifier) = &state.jwt
        && JwtVerifier::looks_like_jwt(token)
    {
        let verified =
            verifier
                .verify(token, state.now_millis())
                .await
                .map_err(|error| match error {
                    JwtError::KeysUnavailable => Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "auth_unavailable",
                        "the token's issuer keys cannot be fetched now; nothing was sent",
                    ),
                    error => {
                        // Counted and logged per network by `authorize`, not per request.
                        debug!(reason = %error, "access token refused");
                        Problem::new(
                            StatusCode::UNAUTHORIZED,
                            "invalid_token",
                            format!("the access token is refused: {error}"),
                        )
                    }
                })?;
        let caller = Caller {
            system: verified.client,
            key_id: Some(
                verified
                    .token_id
                    .map_or_else(|| "jwt".to_owned(), |jti| format!("jwt:{jti}")),
            ),
            scopes: verified.scopes,
        };
        record(audit, &caller);
        require(caller.scopes, scope, "the token lacks")?;
        return Ok(caller);
    }
    if token.starts_with(b"potp_") && state.key_lookup.is_some() {
        let key = find_key(state, token).await?;
        let caller = Caller {
            system: key.owner.clone(),
            key_id: Some(key.id.clone()),
            scopes: key.scopes,
        };
        record(audit, &caller);
        let now = state.now_millis();
        if !key.is_live(now) {
            return Err(unauthorized("the key is expired or revoked"));
        }
        require(key.scopes, scope, "the key lacks")?;
        check_address(state, &key, headers, peer)?;
        touch_key(state, &key, now).await;
        return Ok(caller);
    }
    match fallback {
        Some(access) if access.secret.matches(token) => {
            let caller = Caller {
                system: access.tenant.clone(),
                key_id: None,
                scopes: access.scopes,
            };
            record(audit, &caller);
            require(
                access.scopes,
                scope,
                "the static token is not configured with",
            )?;
            Ok(caller)
        }
        _ => Err(unauthorized("a valid bearer token is required")),
    }
}

/// The stored key a presented `potp_...` key names, when its secret matches: 401 for a
/// malformed (refused on its checksum alone, no lookup for a typo or a guess), unknown or
/// wrong key, 503 when keys cannot be read. Expiry, scope and address are the caller's to
/// check.
pub(crate) async fn find_key(state: &AppState, token: &[u8]) -> Result<KeyRecord, Problem> {
    let unauthorized =
        |message: &'static str| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let Some(lookup) = &state.key_lookup else {
        return Err(unauthorized("a valid bearer token is required"));
    };
    let text = std::str::from_utf8(token).map_err(|_| unauthorized("malformed key"))?;
    let presented = PresentedKey::parse(text).map_err(|_| unauthorized("malformed key"))?;
    let found = lookup.call(presented.id.clone()).await.map_err(|error| {
        warn!(error = %error, "key lookup failed: refusing");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
            "keys cannot be checked now; nothing was sent",
        )
    })?;
    let Some((key, hash)) = found else {
        return Err(unauthorized("unknown key"));
    };
    if key.kind != presented.kind || !presented.matches(&hash) {
        return Err(unauthorized("unknown key"));
    }
    Ok(key)
}

/// 403 unless the request comes from an address the key's allow-list names (an empty
/// list allows any).
pub(crate) fn check_address(
    state: &AppState,
    key: &KeyRecord,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<(), Problem> {
    if key.allowed.is_empty() {
        return Ok(());
    }
    let ip = state.trusted_proxies.client_ip(headers, peer.0);
    if ip.is_some_and(|ip| key.allowed.iter().any(|block| block.contains(ip))) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "address_not_allowed",
            "this key may not be used from this address",
        ))
    }
}

/// Records the key's last use, at most one write a minute per key: the common request
/// only reads.
pub(crate) async fn touch_key(state: &AppState, key: &KeyRecord, now: i64) {
    if key.last_used_at.is_none_or(|at| at < now - 60_000)
        && let Some(db) = &state.db
        && let Err(error) = db.touch_key(&key.id, now).await
    {
        warn!(error = %error, key = %key.id, "could not record the key's last use");
    }
}

/// Puts the caller on the request's record as soon as it is known: a refusal from here on
/// (scope, expiry, address) is recorded under its system and key.
fn record(audit: &AuditHandle, caller: &Caller) {
    audit
        .record()
        .caller(&caller.system, caller.key_id.as_deref());
}

/// 403 unless `scopes` holds `scope` (`what`: "the key lacks", ...).
fn require(scopes: Scopes, scope: Scope, what: &str) -> Result<(), Problem> {
    if scopes.allows(scope) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("{what} the {scope} scope"),
        ))
    }
}
