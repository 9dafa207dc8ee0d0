//! Daily budgets: at most so many messages, or so much money, per UTC day, per tenant,
//! per country or in total. Refused before the send, in the same atomic store step as the
//! other limits, so 64 concurrent starts against a budget of 10 send exactly 10.
//!
//! Money is counted before the send, when the provider is not yet chosen: a send is priced
//! at the highest rate any provider in the [`PriceTable`] charges for its country and
//! channel, per SMS segment or per call. The estimate never undercounts, so a budget is
//! never exceeded by a failover to a pricier provider. A send the table cannot price is
//! refused by a money budget (add a `*` rate to cover every country).

use std::time::Duration;

use crate::clock::Timestamp;
use crate::price::{Micros, PriceTable};

use super::Decision;

/// One day, in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// A daily cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Whose sends it counts.
    pub scope: BudgetScope,
    /// How much per UTC day.
    pub per_day: BudgetCap,
}

/// Whose sends a [`Budget`] counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetScope {
    /// Each tenant separately (the gateway's calling systems).
    EachTenant,
    /// One tenant.
    Tenant(String),
    /// Each destination country separately.
    EachCountry,
    /// One destination country (ISO region, `JP`).
    Country(String),
    /// Each destination country that no [`Country`](Self::Country) budget names, each
    /// separately (a send whose country is not known counts as one more): the cap for
    /// every market not listed, which an attacker pumping a country the service never
    /// serves runs into first. A listed country is counted by its own cap only.
    OtherCountries,
    /// Every send.
    Total,
}

/// How much a [`Budget`] allows per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetCap {
    /// Messages and calls.
    Messages(u64),
    /// Estimated cost, in millionths of the price table's currency.
    Money(Micros),
}

/// Budgets and the prices their money caps are counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    /// Prices for money caps (an empty table when every cap is in messages).
    pub prices: PriceTable,
    /// The caps; a send is charged to every one that applies to it.
    pub caps: Vec<Budget>,
}

/// One daily budget's use today, as the store holds it (shared by every instance on the
/// store), for dashboards, alerts and the operator console.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetUse {
    /// The configured cap.
    pub budget: Budget,
    /// For a cap of each tenant or each country: the one it was read for.
    pub of: Option<String>,
    /// Used today: messages and calls, or estimated micros for a money cap.
    pub used: u64,
    /// The cap's amount, in the same unit.
    pub cap: u64,
    /// When today's use resets (the end of the UTC day).
    pub resets_at: Timestamp,
}

impl BudgetUse {
    /// Used over cap, from 0 (a zero cap counts as spent).
    pub fn ratio(&self) -> f64 {
        if self.cap == 0 {
            return 1.0;
        }
        // Both fit a double's exact range far beyond any real budget.
        #[allow(clippy::cast_precision_loss)]
        let ratio = self.used as f64 / self.cap as f64;
        ratio
    }
}

/// The outcome of one budget step: the decision and the amount used after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStep {
    /// Allowed or limited.
    pub decision: Decision,
    /// Used today after this step (unchanged when limited).
    pub used: u64,
    /// How long the stored amount matters (until the day ends).
    pub ttl_millis: u64,
}

/// The UTC day `now` falls in, and when it ends (Unix ms).
pub fn day_of(now: Timestamp) -> (u64, u64) {
    let day = now.as_millis() / DAY_MS;
    (day, (day + 1) * DAY_MS)
}

/// One budget decision: `amount` more on top of `used` today, against `cap`.
pub fn spend(
    used: Option<u64>,
    cap: u64,
    amount: u64,
    resets_at_millis: u64,
    now: Timestamp,
) -> BudgetStep {
    let now = now.as_millis();
    let used = used.unwrap_or(0);
    let ttl_millis = resets_at_millis.saturating_sub(now).max(1);
    if used.saturating_add(amount) > cap {
        return BudgetStep {
            decision: Decision::Limited {
                retry_after: Duration::from_millis(ttl_millis),
            },
            used,
            ttl_millis,
        };
    }
    BudgetStep {
        decision: Decision::Allowed,
        used: used + amount,
        ttl_millis,
    }
}

impl PriceTable {
    /// The highest price of one unit any provider in the table charges to `country` on
    /// `channel` (what a budget counts before the provider is chosen).
    pub fn max_unit_price(&self, country: Option<&str>, channel: crate::Channel) -> Option<Micros> {
        let mut providers: Vec<&str> = self
            .rates
            .iter()
            .map(|rate| rate.provider.as_str())
            .collect();
        providers.sort_unstable();
        providers.dedup();
        providers
            .into_iter()
            .filter_map(|provider| self.unit_price(provider, country, channel))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Rate};

    #[test]
    fn spends_up_to_the_cap_and_resets_with_the_day() {
        let now = Timestamp::from_millis(3 * DAY_MS + 1_000);
        let (day, resets) = day_of(now);
        assert_eq!((day, resets), (3, 4 * DAY_MS));
        let step = spend(Some(7), 10, 3, resets, now);
        assert_eq!((step.decision, step.used), (Decision::Allowed, 10));
        let over = spend(Some(8), 10, 3, resets, now);
        assert_eq!(
            over.decision,
            Decision::Limited {
                retry_after: Duration::from_millis(DAY_MS - 1_000)
            }
        );
        assert_eq!(over.used, 8, "a refusal spends nothing");
    }

    #[test]
    fn prices_at_the_dearest_provider() {
        let rate = |provider: &str, country: &str, sms: f64| Rate {
            provider: provider.into(),
            country: country.into(),
            sms: Micros::from_decimal(sms),
            voice: None,
        };
        let table = PriceTable::new("USD")
            .with(rate("*", "*", 0.05))
            .with(rate("twilio", "JP", 0.08))
            .with(rate("smslink", "JP", 0.03));
        assert_eq!(
            table.max_unit_price(Some("JP"), Channel::Sms),
            Some(Micros(80_000))
        );
        assert_eq!(
            table.max_unit_price(Some("US"), Channel::Sms),
            Some(Micros(50_000))
        );
        assert_eq!(table.max_unit_price(Some("US"), Channel::Voice), None);
    }
}
