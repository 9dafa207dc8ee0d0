//! `[limits]`: send limits, backoff, the conversion guard, the safe list and daily
//! budgets.

use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{Limits, Quota};
use serde::Deserialize;

use super::{Config, ConfigError, invalid};

/// Send limits, each `"<count>/<period>"` (`"5/10m"`), a duration for the cooldown
/// (`"30s"`), or `"off"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsConfig {
    pub resend_cooldown: Option<String>,
    pub per_destination: Option<String>,
    pub per_subject: Option<String>,
    pub per_client_ip: Option<String>,
    pub per_client_network: Option<String>,
    pub per_tenant: Option<String>,
    pub per_country: Option<String>,
    pub global: Option<String>,
    /// Progressive backoff per user and per number: `"on"` (three sends at once, then
    /// waits of 1, 2, 4 ... 32 minutes with 20% jitter, one step forgotten per quiet
    /// hour) or `"off"` (default).
    pub backoff: Option<String>,
    /// The conversion guard against SMS pumping: `"on"` (defaults: 7-digit prefixes and
    /// whole countries over 2 hours, 5-digit ranges and whole countries over a day, a
    /// floor of half the country's conversion and never under 20%) or `"off"` (default).
    pub conversion_guard: Option<String>,
    /// The guard's probation per country (`JP = 5000`), and `default` for every other
    /// (5 unless set): unverified sends a whole country gets in a day.
    #[serde(default)]
    pub conversion_probation: std::collections::BTreeMap<String, u32>,
    /// Unverified sends a range (five leading digits) gets in a day, in every country,
    /// listed or not (5 unless set).
    pub conversion_range_probation: Option<u32>,
    /// Daily budgets (`[[limits.budgets]]`); money is priced with `[prices]`.
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// Exempt from the conversion guard and backoff (never from quotas or attempts).
    #[serde(default)]
    pub safe_list: SafeListConfig,
}

/// `[limits.safe_list]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeListConfig {
    /// Whole numbers, with `+` and country code.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Leading digits with country code (`+8190123`).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// User ids.
    #[serde(default)]
    pub subjects: Vec<String>,
}

/// One daily budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Whose sends: `each_tenant` (each calling system), `tenant:<name>`, `each_country`,
    /// `country:<ISO>`, `other_countries` (each country no `country:` budget names) or
    /// `total`.
    pub scope: String,
    /// At most this many messages and calls per UTC day.
    pub messages_per_day: Option<u64>,
    /// At most this much estimated cost per UTC day, in the `[prices]` currency.
    pub money_per_day: Option<f64>,
}

impl BudgetConfig {
    pub(super) fn to_budget(&self, index: usize) -> Result<phone_otp::Budget, ConfigError> {
        use phone_otp::{BudgetCap, BudgetScope};
        let field = |name: &str| format!("limits.budgets[{index}].{name}");
        let scope = match self.scope.split_once(':') {
            None if self.scope == "each_tenant" => BudgetScope::EachTenant,
            None if self.scope == "each_country" => BudgetScope::EachCountry,
            None if self.scope == "other_countries" => BudgetScope::OtherCountries,
            None if self.scope == "total" => BudgetScope::Total,
            Some(("tenant", name)) if !name.is_empty() => BudgetScope::Tenant(name.to_owned()),
            Some(("country", code)) if code.len() == 2 => {
                BudgetScope::Country(code.to_ascii_uppercase())
            }
            _ => {
                return Err(invalid(
                    field("scope"),
                    "each_tenant, tenant:<name>, each_country, country:<ISO>, other_countries or total",
                ));
            }
        };
        let per_day = match (self.messages_per_day, self.money_per_day) {
            (Some(messages), None) => BudgetCap::Messages(messages),
            (None, Some(money)) => BudgetCap::Money(
                phone_otp::Micros::from_decimal(money)
                    .ok_or_else(|| invalid(field("money_per_day"), "a non-negative amount"))?,
            ),
            _ => {
                return Err(invalid(
                    field("messages_per_day"),
                    "set messages_per_day or money_per_day (one of them)",
                ));
            }
        };
        Ok(phone_otp::Budget { scope, per_day })
    }
}

