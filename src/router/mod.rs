//! [`Router`]: per-country provider chains with failover, destination policy, circuit
//! breaking and per-provider metrics. A router is itself a [`PhoneProvider`], so it plugs
//! into `OtpService`, into another router, or delivers codes an identity platform made.

mod budget;
mod failover;
mod health;
mod metrics;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use thiserror::Error;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use budget::ProviderBudgets;
pub use failover::Failover;
pub use health::{BreakerConfig, BreakerStatus};
pub use metrics::{CountryMetrics, LATENCY_BUCKETS, ProviderMetrics, RouterMetrics};

use crate::clock::{Clock, SystemClock};
use crate::limit::Admission;
use crate::message::{Channel, Message};
use crate::phone::{PhoneNumber, Region};
use crate::policy::DestinationPolicy;
use crate::provider::Receipt;
use crate::provider::{Attempt, AttemptOutcome, PhoneProvider, ProviderError, ProviderErrorKind};
use health::{Breaker, Scope};
use metrics::ProviderCounters;

/// A router's rules were inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouterBuildError {
    /// A chain names a provider that was not added.
    #[error("route names provider {0:?}, which was not added")]
    UnknownProvider(String),
    /// Two providers share a name.
    #[error("provider name {0:?} is used twice")]
    DuplicateProvider(String),
    /// A chain lists no provider.
    #[error("route has an empty provider chain")]
    EmptyChain,
    /// A prefix is not `+` followed by digits.
    #[error("prefix {0:?} is not '+' followed by digits")]
    InvalidPrefix(String),
    /// A region code is unknown.
    #[error("unknown region code {0:?}")]
    UnknownRegion(String),
}

struct Entry {
    name: String,
    provider: Arc<dyn PhoneProvider>,
}

struct State {
    /// Per provider: failures of the provider itself.
    breakers: Vec<Breaker>,
    /// Per provider and destination region: refusals about the destination. Only
    /// breakers that have counted something are kept.
    destination_breakers: HashMap<(usize, String), Breaker>,
    counters: Vec<ProviderCounters>,
    countries: BTreeMap<String, CountryMetrics>,
}

type Chain = Vec<usize>;

/// Builds a [`Router`].
///
/// ```
/// use phone_otp::{Channel, PhoneProvider, Router, StubProvider};
///
/// let router = Router::builder()
///     .provider(StubProvider::named("ntt-cpaas"))
///     .provider(StubProvider::named("smslink"))
///     .provider(StubProvider::named("twilio"))
///     .country("JP", Channel::Sms, &["ntt-cpaas", "smslink", "twilio"])
///     .country("JP", Channel::Voice, &["ntt-cpaas", "twilio"])
///     .default_chain(Channel::Sms, &["twilio"])
///     .default_chain(Channel::Voice, &["twilio"])
///     .build()?;
/// assert!(router.supports(Channel::Voice));
/// # Ok::<(), phone_otp::RouterBuildError>(())
/// ```
pub struct RouterBuilder {
    name: String,
    providers: Vec<Entry>,
    prefixes: Vec<(String, Channel, Vec<String>)>,
    countries: Vec<(String, Channel, Vec<String>)>,
    defaults: Vec<(Channel, Vec<String>)>,
    failover: Failover,
    policy: Option<DestinationPolicy>,
    /// Set by [`RouterBuilder::policy`]: a policy given here is enforced on every send,
    /// a service's too (the default one defers to the service's own check).
    policy_configured: bool,
    breaker: BreakerConfig,
    clock: Arc<dyn Clock>,
    budgets: Option<ProviderBudgets>,
}

impl RouterBuilder {
    /// The router's own name, for errors and nesting (default `"router"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a provider that chains can name by its [`PhoneProvider::name`].
    pub fn provider(mut self, provider: impl PhoneProvider + 'static) -> Self {
        let provider: Arc<dyn PhoneProvider> = Arc::new(provider);
        self.providers.push(Entry {
            name: provider.name().to_owned(),
            provider,
        });
        self
    }

    /// Routes `channel` to numbers starting with `prefix` (E.164, e.g. `"+8150"`) through
    /// `chain`. The longest matching prefix wins; prefixes beat countries.
    pub fn prefix(mut self, prefix: &str, channel: Channel, chain: &[&str]) -> Self {
        self.prefixes
            .push((prefix.to_owned(), channel, owned(chain)));
        self
    }

    /// Routes `channel` to a country (ISO code) through `chain`.
    pub fn country(mut self, region: &str, channel: Channel, chain: &[&str]) -> Self {
        self.countries
            .push((region.to_owned(), channel, owned(chain)));
        self
    }

    /// The chain for destinations no other rule matches.
    pub fn default_chain(mut self, channel: Channel, chain: &[&str]) -> Self {
        self.defaults.push((channel, owned(chain)));
        self
    }

