//! `[[providers]]` and `[routing]`: the adapters, built from their environment variables,
//! and the router's chains, failover and per-provider daily budgets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use phone_otp::{Channel, Failover, PhoneProvider, Router, StubProvider};
use serde::Deserialize;

use super::{Config, ConfigError, invalid};

/// One provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `twilio`, `ntt-cpaas`, `smslink` or `stub`.
    pub kind: String,
    /// Overrides the provider's API base URL (tests, regional endpoints). Requests go
    /// there with the provider's credentials, hence the name.
    pub danger_base_url: Option<String>,
    /// At most this many messages and calls through this provider per UTC day; past it
    /// the router skips it and tries the next in the chain.
    pub messages_per_day: Option<u64>,
    /// At most this much estimated cost (`[prices]`) through this provider per UTC day.
    pub money_per_day: Option<f64>,
}

/// Chains: provider kinds in the order to try.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chains {
    /// For SMS.
    #[serde(default)]
    pub sms: Vec<String>,
    /// For voice calls.
    #[serde(default)]
    pub voice: Vec<String>,
}

/// Routing rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Chains for any destination (default: every provider in file order).
    pub default: Option<Chains>,
    /// Chains per ISO region (`JP`).
    #[serde(default)]
    pub countries: BTreeMap<String, Chains>,
    /// Chains per E.164 prefix (`+8170`), checked before countries.
    #[serde(default)]
    pub prefixes: BTreeMap<String, Chains>,
    /// Per provider call (default 1500 ms).
    pub attempt_timeout_ms: Option<u64>,
    /// Per send, failovers included (default 2500 ms).
    pub deadline_ms: Option<u64>,
    /// Providers called per send at most (default 3).
    pub max_attempts: Option<usize>,
    /// Try the next provider after one that was reached and did not answer in time
    /// (default false: that one may still deliver, and a second would be a second code,
    /// billed twice; the send is answered as `unknown` instead). Counted as
    /// `phone_otp_provider_possible_duplicates_total` when on.
    #[serde(default)]
    pub failover_after_timeout: bool,
}