impl LimitsConfig {
    /// The library's [`Limits`], with each set field replacing its default (budgets are
    /// added when the config is built, with `[prices]`).
    ///
    /// # Errors
    /// A malformed rate or duration, naming the field.
    pub fn to_limits(&self) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        let quota = |field: &str, value: &Option<String>, current: Option<Quota>| match value {
            None => Ok(current),
            Some(text) => {
                parse_quota(text).map_err(|reason| invalid(format!("limits.{field}"), reason))
            }
        };
        if let Some(text) = &self.resend_cooldown {
            limits.resend_cooldown = match text.trim() {
                "off" => None,
                other => Some(parse_duration(other).ok_or_else(|| {
                    invalid("limits.resend_cooldown", "expected e.g. \"30s\" or \"off\"")
                })?),
            };
        }
        limits.per_destination = quota(
            "per_destination",
            &self.per_destination,
            limits.per_destination,
        )?;
        limits.per_subject = quota("per_subject", &self.per_subject, limits.per_subject)?;
        limits.per_client_ip = quota("per_client_ip", &self.per_client_ip, limits.per_client_ip)?;
        limits.per_client_network = quota(
            "per_client_network",
            &self.per_client_network,
            limits.per_client_network,
        )?;
        limits.per_tenant = quota("per_tenant", &self.per_tenant, limits.per_tenant)?;
        limits.per_country = quota("per_country", &self.per_country, limits.per_country)?;
        limits.global = quota("global", &self.global, limits.global)?;
        limits.backoff = match self.backoff.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some("on") => Some(phone_otp::Backoff::default()),
            Some(_) => return Err(invalid("limits.backoff", "expected \"on\" or \"off\"")),
        };
        for number in &self.safe_list.numbers {
            let parsed = phone_otp::PhoneNumber::parse(number)
                .map_err(|e| invalid("limits.safe_list.numbers", e.to_string()))?;
            limits.safe_list.numbers.insert(parsed.e164().to_owned());
        }
        for prefix in &self.safe_list.prefixes {
            let digits = prefix.trim_start_matches('+');
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "limits.safe_list.prefixes",
                    format!("{prefix:?} is not a digit prefix like \"+8190123\""),
                ));
            }
            limits.safe_list.prefixes.push(digits.to_owned());
        }
        limits
            .safe_list
            .subjects
            .extend(self.safe_list.subjects.iter().cloned());
        limits.conversion_guard = match self.conversion_guard.as_deref().map(str::trim) {
            None | Some("off") => None,
            Some("on") => {
                let mut guard = phone_otp::ConversionGuard::default();
                if let Some(sends) = self.conversion_range_probation {
                    guard.range_probation_sends = sends;
                }
                for (country, sends) in &self.conversion_probation {
                    if country == "default" {
                        guard.probation_sends = *sends;
                    } else if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())
                    {
                        guard.probation.insert(country.clone(), *sends);
                    } else {
                        return Err(invalid(
                            "limits.conversion_probation",
                            format!("{country:?} is not a region like \"JP\" or \"default\""),
                        ));
                    }
                }
                Some(guard)
            }
            Some(_) => {
                return Err(invalid(
                    "limits.conversion_guard",
                    "expected \"on\" or \"off\"",
                ));
            }
        };
        Ok(limits)
    }
}

impl Config {
    /// `[limits]` with its budgets, priced by `[prices]`. A money budget without prices
    /// is refused here: every send would be unpriced, so refused.
    pub(super) fn limits_with_budgets(&self) -> Result<Limits, ConfigError> {
        let mut limits = self.limits.to_limits()?;
        if self.limits.budgets.is_empty() {
            return Ok(limits);
        }
        let caps = self
            .limits
            .budgets
            .iter()
            .enumerate()
            .map(|(index, budget)| budget.to_budget(index))
            .collect::<Result<Vec<_>, _>>()?;
        let money = caps
            .iter()
            .any(|cap| matches!(cap.per_day, phone_otp::BudgetCap::Money(_)));
        let prices = match (&self.prices, money) {
            (Some(prices), _) => prices.clone(),
            (None, false) => phone_otp::PriceTable::new("-"),
            (None, true) => {
                return Err(invalid(
                    "limits.budgets",
                    "a money budget needs [prices] to count in",
                ));
            }
        };
        limits.budgets = Some(phone_otp::Budgets { prices, caps });
        Ok(limits)
    }
}

/// `"5/10m"` -> 5 per 10 minutes; `"off"` -> none.
fn parse_quota(text: &str) -> Result<Option<Quota>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let (count, period) = text.split_once('/').ok_or_else(|| {
        format!("{text:?}: expected \"<count>/<period>\" such as \"5/10m\", or \"off\"")
    })?;
    let count: NonZeroU32 = count
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the count must be a positive integer"))?;
    let period = parse_duration(period.trim())
        .ok_or_else(|| format!("{text:?}: the period must be like 30s, 10m, 1h or 1d"))?;
    Ok(Some(Quota::per_period(count, period)))
}

