//! What every HTTP adapter shares: one pooled `reqwest` client built the same way, base URL
//! rules, and the mapping of transport failures and common statuses to error kinds.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use thiserror::Error;

use super::{ProviderError, ProviderErrorKind};

/// The most of a provider response this crate reads: provider answers are a few hundred
/// bytes, and a larger one is refused as `Protocol` before it can fill memory.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `phone-otp/<version>`, sent as the user agent.
pub const USER_AGENT: &str = concat!("phone-otp/", env!("CARGO_PKG_VERSION"));

/// Timeouts of an adapter's HTTP client. The defaults are short enough for a login flow
/// and leave a router time to fail over within its 3 s deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// TCP and TLS connect timeout. Default 1 s.
    #[serde(with = "millis")]
    pub connect_timeout: Duration,
    /// Whole-request timeout. Default 2.5 s.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(1000),
            request_timeout: Duration::from_millis(2500),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// An adapter could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Environment variables `from_env` needs are not set: every one of them, by name
    /// (an entry may name a choice: `TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID`).
    #[error("environment variables not set: {}", .0.join(", "))]
    MissingEnv(Vec<&'static str>),
    /// A setting is missing or malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which setting.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built (TLS initialisation failed).
    #[error("could not build the HTTP client")]
    Client,
}

/// Where `from_env` reads variables: the process environment.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads an adapter's variables through a lookup, collecting every required one that is
/// missing so a misconfiguration is reported whole, not one variable per attempt.
pub(crate) struct EnvReader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    missing: Vec<&'static str>,
}

impl<'a> EnvReader<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            missing: Vec::new(),
        }
    }

    /// The variable, or empty (and noted as missing) when unset or empty.
    pub(crate) fn required(&mut self, name: &'static str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.missing.push(name);
            String::new()
        })
    }

    /// The variable, if set and not empty.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }

    /// Notes `what` as missing (e.g. a choice of variables none of which is set).
    pub(crate) fn missing(&mut self, what: &'static str) {
        self.missing.push(what);
    }

    /// `Err` naming every missing variable, if any.
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::MissingEnv(self.missing))
        }
    }
}

/// A base URL an adapter may talk to: HTTPS, or plain HTTP to loopback only when set through
/// `danger_base_url` (for tests against local mock servers).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl(String);

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl BaseUrl {
    pub(crate) fn https(url: &str) -> Result<Self, ConfigError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ConfigError::Invalid {
            field: "base_url",
            reason: "not a URL",
        })?;
        if parsed.scheme() != "https" {
            return Err(ConfigError::Invalid {
                field: "base_url",
                reason: "must use https (danger_base_url allows loopback http for tests)",
            });
        }
        Ok(Self(url.trim_end_matches('/').to_owned()))
    }

    pub(crate) fn danger(url: &str) -> Result<Self, ConfigError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ConfigError::Invalid {
            field: "base_url",
            reason: "not a URL",
        })?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback) {
            Ok(Self(url.trim_end_matches('/').to_owned()))
        } else {
            Err(ConfigError::Invalid {
                field: "base_url",
                reason: "plain http is allowed only to loopback",
            })
        }
    }

    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// The one way adapters build clients: rustls, timeouts, no redirects (a redirect would
/// resend credentials somewhere unexpected), our user agent, pooled connections.
pub(crate) fn client(
    config: &HttpConfig,
    http1_only: bool,
) -> Result<reqwest::Client, ConfigError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(false)
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(90));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().map_err(|_| ConfigError::Client)
}

/// A transport failure: no usable response.
pub(crate) fn transport_error(provider: &str, error: reqwest::Error) -> ProviderError {
    // A connection that never opened (refused, or its connect timeout) is "not reached":
    // nothing was sent, so it is `Network`, checked before `Timeout` (a request that was
    // sent and got no answer in time: it may have been delivered).
    let kind = if error.is_connect() {
        ProviderErrorKind::Network
    } else if error.is_timeout() {
        ProviderErrorKind::Timeout
    } else if error.is_request() {
        ProviderErrorKind::Network
    } else if error.is_decode() || error.is_body() {
        ProviderErrorKind::Protocol
    } else {
        ProviderErrorKind::Network
    };
    // reqwest errors carry the URL; it holds no credentials (they go in headers).
    ProviderError::new(kind, provider).with_source(error.without_url())
}

/// The kind an HTTP status implies when the body says nothing more specific.
pub(crate) fn kind_for_status(status: u16) -> ProviderErrorKind {
    match status {
        401 => ProviderErrorKind::Auth,
        403 => ProviderErrorKind::NotPermitted,
        429 => ProviderErrorKind::RateLimited,
        500..=599 => ProviderErrorKind::Unavailable,
        400..=499 => ProviderErrorKind::BadRequest,
        _ => ProviderErrorKind::Protocol,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A 2xx body that could not be read. Neither the body nor the parser's message is kept:
/// a success body may echo the message text, and with it the code.
pub(crate) fn unreadable(provider: &str, error: &serde_json::Error) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Protocol, provider).with_source(UnreadableBody {
        category: match error.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: error.line(),
        column: error.column(),
    })
}

/// Why a success body was unreadable, without any of its content.
#[derive(Debug, Error)]
#[error(
    "response body is not the expected JSON ({category} error at line {line}, column {column})"
)]
pub struct UnreadableBody {
    category: &'static str,
    line: usize,
    column: usize,
}

/// The response body was over [`MAX_RESPONSE_BYTES`].
#[derive(Debug, Error)]
#[error("response body is larger than {MAX_RESPONSE_BYTES} bytes")]
pub struct OversizedBody;

/// Reads at most [`MAX_RESPONSE_BYTES`] of a response body, chunk by chunk.
async fn read_body(
    provider: &str,
    mut response: reqwest::Response,
) -> Result<String, ProviderError> {
    let oversized =
        || ProviderError::new(ProviderErrorKind::Protocol, provider).with_source(OversizedBody);
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(oversized());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(provider, error))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(oversized());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Adds status, retry-after and the (truncated) body to an error.
pub(crate) fn with_response(
    error: ProviderError,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> ProviderError {
    let error = error.with_status(status).with_body(body);
    match retry_after(headers) {
        Some(wait) => error.with_retry_after(wait),
        None => error,
    }
}

/// Sends one adapter request and turns the response into a receipt or a classified error:
/// `parse` reads a 2xx body, `classify` a non-2xx one. Logs one `tracing` event per request.
pub(crate) async fn execute(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    message: &crate::Message,
    parse: impl FnOnce(&str) -> Result<crate::Receipt, ProviderError>,
    classify: impl FnOnce(u16, &HeaderMap, &str) -> ProviderError,
) -> Result<crate::Receipt, ProviderError> {
    let started = std::time::Instant::now();
    let response = request.send().await.map_err(|error| {
        log_request(provider, message.channel(), message.to(), None, started);
        transport_error(provider, error)
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_body(provider, response)
        .await
        .map_err(|error| error.with_status(status))?;
    log_request(
        provider,
        message.channel(),
        message.to(),
        Some(status),
        started,
    );
    if (200..300).contains(&status) {
        parse(&body).map_err(|error| error.with_status(status))
    } else {
        Err(classify(status, &headers, &body))
    }
}

/// Masked number and latency for the per-request `tracing` event.
fn log_request(
    provider: &str,
    channel: crate::Channel,
    to: &crate::PhoneNumber,
    status: Option<u16>,
    started: std::time::Instant,
) {
    tracing::info!(
        provider,
        channel = %channel,
        to = %to,
        status = status.unwrap_or(0),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "provider request"
    );
}