impl Config {
    pub(super) fn router(
        &self,
        store: &Arc<dyn phone_otp::OtpStore>,
    ) -> Result<(Router, bool), ConfigError> {
        let mut builder = Router::builder().name("gateway");
        if let Some(budgets) = self.provider_budgets(store)? {
            builder = builder.provider_budgets(budgets);
        }
        let mut names = Vec::new();
        let stub_only = self.providers.iter().all(|p| p.kind == "stub");
        if self.providers.is_empty() {
            builder = builder.provider(StubProvider::new());
            names.push("stub".to_owned());
        }
        let mut errors = Vec::new();
        for provider in &self.providers {
            let status_callback = self
                .callbacks
                .twilio
                .as_ref()
                .map(|c| c.public_url.as_str());
            match provider_from_env(provider, status_callback) {
                Ok(built) => {
                    names.push(built.name().to_owned());
                    builder = builder.provider(built);
                }
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(merge(errors));
        }
        let routing = &self.routing;
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        match &routing.default {
            Some(chains) => {
                builder = builder
                    .default_chain(Channel::Sms, &chain(&chains.sms))
                    .default_chain(Channel::Voice, &chain(&chains.voice));
            }
            None => {
                builder = builder
                    .default_chain(Channel::Sms, &all)
                    .default_chain(Channel::Voice, &all);
            }
        }
        for (region, chains) in &routing.countries {
            builder = builder
                .country(region, Channel::Sms, &chain(&chains.sms))
                .country(region, Channel::Voice, &chain(&chains.voice));
        }
        for (prefix, chains) in &routing.prefixes {
            builder = builder
                .prefix(prefix, Channel::Sms, &chain(&chains.sms))
                .prefix(prefix, Channel::Voice, &chain(&chains.voice));
        }
        let mut failover = Failover::default()
            .deadline(Duration::from_millis(routing.deadline_ms.unwrap_or(2500)));
        if let Some(ms) = routing.attempt_timeout_ms {
            failover = failover.per_attempt_timeout(Duration::from_millis(ms));
        }
        if routing.failover_after_timeout {
            failover = failover.move_on(phone_otp::ProviderErrorKind::Timeout);
        }
        if let Some(n) = routing.max_attempts {
            failover = failover.max_attempts(n);
        }
        // The destination policy is the service's (configured and checked once, before any
        // limit is charged); the router keeps its default for sends outside the service.
        let router = builder
            .failover(failover)
            .build()
            .map_err(|e| invalid("routing", e.to_string()))?;
        Ok((router, stub_only || self.providers.is_empty()))
    }

    /// `messages_per_day` and `money_per_day` of each `[[providers]]` entry.
    fn provider_budgets(
        &self,
        store: &Arc<dyn phone_otp::OtpStore>,
    ) -> Result<Option<phone_otp::ProviderBudgets>, ConfigError> {
        let capped = self
            .providers
            .iter()
            .filter(|p| p.messages_per_day.is_some() || p.money_per_day.is_some());
        let prices = self.prices.clone();
        let mut budgets = None;
        for provider in capped {
            let name = provider.kind.clone();
            let entry = budgets.get_or_insert_with(|| {
                phone_otp::ProviderBudgets::new(
                    Arc::clone(store),
                    prices
                        .clone()
                        .unwrap_or_else(|| phone_otp::PriceTable::new("-")),
                )
            });
            if let Some(messages) = provider.messages_per_day {
                *entry = entry
                    .clone()
                    .cap(name.clone(), phone_otp::BudgetCap::Messages(messages));
            }
            if let Some(money) = provider.money_per_day {
                if prices.is_none() {
                    return Err(invalid(
                        "providers.money_per_day",
                        "a money budget needs [prices] to count in",
                    ));
                }
                let cap = phone_otp::Micros::from_decimal(money)
                    .ok_or_else(|| invalid("providers.money_per_day", "a non-negative amount"))?;
                *entry = entry.clone().cap(name, phone_otp::BudgetCap::Money(cap));
            }
        }
        Ok(budgets)
    }
}

fn chain(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn merge(errors: Vec<ConfigError>) -> ConfigError {
    let mut missing = Vec::new();
    let mut other = None;
    for error in errors {
        match error {
            ConfigError::MissingEnv(names) => missing.extend(names),
            error => other = other.or(Some(error)),
        }
    }
    match other {
        Some(error) => error,
        None => ConfigError::MissingEnv(missing),
    }
}

/// The variables an adapter's `from_env` needs that `env` lacks, all of them (the adapter
/// itself stops at the first), by name, as the library's `from_lookup` reports them.
pub(super) fn missing_provider_env(
    kind: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let refused = match kind {
        "twilio" => phone_otp::TwilioConfig::from_lookup(env).err(),
        "ntt-cpaas" => phone_otp::NttCpaasConfig::from_lookup(env).err(),
        "smslink" => phone_otp::SmslinkConfig::from_lookup(env).err(),
        _ => None,
    };
    match refused {
        Some(phone_otp::ConfigError::MissingEnv(names)) => {
            names.into_iter().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

/// Builds one adapter. Twilio asks for its status callbacks at `twilio_status_callback`
/// (`[callbacks.twilio] public_url`), unless `TWILIO_STATUS_CALLBACK` names another URL,
/// so every receipt carries the send's reference.
fn provider_from_env(
    config: &ProviderConfig,
    twilio_status_callback: Option<&str>,
) -> Result<Arc<dyn PhoneProvider>, ConfigError> {
    let adapter = |e: phone_otp::ConfigError| match e {
        phone_otp::ConfigError::MissingEnv(names) => {
            ConfigError::MissingEnv(names.into_iter().map(str::to_owned).collect())
        }
        other => invalid(format!("providers.{}", config.kind), other.to_string()),
    };
    let base = config.danger_base_url.as_deref();
    let provider: Arc<dyn PhoneProvider> = match config.kind.as_str() {
        "stub" => Arc::new(StubProvider::new()),
        "twilio" => {
            let mut p = phone_otp::TwilioProvider::from_env().map_err(adapter)?;
            if let Some(url) = twilio_status_callback
                && std::env::var_os("TWILIO_STATUS_CALLBACK").is_none()
            {
                p = p.status_callback(url).map_err(adapter)?;
            }
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        "ntt-cpaas" => {
            let p = phone_otp::NttCpaasProvider::from_env().map_err(adapter)?;
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        "smslink" => {
            let p = phone_otp::SmslinkProvider::from_env().map_err(adapter)?;
            Arc::new(match base {
                Some(url) => p.danger_base_url(url).map_err(adapter)?,
                None => p,
            })
        }
        other => {
            return Err(invalid(
                "providers.kind",
                format!("unknown provider {other:?} (twilio, ntt-cpaas, smslink, stub)"),
            ));
        }
    };
    Ok(provider)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use crate::config::Config;

    #[tokio::test]
    async fn provider_budgets_need_prices_for_money() {
        let build = |toml: &'static str| async move {
            let config = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
            config.build(&|_| None).await.err().map(|e| e.to_string())
        };
        assert_eq!(
            build("[[providers]]\nkind = \"stub\"\nmessages_per_day = 100\n").await,
            None
        );
        let error = build("[[providers]]\nkind = \"stub\"\nmoney_per_day = 5.0\n").await;
        assert!(error.unwrap_or_default().contains("[prices]"));
        let priced =
            "[prices]\ncurrency = \"USD\"\n[[providers]]\nkind = \"stub\"\nmoney_per_day = 5.0\n";
        assert_eq!(build(priced).await, None);
    }
}
