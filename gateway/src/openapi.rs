//! The published contract of `/v1`: an OpenAPI 3.1 document derived from the handlers'
//! own request and answer types and their `#[utoipa::path]` attributes, so it cannot
//! drift from the code. Served at `GET /openapi.json`, printed by
//! `phone-otp-gateway openapi`, and committed as `gateway/openapi.json` (a test compares
//! the two; `./scripts/test.sh` validates it and fuzzes a running gateway with it).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::problem::PROBLEM_JSON;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "phone-otp-gateway",
        description = "SMS and voice one-time passcodes for internal systems: deliver your own code (`/v1/messages`), or let the gateway generate and check it (`/v1/challenges`), authenticator-app codes (`/v1/totp`) and usage (`/v1/usage`). Errors are RFC 9457 problem details; `code` is stable.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::messages::send,
        routes::challenges::start,
        routes::challenges::resend,
        routes::challenges::verify,
        routes::totp::enroll,
        routes::totp::confirm,
        routes::totp::verify,
        routes::totp::disable,
        routes::usage::usage,
    ),
    components(schemas(crate::problem::ProblemDocument)),
    modifiers(&Security, &Problems),
    tags(
        (name = "messages", description = "Deliver a code your system generated."),
        (name = "challenges", description = "The gateway generates, delivers and checks the code."),
        (name = "totp", description = "Authenticator-app codes (RFC 6238)."),
        (name = "usage", description = "Requests, sends and estimated cost per group."),
    )
)]
struct ApiDoc;

/// The document, as pretty JSON with a final newline (what `gateway/openapi.json` holds).
#[must_use]
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        text
    })
}

/// `GET /openapi.json`: public, built once.
pub(crate) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The two ways to authenticate: an API key or personal token (`potp_...`, or a static
/// token of the configuration), and an OAuth 2.0 access token (an RFC 9068 JWT) from a
/// configured issuer. Either must hold the operation's scope.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.description = Some(
            "An API key or personal token (`potp_...`), or the configuration's static token, with the operation's scope.".to_owned(),
        );
        components.add_security_scheme("api_key", SecurityScheme::Http(key));
        let mut token = Http::new(HttpAuthScheme::Bearer);
        token.bearer_format = Some("JWT".to_owned());
        token.description = Some(
            "An OAuth 2.0 access token (RFC 9068 JWT) from a configured issuer, with the operation's scope in `scope`.".to_owned(),
        );
        components.add_security_scheme("access_token", SecurityScheme::Http(token));
    }
}

/// The problems every `/v1` operation can answer, whatever it does: unreadable or refused
/// input, a missing or insufficient credential, a limit, a dependency down. Added to each
/// operation beside what its attribute lists (an answer of its own under the same status,
/// such as a verification's `mismatch`, keeps its media type beside the problem's).
struct Problems;

const COMMON: [(&str, &str); 8] = [
    (
        "400",
        "The body is not valid JSON, or a query parameter is malformed.",
    ),
    (
        "401",
        "No credential, or an unknown, expired or revoked one.",
    ),
    (
        "403",
        "The credential lacks the scope, or may not be used from this address.",
    ),
    ("413", "The body is over the limit (16 KiB by default)."),
    ("415", "The body is not `application/json`."),
    (
        "422",
        "A missing, mistyped or unknown field, an invalid number or a refused destination.",
    ),
    (
        "429",
        "A limit (per number, user, IP, system, country; or failed authentications from this network). `Retry-After` says how long.",
    ),
    (
        "503",
        "The store, the database or the token issuer's keys cannot be reached: nothing was sent.",
    ),
];

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = || Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))));
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                // An operation's own error statuses can answer a problem too (a
                // malformed id is a `not_found` problem beside a verdict's `not_found`).
                for (status, response) in &mut operation.responses.responses {
                    if (status.starts_with('4') || status.starts_with('5'))
                        && let RefOr::T(response) = response
                    {
                        response
                            .content
                            .entry(PROBLEM_JSON.to_owned())
                            .or_insert_with(problem);
                    }
                }
                for (status, description) in COMMON {
                    let entry = operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(ResponseBuilder::new().description(description).build())
                        });
                    if let RefOr::T(response) = entry {
                        response
                            .content
                            .entry(PROBLEM_JSON.to_owned())
                            .or_insert_with(problem);
                    }
                }
            }
        }
    }
}
