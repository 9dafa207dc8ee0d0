//! Rate limits: quotas, the keys they apply to, and the GCRA decision every store shares.
//!
//! A send is charged to several limits at once (client IP, subject, number, ...). A store
//! decides all of them first and charges them only if every one allows the send, in one
//! atomic step ([`OtpStore::throttle`](crate::OtpStore::throttle)): a refused request
//! writes nothing, so an abuser who is over one limit cannot spend anybody else's budget.

mod backoff;
mod budget;
mod conversion;
mod failure_cap;
mod gcra;
mod quota;

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

pub use backoff::{Backoff, BackoffState, BackoffStep, backoff};
pub use budget::{Budget, BudgetCap, BudgetScope, BudgetStep, BudgetUse, Budgets, day_of, spend};
pub use conversion::{
    ConversionGuard, ConversionRule, ConversionState, ConversionStep, Counts, bucket_millis,
    conversion, credit,
};
pub use failure_cap::FailureCap;
pub use gcra::{Decision, GcraStep, gcra};
pub use quota::Quota;

use crate::phone::PhoneNumber;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// The same relayed request (e.g. Okta's `eventId`) was already sent, or is being
    /// sent now: one message per request key while its code lives.
    Duplicate,
    /// Too soon after the last send to this number.
    ResendCooldown,
    /// Too many sends to this number.
    Destination,
    /// Too many sends for this user.
    Subject,
    /// Too many sends requested from this client IP (an IPv6 client per /64).
    ClientIp,
    /// Too many sends requested from this IPv6 /48 (many /64s are cheap to rent).
    ClientNetwork,
    /// Too many sends for this tenant.
    Tenant,
    /// Too many sends to this country.
    Country,
    /// Too many sends in total.
    Global,
    /// Progressive backoff: this user or number has had its free sends, and must wait
    /// longer before each further one.
    Backoff,
    /// A daily budget (messages or money) is spent.
    Budget,
    /// The conversion guard: too few codes sent to this number prefix (or country) are
    /// verified, the mark of SMS pumping.
    Conversion,
}

impl LimitKind {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::ResendCooldown => "resend_cooldown",
            Self::Destination => "destination",
            Self::Subject => "subject",
            Self::ClientIp => "client_ip",
            Self::ClientNetwork => "client_network",
            Self::Tenant => "tenant",
            Self::Country => "country",
            Self::Global => "global",
            Self::Backoff => "backoff",
            Self::Budget => "budget",
            Self::Conversion => "conversion",
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
    /// The resend cooldown of one number, named by its keyed fingerprint
    /// ([`KeyRing::destination_fingerprint`](crate::KeyRing::destination_fingerprint)) so
    /// that no store key holds a phone number.
    pub fn resend_cooldown(destination_fingerprint: [u8; 8]) -> Self {
        Self::new(
            LimitKind::ResendCooldown,
            format!("cd:{}", hex(&destination_fingerprint)),
        )
    }

    /// One relayed request, named by its keyed fingerprint: a quota of one per code
    /// lifetime makes a repeat of the request a refusal instead of a second message.
    pub fn request(request_fingerprint: [u8; 16]) -> Self {
        Self::new(
            LimitKind::Duplicate,
            format!("req:{}", hex(&request_fingerprint)),
        )
    }

    /// One event remembered once ([`OtpService::first_sighting`](crate::OtpService::first_sighting)),
    /// named by its keyed fingerprint.
    pub fn sighting(fingerprint: [u8; 16]) -> Self {
        Self::new(LimitKind::Duplicate, format!("seen:{}", hex(&fingerprint)))
    }

    /// The one retry a relayed request gets after its delivery failed, named by the
    /// request's keyed fingerprint: charged on the first failure only.
    pub fn request_retry(request_fingerprint: [u8; 16]) -> Self {
        Self::new(
            LimitKind::Duplicate,
            format!("reqr:{}", hex(&request_fingerprint)),
        )
    }