    /// The failover policy (default [`Failover::default`]).
    pub fn failover(mut self, failover: Failover) -> Self {
        self.failover = failover;
        self
    }

    /// The destination policy (default [`DestinationPolicy::default`]). A policy set here
    /// is checked on every send; the default one is not checked again for messages an
    /// [`OtpService`](crate::OtpService) sends, which checked its own policy before
    /// charging any limit (configure the policy there, once).
    pub fn policy(mut self, policy: DestinationPolicy) -> Self {
        self.policy = Some(policy);
        self.policy_configured = true;
        self
    }

    /// No destination policy: every number any rule matches is sent to. Only where another
    /// layer (e.g. `OtpService`) already checks.
    pub fn danger_no_policy(mut self) -> Self {
        self.policy = None;
        self
    }

    /// Circuit breaker settings (default [`BreakerConfig::default`]).
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Daily budgets per provider: a provider whose budget is spent is skipped and the
    /// chain moves on (see [`ProviderBudgets`]).
    pub fn provider_budgets(mut self, budgets: ProviderBudgets) -> Self {
        self.budgets = Some(budgets);
        self
    }

    /// The clock for breaker cool-downs (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks every chain and builds the router.
    ///
    /// # Errors
    /// A [`RouterBuildError`] naming the bad rule.
    pub fn build(self) -> Result<Router, RouterBuildError> {
        let mut index_of = HashMap::new();
        for (index, entry) in self.providers.iter().enumerate() {
            if index_of.insert(entry.name.clone(), index).is_some() {
                return Err(RouterBuildError::DuplicateProvider(entry.name.clone()));
            }
        }
        let resolve = |names: &[String]| -> Result<Chain, RouterBuildError> {
            if names.is_empty() {
                return Err(RouterBuildError::EmptyChain);
            }
            names
                .iter()
                .map(|name| {
                    index_of
                        .get(name)
                        .copied()
                        .ok_or_else(|| RouterBuildError::UnknownProvider(name.clone()))
                })
                .collect()
        };
        let mut prefixes = Vec::new();
        for (prefix, channel, names) in &self.prefixes {
            let digits = prefix
                .strip_prefix('+')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| RouterBuildError::InvalidPrefix(prefix.clone()))?;
            prefixes.push((digits.to_owned(), *channel, resolve(names)?));
        }
        // Longest prefix first, so the first match is the most specific.
        prefixes.sort_by_key(|(digits, _, _)| std::cmp::Reverse(digits.len()));
        let mut countries = HashMap::new();
        for (region, channel, names) in &self.countries {
            let region =
                Region::new(region).map_err(|_| RouterBuildError::UnknownRegion(region.clone()))?;
            countries.insert((region, *channel), resolve(names)?);
        }
        let mut defaults = HashMap::new();
        for (channel, names) in &self.defaults {
            defaults.insert(*channel, resolve(names)?);
        }
        let count = self.providers.len();
        Ok(Router {
            inner: Arc::new(Inner {
                name: self.name,
                providers: self.providers,
                prefixes,
                countries,
                defaults,
                failover: self.failover,
                policy: self.policy,
                policy_configured: self.policy_configured,
                breaker: self.breaker,
                clock: self.clock,
                budgets: self.budgets,
                state: Mutex::new(State {
                    breakers: vec![Breaker::new(); count],
                    destination_breakers: HashMap::new(),
                    counters: vec![ProviderCounters::default(); count],
                    countries: BTreeMap::new(),
                }),
            }),
        })
    }
}

fn owned(chain: &[&str]) -> Vec<String> {
    chain.iter().map(|name| (*name).to_owned()).collect()
}

struct Inner {
    name: String,
    providers: Vec<Entry>,
    prefixes: Vec<(String, Channel, Chain)>,
    countries: HashMap<(Region, Channel), Chain>,
    defaults: HashMap<Channel, Chain>,
    failover: Failover,
    policy: Option<DestinationPolicy>,
    /// Set by [`RouterBuilder::policy`]: a policy given here is enforced on every send,
    /// a service's too (the default one defers to the service's own check).
    policy_configured: bool,
    breaker: BreakerConfig,
    clock: Arc<dyn Clock>,
    budgets: Option<ProviderBudgets>,
    state: Mutex<State>,
}

/// Delivers through an ordered chain of providers chosen per destination and channel,
/// failing over when a provider cannot deliver. Cheap to clone; clones share health and
/// metrics.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .inner
            .providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        f.debug_struct("Router")
            .field("name", &self.inner.name)
            .field("providers", &names)
            .field("failover", &self.inner.failover)
            .finish_non_exhaustive()
    }
}

