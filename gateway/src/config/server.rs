//! `[server]`: HTTP limits, the proxies whose forwarding header is believed, and the
//! connection limits the binary serves with.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

/// HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body (default 16 KiB).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Longest a request may run (default 10 s).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Proxies (CIDR blocks) whose forwarding header is believed for key allow-lists and
    /// the per-network failure limit.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies set: `x-forwarded-for` (default) or `forwarded` (RFC 7239).
    #[serde(default)]
    pub forwarded_header: crate::auth::forwarded::ForwardedHeader,
    /// Failed authentications a source network (IPv4 /24, IPv6 /48) may have a minute
    /// before it is refused unread (default 30).
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: NonZeroU32,
    /// The longest a client may take to send a request head (default 10 s).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// The longest a connection may stay open without a request (default 5 s).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Connections open at once (default 4096, and at most the open-file limit less 64);
    /// past it the oldest one not serving a request is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit(),
            request_timeout_ms: default_request_timeout(),
            trusted_proxies: Vec::new(),
            forwarded_header: crate::auth::forwarded::ForwardedHeader::default(),
            auth_failures_per_minute: default_auth_failures(),
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl ServerConfig {
    /// The connection limits, with the cap fitted under `descriptors` (the open-file
    /// limit) so accepting never fails for want of one.
    pub fn connection_limits(&self, descriptors: Option<u64>) -> crate::serve::ConnectionLimits {
        let fits = descriptors
            .and_then(|n| usize::try_from(n.saturating_sub(64)).ok())
            .unwrap_or(usize::MAX)
            .max(1);
        crate::serve::ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            max_connections: self.max_connections.min(fits).max(1),
        }
    }
}

fn default_header_read_timeout() -> u64 {
    duration_ms(crate::serve::DEFAULT_HEADER_READ_TIMEOUT)
}

fn default_idle_timeout() -> u64 {
    duration_ms(crate::serve::DEFAULT_IDLE_TIMEOUT)
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn default_max_connections() -> usize {
    crate::serve::DEFAULT_MAX_CONNECTIONS
}

fn default_auth_failures() -> NonZeroU32 {
    crate::auth::failures::DEFAULT_AUTH_FAILURES_PER_MINUTE
}

fn default_body_limit() -> usize {
    crate::app::DEFAULT_BODY_LIMIT
}

fn default_request_timeout() -> u64 {
    10_000
}