    /// Sends to one number, named by its keyed fingerprint (see
    /// [`LimitKey::resend_cooldown`]).
    pub fn destination(destination_fingerprint: [u8; 8]) -> Self {
        Self::new(
            LimitKind::Destination,
            format!("dst:{}", hex(&destination_fingerprint)),
        )
    }

    /// Sends for one user. A subject is counted per tenant when a tenant is given, so two
    /// tenants' `user-1` are two users.
    pub fn subject(tenant: Option<&str>, subject: &str) -> Self {
        let key = match tenant {
            // The length makes the split unambiguous whatever the strings hold.
            Some(tenant) => format!("tsub:{}:{tenant}{subject}", tenant.len()),
            None => format!("sub:{subject}"),
        };
        Self::new(LimitKind::Subject, key)
    }

    /// Sends requested from one IP address. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4 clients) counts as the IPv4
    /// address; other IPv6 addresses count per /64, the block one subscriber usually holds.
    pub fn client_ip(ip: IpAddr) -> Self {
        let key = match ip.to_canonical() {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        Self::new(LimitKind::ClientIp, key)
    }

    /// Sends requested from one IPv6 /48, the block a site is usually given; `None` for an
    /// IPv4 client (including an IPv4-mapped one).
    pub fn client_network(ip: IpAddr) -> Option<Self> {
        match ip.to_canonical() {
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(Self::new(
                    LimitKind::ClientNetwork,
                    format!("net6:{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]),
                ))
            }
        }
    }

    /// Sends for one tenant.
    pub fn tenant(tenant: &str) -> Self {
        Self::new(LimitKind::Tenant, format!("ten:{tenant}"))
    }

    /// Sends to one country: its ISO region, or `+<calling code>` for a number that belongs
    /// to no region (`+881` satellite phones, `+800` freephone).
    pub fn country(to: &PhoneNumber) -> Self {
        let key = match to.region() {
            Some(region) => format!("cc:{region}"),
            None => format!("cc:+{}", to.calling_code()),
        };
        Self::new(LimitKind::Country, key)
    }

    /// The backoff streak of one user (per tenant, as [`LimitKey::subject`]).
    pub fn subject_backoff(tenant: Option<&str>, subject: &str) -> Self {
        let key = match tenant {
            Some(tenant) => format!("bo:tsub:{}:{tenant}{subject}", tenant.len()),
            None => format!("bo:sub:{subject}"),
        };
        Self::new(LimitKind::Backoff, key)
    }

    /// The backoff streak of one number, by its keyed fingerprint.
    pub fn destination_backoff(destination_fingerprint: [u8; 8]) -> Self {
        Self::new(
            LimitKind::Backoff,
            format!("bo:dst:{}", hex(&destination_fingerprint)),
        )
    }

    /// Today's spending under one budget: `scope` names whose (`ten:billing`, `cc:JP`,
    /// `total`), `unit` what is counted (`msg`, `money`), `day` the UTC day number.
    pub fn budget(scope: &str, unit: &str, day: u64) -> Self {
        Self::new(LimitKind::Budget, format!("bud:{unit}:{day}:{scope}"))
    }

    /// Sends and verifications to one number prefix (leading E.164 digits, country code
    /// included: never a whole number).
    pub fn prefix_conversion(prefix: &str) -> Self {
        Self::new(LimitKind::Conversion, format!("cv:p:{prefix}"))
    }

    /// Sends and verifications to one number range (a shorter prefix) over the long window.
    pub fn range_conversion(range: &str) -> Self {
        Self::new(LimitKind::Conversion, format!("cv:r:{range}"))
    }

    /// Sends and verifications to one country over the guard's window (`region` as in
    /// [`LimitKey::country`]).
    pub fn country_conversion(region: &str) -> Self {
        Self::new(LimitKind::Conversion, format!("cv:c:{region}"))
    }

    /// Sends and verifications to one country over the long window: its normal conversion,
    /// and its probation.
    pub fn country_baseline(region: &str) -> Self {
        Self::new(LimitKind::Conversion, format!("cv:b:{region}"))
    }

    /// Authenticator-app attempts of one account (by its keyed id).
    pub fn totp_attempts(account: crate::AccountId) -> Self {
        let mut key = String::with_capacity(5 + 2 * account.0.len());
        key.push_str("totp:");
        push_hex(&mut key, &account.0);
        Self::new(LimitKind::Subject, key)
    }

    /// All sends.
    pub fn global() -> Self {
        Self::new(LimitKind::Global, "global".to_owned())
    }

    fn new(kind: LimitKind, key: String) -> Self {
        Self { kind, key }
    }

    /// This key named by `fingerprint` (a keyed hash of its clear name) under the clear
    /// name's leading tag (`ip`, `sub`, `bo` …): the name stores get for a key that would
    /// otherwise name a person or an address.
    pub(crate) fn hidden(&self, fingerprint: [u8; 8]) -> Self {
        let tag = self.key.split(':').next().unwrap_or("k");
        Self::new(self.kind, format!("{tag}#{}", hex(&fingerprint)))
    }

    /// Which limit this key belongs to.
    pub fn kind(&self) -> LimitKind {
        self.kind
    }

    /// The storage key. Keys the service charges never hold a phone number, a subject or a
    /// client address (each is a keyed fingerprint); a tenant's name, the country and a
    /// number prefix are kept readable.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LimitKey({})", self.key)
    }
}

