//! How the console is set up ([`ConsoleSettings`]) and what the shared state keeps of it
//! ([`Console`]): the session key, the session length, single sign-on, and the systems the
//! configuration reserves. Nothing here serves a request, so the state can hold it
//! without importing the pages.

use std::time::Duration;

use super::oidc::{Sso, SsoError, SsoSettings};
use super::session::{SessionKey, WeakSessionKey};

/// Sessions last this long unless configured (a working day).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// How the console signs its sessions, and for how long.
pub struct ConsoleSettings {
    key: Option<SessionKey>,
    sso: Option<Sso>,
    session_ttl: Duration,
    own_listener: bool,
}

impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSettings")
            .field("session_ttl", &self.session_ttl)
            .field("own_listener", &self.own_listener)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleSettings {
    /// A random session key (sessions end with the process, and each instance has its
    /// own: set [`Self::session_key`] behind a load balancer) and 8-hour sessions.
    pub fn new() -> Self {
        Self {
            key: None,
            sso: None,
            session_ttl: DEFAULT_SESSION_TTL,
            own_listener: false,
        }
    }

    /// Signs sessions with `secret` (at least 32 bytes), shared by every instance.
    ///
    /// # Errors
    /// A secret shorter than 32 bytes.
    pub fn session_key(mut self, secret: &[u8]) -> Result<Self, WeakSessionKey> {
        self.key = Some(SessionKey::new(secret)?);
        Ok(self)
    }

    /// Operators sign in with the organisation's identity provider too (OpenID Connect).
    ///
    /// # Errors
    /// No claim values for either role, or no HTTP client.
    pub fn sso(mut self, settings: SsoSettings) -> Result<Self, SsoError> {
        self.sso = Some(settings.into_sso()?);
        Ok(self)
    }

    /// How long a session lasts after sign-in (a key's own expiry ends it sooner).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Serves the console from [`Gateway::console_router`](crate::Gateway::console_router)
    /// only, for a listener of its own (an internal address), not beside the API.
    pub fn own_listener(mut self, own: bool) -> Self {
        self.own_listener = own;
        self
    }

    /// `reserved`: the systems the configuration defines (no key may be owned by one).
    pub(crate) fn into_console(self, reserved: Vec<String>) -> Option<Console> {
        Some(Console {
            reserved,
            sso: self.sso,
            key: match self.key {
                Some(key) => key,
                None => SessionKey::random()?,
            },
            session_ttl: self.session_ttl,
            own_listener: self.own_listener,
        })
    }
}

/// The console's part of the shared state.
#[derive(Debug)]
pub(crate) struct Console {
    pub(crate) key: SessionKey,
    /// Systems the configuration defines (static tokens' tenants, JWT clients).
    pub(crate) reserved: Vec<String>,
    /// Single sign-on, when configured.
    pub(crate) sso: Option<Sso>,
    pub(crate) session_ttl: Duration,
    pub(crate) own_listener: bool,
}