/// `"30s"`, `"10m"`, `"1h"`, `"1d"`, `"1m"` (a bare unit means one).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = if number.is_empty() {
        1
    } else {
        number.parse().ok()?
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    (n > 0).then(|| Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn rates_and_durations() {
        assert_eq!(
            parse_quota("5/10m"),
            Ok(Some(Quota::per_period(
                NonZeroU32::MIN.saturating_add(4),
                Duration::from_secs(600)
            )))
        );
        assert_eq!(parse_quota("off"), Ok(None));
        assert!(parse_quota("0/1h").is_err());
        assert!(parse_quota("5 per hour").is_err());
        assert!(parse_quota("5/1w").is_err());
        let limits = |backoff: &str| {
            LimitsConfig {
                backoff: Some(backoff.to_owned()),
                ..LimitsConfig::default()
            }
            .to_limits()
        };
        assert_eq!(
            limits("on").ok().map(|l| l.backoff),
            Some(Some(phone_otp::Backoff::default()))
        );
        assert_eq!(limits("off").ok().map(|l| l.backoff), Some(None));
        assert!(limits("yes").is_err());
        let guard = LimitsConfig {
            conversion_guard: Some("on".to_owned()),
            ..LimitsConfig::default()
        }
        .to_limits()
        .ok()
        .and_then(|l| l.conversion_guard);
        assert_eq!(guard, Some(phone_otp::ConversionGuard::default()));
        let probation = |entries: &[(&str, u32)]| {
            LimitsConfig {
                conversion_guard: Some("on".to_owned()),
                conversion_probation: entries.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect(),
                ..LimitsConfig::default()
            }
            .to_limits()
            .map(|l| l.conversion_guard)
        };
        let guard = probation(&[("default", 10), ("JP", 5_000)]).ok().flatten();
        assert_eq!(
            guard.map(|g| (g.probation_for("JP"), g.probation_for("UZ"))),
            Some((5_000, 10))
        );
        assert!(probation(&[("japan", 1)]).is_err());
        let ranges = LimitsConfig {
            conversion_guard: Some("on".to_owned()),
            conversion_range_probation: Some(12),
            ..LimitsConfig::default()
        }
        .to_limits()
        .ok()
        .and_then(|l| l.conversion_guard)
        .map(|g| g.range_probation_sends);
        assert_eq!(ranges, Some(12));
        let safe = |numbers: &[&str], prefixes: &[&str]| {
            LimitsConfig {
                safe_list: SafeListConfig {
                    numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
                    prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
                    subjects: vec!["desk".to_owned()],
                },
                ..LimitsConfig::default()
            }
            .to_limits()
        };
        let list = safe(&["+81 90-1234-5678"], &["+8190111"])
            .map(|l| l.safe_list)
            .unwrap_or_default();
        assert!(list.numbers.contains("+819012345678"));
        assert_eq!(list.prefixes, ["8190111"]);
        assert!(list.subjects.contains("desk"));
        assert!(safe(&["12"], &[]).is_err());
        assert!(safe(&[], &["+"]).is_err());
        assert!(safe(&[], &["81-90"]).is_err());
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("30"), None);
    }

    #[test]
    fn budgets_load_with_their_prices() {
        let config = Config::from_toml(
            "[prices]\ncurrency = \"USD\"\n[[prices.rates]]\nprovider = \"*\"\ncountry = \"*\"\nsms = 0.05\n\
             [[limits.budgets]]\nscope = \"each_tenant\"\nmoney_per_day = 25.5\n\
             [[limits.budgets]]\nscope = \"country:jp\"\nmessages_per_day = 1000\n\
             [[limits.budgets]]\nscope = \"other_countries\"\nmessages_per_day = 50\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let budgets = config
            .limits_with_budgets()
            .unwrap_or_else(|e| panic!("{e}"))
            .budgets
            .map(|b| b.caps)
            .unwrap_or_default();
        assert_eq!(
            budgets,
            vec![
                phone_otp::Budget {
                    scope: phone_otp::BudgetScope::EachTenant,
                    per_day: phone_otp::BudgetCap::Money(phone_otp::Micros(25_500_000)),
                },
                phone_otp::Budget {
                    scope: phone_otp::BudgetScope::Country("JP".into()),
                    per_day: phone_otp::BudgetCap::Messages(1000),
                },
                phone_otp::Budget {
                    scope: phone_otp::BudgetScope::OtherCountries,
                    per_day: phone_otp::BudgetCap::Messages(50),
                },
            ]
        );
        let error = |toml: &str| {
            Config::from_toml(toml)
                .unwrap_or_else(|e| panic!("{e}"))
                .limits_with_budgets()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            error("[[limits.budgets]]\nscope = \"total\"\nmoney_per_day = 1.0\n")
                .contains("[prices]")
        );
        assert!(
            error("[[limits.budgets]]\nscope = \"system\"\nmessages_per_day = 1\n")
                .contains("scope")
        );
        assert!(error("[[limits.budgets]]\nscope = \"total\"\n").contains("one of them"));
    }
}