/// The guard's levels, narrowest first: the order of its keys in every admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardLevel {
    /// The number prefix over the short window.
    Prefix,
    /// The number range over the long window.
    Range,
    /// The whole country over the short window.
    Country,
    /// The whole country over the long window (its probation).
    CountryDay,
}

impl GuardLevel {
    /// Every level, in the order of the guard's keys.
    pub const ALL: [Self; 4] = [Self::Prefix, Self::Range, Self::Country, Self::CountryDay];

    /// A short lowercase name (metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::Range => "range",
            Self::Country => "country",
            Self::CountryDay => "country_day",
        }
    }

    /// The level a guard key belongs to.
    pub fn of(key: &LimitKey) -> Option<Self> {
        let tag = key.as_str().get(..5)?;
        Self::ALL.into_iter().find(|level| level.tag() == tag)
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Prefix => "cv:p:",
            Self::Range => "cv:r:",
            Self::Country => "cv:c:",
            Self::CountryDay => "cv:b:",
        }
    }
}

/// The region a guard counts `to` under: its ISO region, or `+<calling code>`.
pub(crate) fn guard_region(to: &PhoneNumber) -> String {
    match to.region() {
        Some(region) => region.as_str().to_owned(),
        None => format!("+{}", to.calling_code()),
    }
}

/// The guard's keys for `to` and their bucket lengths, in [`GuardLevel::ALL`] order: its
/// prefix, range, country, and the country over the long window (also its baseline).
pub(crate) fn guard_keys(guard: &ConversionGuard, to: &PhoneNumber) -> [(LimitKey, u64); 4] {
    let digits = to.e164().trim_start_matches('+');
    let lead = |n: u8| -> String { digits.chars().take(usize::from(n)).collect() };
    let region = guard_region(to);
    let short = bucket_millis(guard.window);
    let long = bucket_millis(guard.baseline_window);
    [
        (
            LimitKey::prefix_conversion(&lead(guard.prefix_digits)),
            short,
        ),
        (LimitKey::range_conversion(&lead(guard.range_digits)), long),
        (LimitKey::country_conversion(&region), short),
        (LimitKey::country_baseline(&region), long),
    ]
}