fn region_key(to: &PhoneNumber) -> String {
    to.region()
        .map_or_else(|| "001".to_owned(), |r| r.to_string())
}

impl Router {
    /// A builder with the default failover, policy and breaker.
    pub fn builder() -> RouterBuilder {
        RouterBuilder {
            name: "router".to_owned(),
            providers: Vec::new(),
            prefixes: Vec::new(),
            countries: Vec::new(),
            defaults: Vec::new(),
            failover: Failover::default(),
            policy: Some(DestinationPolicy::default()),
            policy_configured: false,
            breaker: BreakerConfig::default(),
            clock: Arc::new(SystemClock),
            budgets: None,
        }
    }

    /// The provider chain (names) for a destination and channel, if any rule matches.
    pub fn chain_for(&self, to: &PhoneNumber, channel: Channel) -> Option<Vec<&str>> {
        self.chain(to, channel).map(|chain| {
            chain
                .iter()
                .map(|&i| self.inner.providers[i].name.as_str())
                .collect()
        })
    }

    fn chain(&self, to: &PhoneNumber, channel: Channel) -> Option<&Chain> {
        let inner = &self.inner;
        let digits = to.e164_digits();
        inner
            .prefixes
            .iter()
            .find(|(prefix, ch, _)| *ch == channel && digits.starts_with(prefix.as_str()))
            .map(|(_, _, chain)| chain)
            .or_else(|| to.region().and_then(|r| inner.countries.get(&(r, channel))))
            .or_else(|| inner.defaults.get(&channel))
    }

    /// A snapshot of per-provider and per-country metrics.
    pub fn metrics(&self) -> RouterMetrics {
        let now = self.inner.clock.now();
        let state = self.state();
        RouterMetrics {
            providers: self
                .inner
                .providers
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    let destinations = state
                        .destination_breakers
                        .iter()
                        .filter(|((provider, _), _)| *provider == i)
                        .map(|((_, region), breaker)| (region.clone(), breaker.status(now)))
                        .filter(|(_, status)| *status != BreakerStatus::Closed)
                        .collect();
                    state.counters[i].snapshot(
                        &entry.name,
                        state.breakers[i].status(now),
                        destinations,
                    )
                })
                .collect(),
            countries: state.countries.values().cloned().collect(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refuse(&self, kind: ProviderErrorKind) -> ProviderError {
        ProviderError::new(kind, &self.inner.name)
    }

    fn count_country(&self, region: &str, delivered: bool) {
        let mut state = self.state();
        let country = state
            .countries
            .entry(region.to_owned())
            .or_insert_with(|| CountryMetrics {
                region: region.to_owned(),
                ..CountryMetrics::default()
            });
        country.sends += 1;
        if delivered {
            country.delivered += 1;
        } else {
            country.failed += 1;
        }
    }
}

#[async_trait]
impl PhoneProvider for Router {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn supports(&self, channel: Channel) -> bool {
        self.inner
            .providers
            .iter()
            .any(|p| p.provider.supports(channel))
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let inner = &self.inner;
        let (to, channel) = (message.to(), message.channel());
        let region = region_key(to);
        // A service's message was checked against the service's policy before any limit
        // was charged: the policy is enforced once, where it is configured.
        if let Some(policy) = &inner.policy
            && (inner.policy_configured || !message.is_policy_checked())
            && let Err(refusal) = policy.check(to, channel)
        {
            info!(router = %inner.name, to = %to, reason = %refusal, "destination refused by policy");
            return Err(self
                .refuse(ProviderErrorKind::PolicyRefused)
                .with_source(refusal));
        }
        let Some(chain) = self.chain(to, channel) else {
            warn!(router = %inner.name, to = %to, channel = %channel, "no route");
            return Err(self.refuse(ProviderErrorKind::NoRoute));
        };

