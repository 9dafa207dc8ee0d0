//! `/console/keys`: every API key and personal token, with its scopes, allow-list, expiry
//! and last use; administrators also create, rotate and revoke them. A new secret is shown
//! once, on the page that answers the form, and never again. Revoking asks for a
//! confirmation first. Every change is recorded in the audit trail under the operator's
//! identity, with the action and the key it touched (`key.revoke <id>`); viewers get 403.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;

use super::form::Form;
use super::html::{Html, Nav, page};
use super::i18n::Strings;
use super::operator::Operator;
use super::session::{Role, Via, csrf_matches};
use crate::audit::AuditHandle;
use crate::auth::api_key::KeyKind;
use crate::auth::cidr::Cidr;
use crate::auth::key_admin::{KeyAdminError, KeySpec, check_owner_is_free, create_key, rotate_key};
use crate::auth::scope::{Scope, Scopes};
use crate::db::KeyRecord;
use crate::outcome::Outcome;
use crate::state::AppState;

/// The longest rotation grace period the form offers, in hours (30 days).
const MAX_GRACE_HOURS: u64 = 720;

/// `GET /console/keys`.
pub(crate) async fn list(State(state): State<AppState>, operator: Operator) -> Response {
    let t = operator.lang.text();
    let Some(db) = &state.db else {
        return unavailable(&operator);
    };
    let keys = match db.keys().await {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(error = %error, "console: keys cannot be read");
            return unavailable(&operator);
        }
    };
    let now = state.now_millis();
    let mut body = Html::default();
    body.raw("<section aria-labelledby=\"all-keys\"><h2 id=\"all-keys\">")
        .text(t.keys_all)
        .raw("</h2><table><thead><tr>");
    for heading in [
        t.key_id,
        t.system,
        t.key_kind,
        t.scopes,
        t.allowed,
        t.created,
        t.expires,
        t.last_used,
        t.state,
    ] {
        body.raw("<th scope=\"col\">").text(heading).raw("</th>");
    }
    if operator.session.role == Role::Admin {
        body.raw("<th scope=\"col\"><span class=\"visually-hidden\">")
            .text(t.actions)
            .raw("</span></th>");
    }
    body.raw("</tr></thead><tbody>");
    for key in &keys {
        key_row(&mut body, t, &operator, key, now);
    }
    if keys.is_empty() {
        body.raw("<tr><td colspan=\"10\">")
            .text(t.none)
            .raw("</td></tr>");
    }
    body.raw("</tbody></table></section>");
    if operator.session.role == Role::Admin {
        create_form(&mut body, t, &operator.session.csrf);
    }
    let html = page(
        operator.lang,
        t.keys,
        Nav::Keys,
        Some(&operator.session),
        "/console/keys",
        &body,
    );
    axum::response::Html(html).into_response()
}

fn key_row(body: &mut Html, t: &Strings, operator: &Operator, key: &KeyRecord, now: i64) {
    let live = key.is_live(now);
    body.raw("<tr><td><code>")
        .text(&key.id)
        .raw("</code></td><td>")
        .text(&key.owner)
        .raw("</td><td>")
        .text(key.kind.as_str())
        .raw("</td><td>")
        .text(&key.scopes.to_string())
        .raw("</td><td>");
    if key.allowed.is_empty() {
        body.text(t.any_address);
    } else {
        let blocks: Vec<String> = key.allowed.iter().map(ToString::to_string).collect();
        body.text(&blocks.join(", "));
    }
    body.raw("</td><td>")
        .text(&when(Some(key.created_at)))
        .raw("</td><td>")
        .text(&when(key.expires_at))
        .raw("</td><td>")
        .text(&when(key.last_used_at))
        .raw("</td><td>");
    body.text(if live {
        if key.revoked_at.is_some() {
            t.state_grace
        } else {
            t.state_live
        }
    } else if key.revoked_at.is_some_and(|at| at <= now) {
        t.state_revoked
    } else {
        t.state_expired
    });
    body.raw("</td>");
    if operator.session.role == Role::Admin {
        body.raw("<td>");
        if live {
            body.raw("<form class=\"inline\" method=\"post\" action=\"/console/keys/")
                .text(&key.id)
                .raw("/rotate\"><input type=\"hidden\" name=\"csrf\" value=\"")
                .text(&operator.session.csrf)
                .raw("\"><label class=\"inline\">")
                .text(t.grace_hours)
                .raw(" <input type=\"number\" name=\"grace_hours\" min=\"0\" max=\"720\" value=\"24\"></label> <button type=\"submit\">")
                .text(t.rotate)
                .raw("</button></form> <a href=\"/console/keys/")
                .text(&key.id)
                .raw("/revoke\">")
                .text(t.revoke)
                .raw("</a>");
        }
        body.raw("</td>");
    }
    body.raw("</tr>");
}