/// The rule each of `guard_keys`' keys judges a send by. The prefix and the country over
/// the short window are held to the country's floor; a range and the country over the day
/// only to the minimum floor: they catch places that do not convert at all (an empty
/// country, a range only a bot sends to) without refusing real users when a bot in one
/// of their prefixes lowers a busy range's conversion.
pub(crate) fn guard_rules(
    guard: &ConversionGuard,
    to: &PhoneNumber,
    floor_permille: u32,
) -> [ConversionRule; 4] {
    let probation = u64::from(guard.probation_for(&guard_region(to)));
    let range_probation = u64::from(guard.range_probation_sends);
    let hold_millis = bucket_millis(guard.baseline_window);
    let minimum = u32::from(guard.min_floor_percent.min(100)) * 10;
    let rule = |bucket_millis, allowance, floor_permille| ConversionRule {
        bucket_millis,
        allowance,
        floor_permille,
        hold_millis,
    };
    let short = bucket_millis(guard.window);
    let long = bucket_millis(guard.baseline_window);
    [
        rule(short, u64::from(guard.min_prefix_sends), floor_permille),
        rule(long, range_probation, minimum.min(floor_permille)),
        rule(short, u64::from(guard.min_country_sends), floor_permille),
        rule(long, probation, minimum.min(floor_permille)),
    ]
}

fn guard_charges(guard: &ConversionGuard, to: &PhoneNumber, floor_permille: u32) -> Vec<Limit> {
    guard_keys(guard, to)
        .into_iter()
        .zip(guard_rules(guard, to, floor_permille))
        .map(|((key, _), rule)| Limit {
            key,
            rule: Rule::Conversion(rule),
        })
        .collect()
}

/// The budget charges of one send: today's key per applicable cap, and its amount.
fn budget_charges(budgets: &Budgets, send: &SendKeys<'_>) -> Vec<Limit> {
    let (day, resets_at_millis) = day_of(send.now);
    let country = send.to.region().map(|r| r.as_str().to_owned());
    let price = budgets
        .prices
        .max_unit_price(country.as_deref(), send.channel)
        .map(|unit| unit.0.saturating_mul(send.units));
    let mut charges = Vec::new();
    for budget in &budgets.caps {
        let Some(key) = budget_key(budget, budgets, send.tenant, country.as_deref(), day) else {
            continue;
        };
        let (cap, amount) = match budget.per_day {
            BudgetCap::Messages(cap) => (cap, 1),
            // Unpriced: more than any cap, so refused (fail closed).
            BudgetCap::Money(cap) => (cap.0, price.unwrap_or(u64::MAX)),
        };
        charges.push(Limit {
            key,
            rule: Rule::Budget {
                cap,
                amount,
                resets_at_millis,
            },
        });
    }
    charges
}

/// The store key `budget` (one of `all`) counts a send by `tenant` to `country` under on
/// UTC `day`, or none when the cap does not count that send. One function, so what a send
/// charges and what [`OtpService::budget_use`](crate::OtpService::budget_use) reads
/// cannot drift.
pub(crate) fn budget_key(
    budget: &Budget,
    all: &Budgets,
    tenant: Option<&str>,
    country: Option<&str>,
    day: u64,
) -> Option<LimitKey> {
    let scope = match &budget.scope {
        BudgetScope::EachTenant => tenant.map(|t| format!("eten:{t}")),
        BudgetScope::Tenant(t) => (tenant == Some(t.as_str())).then(|| format!("ten:{t}")),
        BudgetScope::EachCountry => Some(format!("ecc:{}", country.unwrap_or("-"))),
        BudgetScope::Country(c) => (country == Some(c.as_str())).then(|| format!("cc:{c}")),
        BudgetScope::OtherCountries => {
            let listed = all.caps.iter().any(
                |cap| matches!(&cap.scope, BudgetScope::Country(c) if Some(c.as_str()) == country),
            );
            (!listed).then(|| format!("occ:{}", country.unwrap_or("-")))
        }
        BudgetScope::Total => Some("total".to_owned()),
    }?;
    let unit = match budget.per_day {
        BudgetCap::Messages(_) => "msg",
        BudgetCap::Money(_) => "money",
    };
    Some(LimitKey::budget(&scope, unit, day))
}