        let failover = &inner.failover;
        let deadline = Instant::now() + failover.overall_deadline();
        let mut attempts = Vec::with_capacity(chain.len());
        let mut called = 0;
        let mut last_error: Option<ProviderError> = None;
        let mut stopped = false;
        for &index in chain {
            let entry = &inner.providers[index];
            let skip = |outcome| Attempt {
                provider: entry.name.clone(),
                outcome,
            };
            if !entry.provider.supports(channel) {
                attempts.push(skip(AttemptOutcome::SkippedChannelUnsupported));
                continue;
            }
            let now = Instant::now();
            if stopped || called >= failover.attempt_cap() || now >= deadline {
                attempts.push(skip(AttemptOutcome::SkippedBudgetExhausted));
                continue;
            }
            let admitted = {
                let mut state = self.state();
                let (now, probe_deadline) = (inner.clock.now(), failover.attempt_timeout());
                let destination = (index, region.clone());
                let admitted = state.breakers[index].can_admit(now, probe_deadline)
                    && state
                        .destination_breakers
                        .get(&destination)
                        .is_none_or(|breaker| breaker.can_admit(now, probe_deadline));
                if admitted {
                    state.breakers[index].admit(now, probe_deadline);
                    if let Some(breaker) = state.destination_breakers.get_mut(&destination) {
                        breaker.admit(now, probe_deadline);
                    }
                } else {
                    state.counters[index].skipped_breaker_open += 1;
                }
                admitted
            };
            if !admitted {
                debug!(router = %inner.name, provider = %entry.name, "skipped: breaker open");
                attempts.push(skip(AttemptOutcome::SkippedBreakerOpen));
                continue;
            }
            if let Some(budgets) = &inner.budgets {
                match budgets.admit(&entry.name, message, inner.clock.now()).await {
                    Ok(Admission::Allowed) => {}
                    Ok(Admission::Limited { .. }) => {
                        info!(router = %inner.name, provider = %entry.name, "skipped: its daily budget is spent");
                        attempts.push(skip(AttemptOutcome::SkippedProviderBudget));
                        continue;
                    }
                    Err(error) => {
                        warn!(router = %inner.name, provider = %entry.name, error = %error, "skipped: its budget cannot be checked");
                        attempts.push(skip(AttemptOutcome::SkippedProviderBudget));
                        continue;
                    }
                }
            }
            called += 1;
            let budget = failover.attempt_timeout().min(deadline - now);
            let result = tokio::time::timeout(budget, entry.provider.send(message)).await;
            let latency = now.elapsed();
            let outcome = match result {
                Ok(Ok(receipt)) => Ok(receipt),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(ProviderError::new(ProviderErrorKind::Timeout, &entry.name)),
            };
            let failure = outcome.as_ref().err().map(ProviderError::kind);
            {
                let mut state = self.state();
                let now = inner.clock.now();
                let scope = failure.and_then(health::scope);
                let counted = |wanted| failure.filter(|_| scope == Some(wanted));
                state.breakers[index].record(counted(Scope::Provider), now, &inner.breaker);
                // An outage says nothing about the destination: that breaker keeps its state
                // (an admitted probe then times out by its deadline).
                let destination = (index, region.clone());
                let destination_failure = counted(Scope::Destination);
                if destination_failure.is_some()
                    || (scope != Some(Scope::Provider)
                        && state.destination_breakers.contains_key(&destination))
                {
                    let breaker = state
                        .destination_breakers
                        .entry(destination.clone())
                        .or_insert_with(Breaker::new);
                    breaker.record(destination_failure, now, &inner.breaker);
                    if breaker.is_pristine() {
                        state.destination_breakers.remove(&destination);
                    }
                }
                let counters = &mut state.counters[index];
                counters.attempts += 1;
                counters.observe(latency);
                match failure {
                    None => {
                        counters.successes += 1;
                        if attempts.iter().any(|a| {
                            a.outcome == AttemptOutcome::Failed(ProviderErrorKind::Timeout)
                        }) {
                            counters.possible_duplicates += 1;
                        }
                        counters.latency_total += latency;
                        counters.latency_max = counters.latency_max.max(latency);
                    }
                    Some(kind) => *counters.failures.entry(kind.as_str()).or_default() += 1,
                }
            }
            match outcome {
                Ok(mut receipt) => {
                    // This router's earlier tries, then those of a nested router.
                    attempts.append(&mut receipt.attempts);
                    receipt.attempts = attempts;
                    info!(
                        router = %inner.name,
                        provider = %entry.name,
                        to = %to,
                        channel = %channel,
                        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                        "delivered"
                    );
                    self.count_country(&region, true);
                    return Ok(receipt);
                }
                Err(error) => {
                    let kind = error.kind();
                    warn!(
                        router = %inner.name,
                        provider = %entry.name,
                        to = %to,
                        channel = %channel,
                        kind = %kind,
                        "provider failed"
                    );
                    attempts.push(skip(AttemptOutcome::Failed(kind)));
                    stopped = !failover.should_try_next(kind);
                    last_error = Some(error);
                }
            }
        }
        self.count_country(&region, false);
        let error = match last_error {
            Some(last) => {
                let mut error = self.refuse(last.kind());
                if let Some(status) = last.status() {
                    error = error.with_status(status);
                }
                if let Some(code) = last.code() {
                    error = error.with_code(code.to_owned());
                }
                if let Some(retry_after) = last.retry_after() {
                    error = error.with_retry_after(retry_after);
                }
                error.with_source(last)
            }
            // Every provider was skipped (breakers open or channel unsupported).
            None => self.refuse(ProviderErrorKind::Unavailable),
        };
        Err(error.with_attempts(attempts))
    }
}
