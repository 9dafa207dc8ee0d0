//! Reading the daily budgets back: how much of each cap today's sends have used, from the
//! store every instance shares. Nothing is charged or created by a read.

use super::service::OtpService;
use crate::limit::{BudgetCap, BudgetScope, BudgetUse, budget_key, day_of};
use crate::store::StoreError;

impl OtpService {
    /// Today's use of every configured budget, in one store read. A cap of each tenant
    /// (or each country) is read for every name in `tenants` (or `countries`), since the
    /// service does not know them all; fixed scopes are always read. Empty when no
    /// budget is configured.
    ///
    /// # Errors
    /// The store's, when it cannot be read (or does not keep budgets).
    pub async fn budget_use(
        &self,
        tenants: &[&str],
        countries: &[&str],
    ) -> Result<Vec<BudgetUse>, StoreError> {
        let Some(budgets) = &self.inner.limits.budgets else {
            return Ok(Vec::new());
        };
        let now = self.inner.clock.now();
        let (day, resets_at) = day_of(now);
        let mut wanted = Vec::new();
        for budget in &budgets.caps {
            let reads: Vec<(Option<&str>, Option<&str>, Option<&str>)> = match &budget.scope {
                BudgetScope::EachTenant => {
                    tenants.iter().map(|t| (Some(*t), None, Some(*t))).collect()
                }
                BudgetScope::EachCountry => countries
                    .iter()
                    .map(|c| (None, Some(*c), Some(*c)))
                    .collect(),
                BudgetScope::Tenant(t) => vec![(Some(t.as_str()), None, None)],
                BudgetScope::Country(c) => vec![(None, Some(c.as_str()), None)],
                // Only the countries asked for that no country cap names.
                BudgetScope::OtherCountries => countries
                    .iter()
                    .map(|c| (None, Some(*c), Some(*c)))
                    .collect(),
                BudgetScope::Total => vec![(None, None, None)],
            };
            for (tenant, country, of) in reads {
                if let Some(key) = budget_key(budget, budgets, tenant, country, day) {
                    wanted.push((budget, of.map(str::to_owned), key));
                }
            }
        }
        let keys: Vec<_> = wanted.iter().map(|(_, _, key)| key.clone()).collect();
        let used = self.inner.store.budget_used(&keys, now).await?;
        if used.len() != wanted.len() {
            return Err(StoreError::Corrupt(
                "budget read answered a different count",
            ));
        }
        Ok(wanted
            .into_iter()
            .zip(used)
            .map(|((budget, of, _), used)| BudgetUse {
                budget: budget.clone(),
                of,
                used,
                cap: match budget.per_day {
                    BudgetCap::Messages(cap) => cap,
                    BudgetCap::Money(cap) => cap.0,
                },
                resets_at: crate::clock::Timestamp::from_millis(resets_at),
            })
            .collect())
    }
}