/// A uniform draw from 0 to 1000 from the CSPRNG (the full jitter if it fails: never a
/// shorter wait).
fn jitter_permille() -> u32 {
    let mut bytes = [0u8; 4];
    match crate::random::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes) % 1001,
        Err(_) => 1000,
    }
}

/// Lowercase hex of `bytes`, for store keys and references.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends `bytes` as lowercase hex (a table lookup: store keys are built on every call).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
}

/// One limit a send is charged to: the key it counts under and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What is counted.
    pub key: LimitKey,
    /// How it is counted.
    pub rule: Rule,
}

/// How a limit counts sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// At most so many per period ([`gcra`]).
    Rate(Quota),
    /// Progressive backoff ([`backoff`]), with this send's jitter draw (0 to 1000).
    Backoff {
        /// The schedule.
        schedule: Backoff,
        /// Scales the jitter of the wait this send starts.
        jitter_permille: u32,
    },
    /// The conversion guard ([`conversion`]): counts the send in a sliding window,
    /// refusing it when the window's verifications do not pay for it.
    Conversion(ConversionRule),
    /// A budget ([`spend`]): `amount` more, at most `cap` until `resets_at_millis`.
    Budget {
        /// The most that may be used in the window.
        cap: u64,
        /// What this send uses.
        amount: u64,
        /// When the window ends (Unix ms).
        resets_at_millis: u64,
    },
}

impl Limit {
    /// `quota` counted under `key`.
    pub fn new(key: LimitKey, quota: Quota) -> Self {
        Self {
            key,
            rule: Rule::Rate(quota),
        }
    }

    /// Backoff on `schedule` counted under `key`; `jitter_permille` (0 to 1000) is this
    /// send's random draw.
    pub fn backoff(key: LimitKey, schedule: Backoff, jitter_permille: u32) -> Self {
        Self {
            key,
            rule: Rule::Backoff {
                schedule,
                jitter_permille,
            },
        }
    }
}

/// The answer to "may this send happen now?" for a whole set of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every limit allows it; each was charged one event.
    Allowed,
    /// A limit refuses it; nothing was charged.
    Limited {
        /// The first limit (in the order given) that refused.
        limit: LimitKind,
        /// How long until that limit would allow one more send.
        retry_after: Duration,
        /// Its position among the limits given (0-based): which key refused.
        index: usize,
    },
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
    /// Sends per IPv6 /48 (IPv4 clients are not counted here). Default 100 per hour.
    pub per_client_network: Option<Quota>,
    /// Sends per tenant. Default off.
    pub per_tenant: Option<Quota>,
    /// Sends per destination country. Default off.
    pub per_country: Option<Quota>,
    /// All sends. Default off.
    pub global: Option<Quota>,
    /// Progressive backoff per subject and per number: a few sends at once, then waits
    /// that double (see [`Backoff`]). Default off; `Some(Backoff::default())` turns on the
    /// 1-2-4...32-minute schedule.
    pub backoff: Option<Backoff>,
    /// Daily budgets in messages or money, per tenant, country or in total. Default none.
    pub budgets: Option<Budgets>,
    /// Numbers, prefixes and users exempt from the conversion guard and backoff (test
    /// numbers, a support desk, a partner's range). Never exempt from fixed quotas, a
    /// challenge's attempts or the account failure cap.
    pub safe_list: SafeList,
    /// The conversion guard against SMS pumping (see [`ConversionGuard`]). Default off;
    /// `Some(ConversionGuard::default())` turns it on. Verifications are then counted too
    /// (one more store call after a code verifies, two on Redis).
    pub conversion_guard: Option<ConversionGuard>,
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
            per_client_network: Some(Quota::per_hour(nonzero(100))),
            per_tenant: None,
            per_country: None,
            global: None,
            backoff: None,
            budgets: None,
            safe_list: SafeList::default(),
            conversion_guard: None,
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
            per_client_network: None,
            per_tenant: None,
            per_country: None,
            global: None,
            backoff: None,
            budgets: None,
            safe_list: SafeList::default(),
            conversion_guard: None,
        }
    }
}