fn create_form(body: &mut Html, t: &Strings, csrf: &str) {
    body.raw("<section aria-labelledby=\"create\"><h2 id=\"create\">")
        .text(t.create_key)
        .raw("</h2><form method=\"post\" action=\"/console/keys\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(csrf)
        .raw("\"><label for=\"owner\">")
        .text(t.system)
        .raw("</label><input id=\"owner\" name=\"owner\" type=\"text\" required maxlength=\"128\" autocomplete=\"off\"><fieldset><legend>")
        .text(t.scopes)
        .raw("</legend>");
    for scope in Scope::ALL {
        body.raw("<label class=\"check\"><input type=\"checkbox\" name=\"scope:")
            .text(scope.as_str())
            .raw("\" value=\"on\"> <code>")
            .text(scope.as_str())
            .raw("</code></label>");
    }
    body.raw("</fieldset><label for=\"allowed\">")
        .text(t.allowed)
        .raw("</label><input id=\"allowed\" name=\"allowed\" type=\"text\" placeholder=\"203.0.113.0/24, 2001:db8::/48\" autocomplete=\"off\"><label for=\"days\">")
        .text(t.lifetime_days)
        .raw("</label><input id=\"days\" name=\"days\" type=\"number\" min=\"1\" max=\"3650\"><button type=\"submit\">")
        .text(t.create_key)
        .raw("</button></form></section>");
}

/// `POST /console/keys`: a new system key from the form.
pub(crate) async fn create(
    State(state): State<AppState>,
    audit: AuditHandle,
    operator: Operator,
    form: Form,
) -> Response {
    let owner = form.get("owner").trim().to_owned();
    if let Some(refused) = admin(&audit, &operator, &form, &format!("key.create {owner}")) {
        return refused;
    }
    let t = operator.lang.text();
    let mut scopes = Scopes::default();
    for scope in Scope::ALL {
        if form.get(&format!("scope:{}", scope.as_str())) == "on" {
            scopes = scopes.with(scope);
        }
    }
    let allowed: Result<Vec<Cidr>, _> = form
        .get("allowed")
        .split(',')
        .map(str::trim)
        .filter(|block| !block.is_empty())
        .map(str::parse)
        .collect();
    let Ok(allowed) = allowed else {
        return refused(
            &operator,
            t.invalid_allowed,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let lifetime = match form.get("days").trim() {
        "" => None,
        days => match days.parse::<u64>() {
            Ok(days @ 1..=3650) => Some(Duration::from_secs(days * 86_400)),
            _ => return refused(&operator, t.invalid_days, StatusCode::UNPROCESSABLE_ENTITY),
        },
    };
    let Some(console) = &state.console else {
        return unavailable(&operator);
    };
    if let Err(error) = check_owner_is_free(&owner, &console.reserved) {
        return refused(
            &operator,
            &error.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let Some(db) = &state.db else {
        return unavailable(&operator);
    };
    let spec = KeySpec {
        kind: KeyKind::System,
        owner,
        scopes,
        allowed,
        lifetime,
    };
    let created = create_key(db, &spec, state.now_millis()).await;
    issued(&operator, t.key_created, created)
}

/// `POST /console/keys/{id}/rotate`: a new secret for the key's system and scopes; the old
/// one keeps working for the grace period.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    audit: AuditHandle,
    Path(id): Path<String>,
    operator: Operator,
    form: Form,
) -> Response {
    if let Some(refused) = admin(&audit, &operator, &form, &format!("key.rotate {id}")) {
        return refused;
    }
    let t = operator.lang.text();
    let grace = match form.get("grace_hours").trim().parse::<u64>() {
        Ok(hours) if hours <= MAX_GRACE_HOURS => Duration::from_secs(hours * 3600),
        _ => return refused(&operator, t.invalid_grace, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let Some(db) = &state.db else {
        return unavailable(&operator);
    };
    let rotated = rotate_key(db, &id, grace, state.now_millis()).await;
    issued(&operator, t.key_rotated, rotated)
}

/// A key's id, system and scopes, as a definition list.
fn key_facts(body: &mut Html, t: &Strings, key: &KeyRecord) {
    body.raw("<dl><dt>")
        .text(t.key_id)
        .raw("</dt><dd><code>")
        .text(&key.id)
        .raw("</code></dd><dt>")
        .text(t.system)
        .raw("</dt><dd>")
        .text(&key.owner)
        .raw("</dd><dt>")
        .text(t.scopes)
        .raw("</dt><dd>")
        .text(&key.scopes.to_string())
        .raw("</dd></dl>");
}

/// The answer to a create or rotate: the new secret's page, or why not.
fn issued(
    operator: &Operator,
    title: &str,
    result: Result<(secrecy::SecretString, KeyRecord), KeyAdminError>,
) -> Response {
    let t = operator.lang.text();
    match result {
        Ok((token, record)) => secret_page(operator, title, &record, token.expose_secret()),
        Err(KeyAdminError::NotFound) => refused(operator, t.no_such_key, StatusCode::NOT_FOUND),
        Err(KeyAdminError::Invalid(reason)) => {
            refused(operator, reason, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(error) => {
            tracing::error!(error = %error, "console: the key could not be issued");
            unavailable(operator)
        }
    }
}

/// `GET /console/keys/{id}/revoke`: the confirmation step.
pub(crate) async fn confirm_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    operator: Operator,
) -> Response {
    let t = operator.lang.text();
    if operator.session.role != Role::Admin {
        return refused(&operator, t.admins_only, StatusCode::FORBIDDEN);
    }
    let Some(db) = &state.db else {
        return unavailable(&operator);
    };
    let key = match db.key(&id).await {
        Ok(Some((key, _))) if key.is_live(state.now_millis()) => key,
        Ok(_) => return refused(&operator, t.no_such_key, StatusCode::NOT_FOUND),
        Err(_) => return unavailable(&operator),
    };
    let mut body = Html::default();
    body.raw("<p>").text(t.revoke_question).raw("</p>");
    key_facts(&mut body, t, &key);
    body.raw("<form method=\"post\" action=\"/console/keys/")
        .text(&key.id)
        .raw("/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(&operator.session.csrf)
        .raw("\"><button type=\"submit\" class=\"danger\">")
        .text(t.revoke_now)
        .raw("</button> <a href=\"/console/keys\">")
        .text(t.cancel)
        .raw("</a></form>");
    let html = page(
        operator.lang,
        t.revoke,
        Nav::Keys,
        Some(&operator.session),
        "/console/keys",
        &body,
    );
    axum::response::Html(html).into_response()
}

/// `POST /console/keys/{id}/revoke`: refused from now on, on every instance.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    audit: AuditHandle,
    Path(id): Path<String>,
    operator: Operator,
    form: Form,
) -> Response {
    if let Some(refused) = admin(&audit, &operator, &form, &format!("key.revoke {id}")) {
        return refused;
    }
    let t = operator.lang.text();
    let Some(db) = &state.db else {
        return unavailable(&operator);
    };
    match db.revoke_key(&id, state.now_millis()).await {
        Ok(true) => {
            let mut body = Html::default();
            body.raw("<p role=\"status\">")
                .text(t.key_revoked)
                .raw(" <code>")
                .text(&id)
                .raw("</code></p><p><a href=\"/console/keys\">")
                .text(t.keys_all)
                .raw("</a></p>");
            let html = page(
                operator.lang,
                t.revoke,
                Nav::Keys,
                Some(&operator.session),
                "/console/keys",
                &body,
            );
            axum::response::Html(html).into_response()
        }
        Ok(false) => refused(&operator, t.no_such_key, StatusCode::NOT_FOUND),
        Err(error) => {
            tracing::error!(error = %error, "console: the key could not be revoked");
            unavailable(&operator)
        }
    }
}

/// Puts the operator and the `action` on the request's audit record (so a refused attempt
/// is recorded too); the refusal (403) of a form without the session's token or from a
/// viewer, if any.
fn admin(audit: &AuditHandle, operator: &Operator, form: &Form, action: &str) -> Option<Response> {
    let (system, key) = match &operator.session.via {
        Via::Key { id } => (operator.session.operator.clone(), Some(id.clone())),
        Via::Sso { subject } => (
            operator.session.operator.clone(),
            Some(format!("sso:{subject}")),
        ),
    };
    {
        let mut record = audit.record();
        record.caller(&system, key.as_deref());
        record.action(action);
    }
    let t = operator.lang.text();
    if !csrf_matches(&operator.session.csrf, form.get("csrf")) {
        return Some(refused(operator, t.form_expired, StatusCode::FORBIDDEN));
    }
    if operator.session.role != Role::Admin {
        return Some(refused(operator, t.admins_only, StatusCode::FORBIDDEN));
    }
    None
}

/// The page that shows a new secret, once, with a button that copies it.
fn secret_page(operator: &Operator, title: &str, record: &KeyRecord, secret: &str) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    body.raw("<p role=\"status\">")
        .text(t.secret_once)
        .raw("</p>");
    key_facts(&mut body, t, record);
    body.raw("<label for=\"secret\">")
        .text(t.secret)
        .raw("</label><input id=\"secret\" class=\"secret\" type=\"text\" readonly value=\"")
        .text(secret)
        .raw("\"> <button type=\"button\" data-copy=\"secret\" data-copied=\"")
        .text(t.copied)
        .raw("\">")
        .text(t.copy)
        .raw("</button><p><a href=\"/console/keys\">")
        .text(t.keys_all)
        .raw("</a></p><script src=\"/console/assets/console.js\"></script>");
    let html = page(
        operator.lang,
        title,
        Nav::Keys,
        Some(&operator.session),
        "/console/keys",
        &body,
    );
    axum::response::Html(html).into_response()
}

fn refused(operator: &Operator, reason: &str, status: StatusCode) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    body.raw("<p class=\"error\" role=\"alert\">")
        .text(reason)
        .raw("</p><p><a href=\"/console/keys\">")
        .text(t.keys_all)
        .raw("</a></p>");
    let html = page(
        operator.lang,
        t.keys,
        Nav::Keys,
        Some(&operator.session),
        "/console/keys",
        &body,
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    response.extensions_mut().insert(Outcome(match status {
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        _ => "invalid_request",
    }));
    response
}

fn unavailable(operator: &Operator) -> Response {
    let t = operator.lang.text();
    let mut body = Html::default();
    body.raw("<p class=\"error\" role=\"alert\">")
        .text(t.unavailable)
        .raw("</p>");
    let html = page(
        operator.lang,
        t.keys,
        Nav::Keys,
        Some(&operator.session),
        "/console/keys",
        &body,
    );
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, axum::response::Html(html)).into_response();
    response
        .extensions_mut()
        .insert(Outcome("database_unavailable"));
    response
}

/// `2026-12-07 07:55 UTC`, or `-`.
pub(crate) fn when(at: Option<i64>) -> String {
    let Some(at) = at else {
        return "-".to_owned();
    };
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
    else {
        return "-".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute()
    )
}
