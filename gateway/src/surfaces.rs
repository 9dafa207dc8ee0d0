//! How each caller of the gateway is configured and proves who it is: Okta's hook, a
//! static bearer token (Auth0 Actions, `/v1`), Twilio's signed callbacks. Values handed
//! to [`GatewayBuilder`](crate::GatewayBuilder); the handlers read them from the state.

use std::time::Duration;

use axum::http::HeaderName;
use secrecy::SecretString;

use crate::auth::SharedSecret;
use crate::auth::scope::Scopes;

/// Okta's default hook timeout is 3 s; answering later makes Okta send a second code.
pub const DEFAULT_OKTA_DEADLINE: Duration = Duration::from_millis(2500);

/// The Okta telephony inline hook: how Okta authenticates, and how long delivery may take.
#[derive(Debug, Clone)]
pub struct OktaHook {
    pub(crate) auth: OktaAuth,
    pub(crate) deadline: Duration,
    pub(crate) tenant: String,
    /// Fictional numbers answered `SUCCESSFUL` by provider `dry-run` without sending
    /// (digits only); empty: off.
    pub(crate) dry_run_numbers: Vec<String>,
}

/// The fictional numbers Okta's own previews use: `+15555551212` in the hook setup guide,
/// `9876543210` in the reference sample.
pub const OKTA_PREVIEW_NUMBERS: [&str; 2] = ["+15555551212", "9876543210"];

/// The ASCII digits of `text` (`+1 555-555-1212` -> `15555551212`).
fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// How Okta proves it is Okta.
#[derive(Debug, Clone)]
pub(crate) enum OktaAuth {
    /// The hook's `authScheme`: one header and its secret value.
    Header {
        header: HeaderName,
        secret: SharedSecret,
    },
    /// The hook's OAuth channel: a bearer access token with the `hooks:okta` scope, from
    /// an issuer given to [`GatewayBuilder::jwt`](crate::GatewayBuilder::jwt) (or an API key with that scope).
    OAuth,
}

impl OktaHook {
    /// Okta sends `secret` in header `header` (the hook's `authScheme` key and value; with
    /// `Authorization`, the value includes the scheme, e.g. `Basic dXNlcjpwYXNz`).
    ///
    /// An invalid header name is replaced by `authorization` at build time; see
    /// [`GatewayBuilder::build`](crate::GatewayBuilder::build).
    pub fn new(header: &str, secret: SecretString) -> Self {
        Self::with_auth(OktaAuth::Header {
            header: HeaderName::try_from(header.to_ascii_lowercase())
                .unwrap_or(axum::http::header::AUTHORIZATION),
            secret: SharedSecret::new(secret),
        })
    }

    /// Okta's OAuth 2.0 option (`channel.type: OAUTH`, `client_secret_post` or
    /// `private_key_jwt`): Okta fetches an access token from your authorization server
    /// and sends it as a bearer token. It must carry the `hooks:okta` scope and come from
    /// an issuer configured with [`GatewayBuilder::jwt`](crate::GatewayBuilder::jwt).
    pub fn oauth() -> Self {
        Self::with_auth(OktaAuth::OAuth)
    }

    fn with_auth(auth: OktaAuth) -> Self {
        Self {
            auth,
            deadline: DEFAULT_OKTA_DEADLINE,
            tenant: "okta".to_owned(),
            dry_run_numbers: Vec::new(),
        }
    }

    /// Answers requests for `numbers` (e.g. [`OKTA_PREVIEW_NUMBERS`], the fictional ones
    /// Okta's console preview sends) with a `SUCCESSFUL` command from provider `dry-run`,
    /// sending nothing, and audits them as `dry_run`. Off by default: give only numbers
    /// nobody can own.
    pub fn dry_run_for<I, N>(mut self, numbers: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.dry_run_numbers = numbers
            .into_iter()
            .map(|number| digits(number.as_ref()))
            .filter(|digits| !digits.is_empty())
            .collect();
        self
    }

    /// Whether `raw` (as Okta sent it) is one of the dry-run numbers.
    pub(crate) fn is_dry_run(&self, raw: &str) -> bool {
        let raw = digits(raw);
        self.dry_run_numbers.contains(&raw)
    }

    /// The longest delivery may take, failovers included (default 2.5 s, under Okta's 3 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The tenant Okta's sends are counted under (default `okta`).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
}

/// A static bearer token callers send (`Authorization: Bearer <token>`), the tenant their
/// sends are counted under, and what it may do. Used by Auth0 Actions and by the `/v1`
/// API beside per-system keys.
#[derive(Debug, Clone)]
pub struct BearerAccess {
    pub(crate) secret: SharedSecret,
    pub(crate) tenant: String,
    pub(crate) scopes: Scopes,
}

impl BearerAccess {
    /// Callers must send `token`; their sends count under `tenant`. It may do nothing
    /// until given [`BearerAccess::scopes`] (for Auth0's hook, [`GatewayBuilder::auth0`](crate::GatewayBuilder::auth0)
    /// gives it `hooks:auth0`).
    pub fn new(token: SecretString, tenant: impl Into<String>) -> Self {
        Self {
            secret: SharedSecret::new(token),
            tenant: tenant.into(),
            scopes: Scopes::default(),
        }
    }

    /// What the token may do: nothing is implied (`usage:read:all` reads every system's
    /// usage, so give it only to an administrator's token).
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }
}

/// Twilio status callbacks: the public URL Twilio calls (behind a proxy it differs from
/// what the gateway sees, and the signature covers it) and the Auth Token that signs.
#[derive(Clone)]
pub struct TwilioCallbacks {
    pub(crate) public_url: String,
    pub(crate) auth_token: SecretString,
}

impl TwilioCallbacks {
    /// Callbacks to `public_url` (e.g. `https://otp.example.com/callbacks/twilio/status`),
    /// signed with `auth_token`.
    pub fn new(public_url: impl Into<String>, auth_token: SecretString) -> Self {
        Self {
            public_url: public_url.into(),
            auth_token,
        }
    }
}

impl std::fmt::Debug for TwilioCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioCallbacks")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}