/// Sends exempt from the conversion guard and backoff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafeList {
    /// Whole numbers, E.164 (`+819012345678`).
    pub numbers: std::collections::BTreeSet<String>,
    /// Leading E.164 digits, country code included (`+8190123` or `8190123`).
    pub prefixes: Vec<String>,
    /// Subjects (user ids), exactly.
    pub subjects: std::collections::BTreeSet<String>,
}

impl SafeList {
    /// Whether a send to `to` for `subject` is exempt.
    pub fn covers(&self, to: &PhoneNumber, subject: Option<&str>) -> bool {
        let digits = to.e164().trim_start_matches('+');
        self.numbers.contains(to.e164())
            || self
                .prefixes
                .iter()
                .map(|prefix| prefix.trim_start_matches('+'))
                .any(|prefix| !prefix.is_empty() && digits.starts_with(prefix))
            || subject.is_some_and(|s| self.subjects.contains(s))
    }
}

/// What one send's limits are keyed by.
pub(crate) struct SendKeys<'a> {
    pub(crate) to: &'a PhoneNumber,
    pub(crate) destination_fingerprint: [u8; 8],
    /// In clear for the safe list only; limits are charged to `sender`'s keys.
    pub(crate) subject: Option<&'a str>,
    pub(crate) tenant: Option<&'a str>,
    pub(crate) sender: SenderKeys,
    pub(crate) channel: crate::Channel,
    /// SMS segments, or 1 for a call (what budgets price).
    pub(crate) units: u64,
    pub(crate) now: crate::Timestamp,
}

/// Who asked for a send, as limit keys: the user (per tenant) and the client address and
/// network, each under a keyed fingerprint of its clear name, so no store holds a user id
/// or an address. Built by the service, which holds the key.
#[derive(Debug, Clone, Default)]
pub(crate) struct SenderKeys {
    pub(crate) subject: Option<LimitKey>,
    pub(crate) subject_backoff: Option<LimitKey>,
    pub(crate) client_ip: Option<LimitKey>,
    pub(crate) client_network: Option<LimitKey>,
}

impl SenderKeys {
    /// The keys of `subject` (per `tenant`) and `client_ip` that `limits` charge, each
    /// passed through `hide` (clear key → its fingerprinted one); a limit that is off
    /// costs no fingerprint.
    pub(crate) fn new(
        limits: &Limits,
        tenant: Option<&str>,
        subject: Option<&str>,
        client_ip: Option<IpAddr>,
        hide: impl Fn(&LimitKey) -> LimitKey,
    ) -> Self {
        Self {
            subject: subject
                .filter(|_| limits.per_subject.is_some())
                .map(|s| hide(&LimitKey::subject(tenant, s))),
            subject_backoff: subject
                .filter(|_| limits.backoff.is_some())
                .map(|s| hide(&LimitKey::subject_backoff(tenant, s))),
            client_ip: client_ip
                .filter(|_| limits.per_client_ip.is_some())
                .map(|ip| hide(&LimitKey::client_ip(ip))),
            client_network: client_ip
                .filter(|_| limits.per_client_network.is_some())
                .and_then(LimitKey::client_network)
                .map(|key| hide(&key)),
        }
    }
}

