//! Issuing, rotating and revoking keys: what `phone-otp-gateway keys ...` runs, and what
//! an admin endpoint would.

use std::time::Duration;

use secrecy::SecretString;

use super::api_key::{KeyKind, NewKey};
use super::cidr::Cidr;
use super::scope::Scopes;
use crate::db::{Db, DbError, KeyRecord};

/// The longest a personal token may live.
pub const MAX_PERSONAL_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// What a new key may do and for whom.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// System key or personal token.
    pub kind: KeyKind,
    /// The calling system or person.
    pub owner: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Where it may be used from (empty: anywhere).
    pub allowed: Vec<Cidr>,
    /// How long it lives (required for personal tokens, at most 90 days).
    pub lifetime: Option<Duration>,
}

/// Why a key cannot be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyAdminError {
    /// The request is unusable (no owner, no scope, a personal token without expiry...).
    #[error("{0}")]
    Invalid(&'static str),
    /// No such live key.
    #[error("no such live key")]
    NotFound,
    /// The database failed.
    #[error("database failed")]
    Db(#[from] DbError),
    /// The OS random source failed.
    #[error("random source failed")]
    Random,
}

/// Refuses a key owner that another kind of caller already is: a JWT client mapped to
/// that system, or a static token's tenant (`reserved`, e.g. from
/// [`Config::reserved_systems`](crate::config::Config::reserved_systems)). They would share
/// one tenant: each could act on the other's challenges and factors.
///
/// # Errors
/// [`KeyAdminError::Invalid`] when `owner` is reserved.
pub fn check_owner_is_free(owner: &str, reserved: &[String]) -> Result<(), KeyAdminError> {
    if reserved.iter().any(|name| name == owner) {
        return Err(KeyAdminError::Invalid(
            "the owner is already a configured system (a JWT client or a static token's tenant)",
        ));
    }
    Ok(())
}

/// Issues a key: stores its hash and returns the token (show it once) with the record.
///
/// # Errors
/// An unusable spec, or the database or random source failing.
pub async fn create_key(
    db: &Db,
    spec: &KeySpec,
    now: i64,
) -> Result<(SecretString, KeyRecord), KeyAdminError> {
    if spec.owner.trim().is_empty() || spec.owner.len() > 128 {
        return Err(KeyAdminError::Invalid(
            "the owner must be 1 to 128 characters",
        ));
    }
    // Access tokens' systems are `<namespace>:<client>`: a key owner never looks like one.
    if spec.owner.contains(super::jwt::NAMESPACE_SEPARATOR) {
        return Err(KeyAdminError::Invalid(
            "the owner may not contain ':' (it would look like an access token's system)",
        ));
    }
    if spec.scopes == Scopes::default() {
        return Err(KeyAdminError::Invalid("a key needs at least one scope"));
    }
    if spec.kind == KeyKind::Personal
        && spec
            .lifetime
            .is_none_or(|l| l > MAX_PERSONAL_TOKEN_LIFETIME)
    {
        return Err(KeyAdminError::Invalid(
            "a personal token must expire within 90 days",
        ));
    }
    let key = NewKey::generate(spec.kind).map_err(|_| KeyAdminError::Random)?;
    let record = KeyRecord {
        id: key.id.clone(),
        kind: spec.kind,
        owner: spec.owner.clone(),
        scopes: spec.scopes,
        allowed: spec.allowed.clone(),
        created_at: now,
        expires_at: spec
            .lifetime
            .map(|l| now.saturating_add(i64::try_from(l.as_millis()).unwrap_or(i64::MAX))),
        revoked_at: None,
        last_used_at: None,
    };
    db.insert_key(&record, &key.hash).await?;
    Ok((key.token, record))
}

/// Replaces key `id` with a new one of the same owner, scopes and addresses; the old one
/// stops working after `grace` (zero: at once), so callers can switch without an outage.
///
/// # Errors
/// No such live key, or the database failing.
pub async fn rotate_key(
    db: &Db,
    id: &str,
    grace: Duration,
    now: i64,
) -> Result<(SecretString, KeyRecord), KeyAdminError> {
    let Some((old, _)) = db.key(id).await? else {
        return Err(KeyAdminError::NotFound);
    };
    if !old.is_live(now) {
        return Err(KeyAdminError::NotFound);
    }
    let lifetime = old.expires_at.map(|at| {
        Duration::from_millis(u64::try_from(at.saturating_sub(old.created_at)).unwrap_or(0))
    });
    let spec = KeySpec {
        kind: old.kind,
        owner: old.owner.clone(),
        scopes: old.scopes,
        allowed: old.allowed.clone(),
        lifetime,
    };
    let issued = create_key(db, &spec, now).await?;
    let end = now.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    db.revoke_key(id, end).await?;
    Ok(issued)
}
