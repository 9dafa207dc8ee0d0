//! Rate limits: quotas, the keys they apply to, and the GCRA decision every store shares.

mod gcra;
mod quota;

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

pub use gcra::{Decision, GcraStep, gcra};
pub use quota::Quota;

use crate::phone::PhoneNumber;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// Too soon after the last send to this number.
    ResendCooldown,
    /// Too many sends to this number.
    Destination,
    /// Too many sends for this user.
    Subject,
    /// Too many sends requested from this client IP.
    ClientIp,
    /// Too many sends for this tenant.
    Tenant,
    /// Too many sends to this country.
    Country,
    /// Too many sends in total.
    Global,
}

impl LimitKind {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResendCooldown => "resend_cooldown",
            Self::Destination => "destination",
            Self::Subject => "subject",
            Self::ClientIp => "client_ip",
            Self::Tenant => "tenant",
            Self::Country => "country",
            Self::Global => "global",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key a quota is counted under, e.g. one destination number or one client IP.
///
/// Stores use [`LimitKey::as_str`] as (part of) their key. `Debug` masks phone numbers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LimitKey {
    kind: LimitKind,
    key: String,
}

impl LimitKey {
    /// The resend cooldown of one number.
    pub fn resend_cooldown(to: &PhoneNumber) -> Self {
        Self::new(
            LimitKind::ResendCooldown,
            format!("cd:{}", to.e164_digits()),
        )
    }

    /// Sends to one number.
    pub fn destination(to: &PhoneNumber) -> Self {
        Self::new(LimitKind::Destination, format!("dst:{}", to.e164_digits()))
    }

    /// Sends for one user.
    pub fn subject(subject: &str) -> Self {
        Self::new(LimitKind::Subject, format!("sub:{subject}"))
    }

    /// Sends requested from one IP address. IPv6 addresses count per /64, the block one
    /// subscriber usually holds.
    pub fn client_ip(ip: IpAddr) -> Self {
        let key = match ip {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        Self::new(LimitKind::ClientIp, key)
    }

    /// Sends for one tenant.
    pub fn tenant(tenant: &str) -> Self {
        Self::new(LimitKind::Tenant, format!("ten:{tenant}"))
    }

    /// Sends to one country (ISO region, or `"001"` for non-geographic numbers).
    pub fn country(to: &PhoneNumber) -> Self {
        let key = match to.region() {
            Some(region) => format!("cc:{region}"),
            None => "cc:001".to_owned(),
        };
        Self::new(LimitKind::Country, key)
    }

    /// All sends.
    pub fn global() -> Self {
        Self::new(LimitKind::Global, "global".to_owned())
    }

    fn new(kind: LimitKind, key: String) -> Self {
        Self { kind, key }
    }

    /// Which limit this key belongs to.
    pub fn kind(&self) -> LimitKind {
        self.kind
    }

    /// The storage key (contains full numbers for destination keys: do not log it).
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            LimitKind::ResendCooldown | LimitKind::Destination => {
                write!(f, "LimitKey({}, [number])", self.kind)
            }
            _ => write!(f, "LimitKey({})", self.key),
        }
    }
}

/// The send limits an [`OtpService`](crate::OtpService) enforces before it generates a
/// code or calls a provider. Each is optional; the defaults follow DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Minimum gap between two sends to one number. Default 30 s.
    pub resend_cooldown: Option<Duration>,
    /// Sends per number. Default 5 per 10 minutes (Twilio Verify, error 60203).
    pub per_destination: Option<Quota>,
    /// Sends per subject (user id). Default 10 per hour (Auth0 phone MFA).
    pub per_subject: Option<Quota>,
    /// Sends per client IP (IPv6 per /64). Default 30 per hour.
    pub per_client_ip: Option<Quota>,
    /// Sends per tenant. Default off.
    pub per_tenant: Option<Quota>,
    /// Sends per destination country. Default off.
    pub per_country: Option<Quota>,
    /// All sends. Default off.
    pub global: Option<Quota>,
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            resend_cooldown: Some(Duration::from_secs(30)),
            per_destination: Some(Quota::per_period(nonzero(5), Duration::from_secs(600))),
            per_subject: Some(Quota::per_hour(nonzero(10))),
            per_client_ip: Some(Quota::per_hour(nonzero(30))),
            per_tenant: None,
            per_country: None,
            global: None,
        }
    }
}

impl Limits {
    /// No send limits at all (tests and benchmarks; never in production).
    pub fn danger_none() -> Self {
        Self {
            resend_cooldown: None,
            per_destination: None,
            per_subject: None,
            per_client_ip: None,
            per_tenant: None,
            per_country: None,
            global: None,
        }
    }
}