impl Limits {
    /// The limits one send is charged to, narrowest abuser key first: the client IP, then
    /// its network, the subject and the tenant, then the number, its country and
    /// everything. Nothing is charged unless all allow, so the order only decides which
    /// refusal is reported: the one closest to the abuser.
    ///
    /// `guard_floor_permille` is the conversion guard's floor for this send's country (from
    /// its learned conversion).
    pub(crate) fn charges(&self, send: &SendKeys<'_>, guard_floor_permille: u32) -> Vec<Limit> {
        let mut charges = Vec::with_capacity(9);
        let mut add = |quota: Option<Quota>, key: Option<LimitKey>| {
            if let (Some(quota), Some(key)) = (quota, key) {
                charges.push(Limit::new(key, quota));
            }
        };
        let sender = &send.sender;
        add(self.per_client_ip, sender.client_ip.clone());
        add(self.per_client_network, sender.client_network.clone());
        add(self.per_subject, sender.subject.clone());
        add(self.per_tenant, send.tenant.map(LimitKey::tenant));
        add(
            self.resend_cooldown.map(Quota::one_every),
            Some(LimitKey::resend_cooldown(send.destination_fingerprint)),
        );
        add(
            self.per_destination,
            Some(LimitKey::destination(send.destination_fingerprint)),
        );
        add(self.per_country, Some(LimitKey::country(send.to)));
        add(self.global, Some(LimitKey::global()));
        if let Some(budgets) = &self.budgets {
            charges.extend(budget_charges(budgets, send));
        }
        let safe = self.safe_list.covers(send.to, send.subject);
        if let Some(guard) = self.conversion_guard.as_ref().filter(|_| !safe) {
            charges.extend(guard_charges(guard, send.to, guard_floor_permille));
        }
        if let Some(schedule) = self.backoff.filter(|_| !safe) {
            // Backoff last: a send refused by a fixed quota does not even reach it, and
            // its refusal is reported only when nothing narrower refused.
            let jitter = jitter_permille();
            if let Some(subject) = &sender.subject_backoff {
                charges.push(Limit::backoff(subject.clone(), schedule, jitter));
            }
            charges.push(Limit::backoff(
                LimitKey::destination_backoff(send.destination_fingerprint),
                schedule,
                jitter,
            ));
        }
        charges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap_or(IpAddr::from([0; 4]));
        let plain: IpAddr = "203.0.113.9".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(LimitKey::client_ip(mapped), LimitKey::client_ip(plain));
        assert_eq!(LimitKey::client_ip(plain).as_str(), "ip:203.0.113.9");
        assert_eq!(LimitKey::client_network(mapped), None);
    }

    #[test]
    fn sender_keys_are_hidden_under_their_tag() {
        let hide = |key: &LimitKey| key.hidden([0xab; 8]);
        let ip: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4]));
        let every = Limits {
            backoff: Some(Backoff::default()),
            ..Limits::default()
        };
        let keys = SenderKeys::new(&every, Some("acme"), Some("user-1"), Some(ip), hide);
        let names: Vec<String> = [
            keys.subject,
            keys.subject_backoff,
            keys.client_ip,
            keys.client_network,
        ]
        .into_iter()
        .flatten()
        .map(|k| k.as_str().to_owned())
        .collect();
        assert_eq!(
            names,
            [
                "tsub#abababababababab",
                "bo#abababababababab",
                "ip6#abababababababab",
                "net6#abababababababab"
            ]
        );
        let v4 = SenderKeys::new(
            &every,
            None,
            None,
            Some(IpAddr::from([203, 0, 113, 9])),
            hide,
        );
        assert!(v4.subject.is_none() && v4.client_network.is_none());
        assert_eq!(v4.client_ip.map(|k| k.kind()), Some(LimitKind::ClientIp));
        // Limits that are off get no key.
        let none = SenderKeys::new(&Limits::danger_none(), Some("t"), Some("u"), Some(ip), hide);
        assert!(none.subject.is_none() && none.subject_backoff.is_none());
        assert!(none.client_ip.is_none() && none.client_network.is_none());
    }

    #[test]
    fn tenant_scoped_subjects_cannot_collide() {
        // Without the length, tenant "a" + subject "bc" and tenant "ab" + subject "c"
        // would share a key.
        assert_ne!(
            LimitKey::subject(Some("a"), "bc"),
            LimitKey::subject(Some("ab"), "c")
        );
        assert_ne!(
            LimitKey::subject(None, "1:ab"),
            LimitKey::subject(Some("a"), "b")
        );
    }
}
