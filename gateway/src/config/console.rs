//! `[console]`: the operator console (off unless the section is present).

use std::net::SocketAddr;

use serde::Deserialize;

/// The operator console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console on its own address (an internal network) instead of beside the
    /// API on `listen`.
    pub listen: Option<SocketAddr>,
    /// Environment variable holding the session key (base64, 32 bytes or more), the same
    /// on every instance behind one address. Unset: a random key per process, so sessions
    /// end on restart and hold on one instance only.
    pub session_key_env: Option<String>,
    /// How long a sign-in lasts, in hours (default 8).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

fn default_session_hours() -> u64 {
    8
}
