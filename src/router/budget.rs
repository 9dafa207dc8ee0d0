//! Daily budgets per provider, checked by the [`Router`](super::Router) just before it
//! calls each provider. A provider whose budget for the day is spent is skipped
//! ([`AttemptOutcome::SkippedProviderBudget`](crate::AttemptOutcome)) and the next one in
//! the chain tried, so a cap on an expensive provider moves traffic to a cheaper one
//! instead of refusing it. The charge is made before the call and kept if the call fails:
//! a budget is never exceeded. The counts live in an [`OtpStore`], shared by every
//! instance on it; if the store cannot be reached the provider is skipped (fail closed).

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::clock::Timestamp;
use crate::limit::{Admission, BudgetCap, Limit, LimitKey, Rule, day_of};
use crate::message::{Channel, Message};
use crate::price::PriceTable;
use crate::store::{OtpStore, StoreError};
use crate::template::count_sms_segments;

/// Caps per provider, in messages or money (priced with `prices`, per SMS segment or call).
#[derive(Clone)]
pub struct ProviderBudgets {
    store: Arc<dyn OtpStore>,
    prices: PriceTable,
    caps: Vec<(String, BudgetCap)>,
}

impl std::fmt::Debug for ProviderBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderBudgets")
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl ProviderBudgets {
    /// Budgets counted in `store` (the service's store, so every instance shares them),
    /// money priced with `prices`.
    pub fn new(store: impl OtpStore + 'static, prices: PriceTable) -> Self {
        Self {
            store: Arc::new(store),
            prices,
            caps: Vec::new(),
        }
    }

    /// At most `per_day` through `provider` per UTC day (a provider may have a cap in
    /// messages and one in money).
    pub fn cap(mut self, provider: impl Into<String>, per_day: BudgetCap) -> Self {
        self.caps.push((provider.into(), per_day));
        self
    }

    /// Charges a send of `message` through `provider` to its caps, if all allow it.
    pub(crate) async fn admit(
        &self,
        provider: &str,
        message: &Message,
        now: Timestamp,
    ) -> Result<Admission, StoreError> {
        let (day, resets_at_millis) = day_of(now);
        let units = match message.channel() {
            Channel::Voice => 1,
            _ => u64::try_from(count_sms_segments(message.text().expose_secret()).segments)
                .unwrap_or(u64::MAX),
        };
        let region = message.to().region();
        let limits: Vec<Limit> = self
            .caps
            .iter()
            .filter(|(name, _)| name == provider)
            .map(|(_, cap)| {
                let (unit, cap, amount) = match cap {
                    BudgetCap::Messages(cap) => ("msg", *cap, 1),
                    BudgetCap::Money(cap) => (
                        "money",
                        cap.0,
                        self.prices
                            .cost(
                                provider,
                                region.as_ref().map(|r| r.as_str()),
                                message.channel(),
                                units,
                            )
                            // Unpriced: refused (fail closed).
                            .map_or(u64::MAX, |cost| cost.0),
                    ),
                };
                Limit {
                    key: LimitKey::budget(&format!("prov:{provider}"), unit, day),
                    rule: Rule::Budget {
                        cap,
                        amount,
                        resets_at_millis,
                    },
                }
            })
            .collect();
        if limits.is_empty() {
            return Ok(Admission::Allowed);
        }
        self.store.throttle(&limits, now).await
    }
}
