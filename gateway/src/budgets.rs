//! Today's budget use, for `/metrics` (and the console): read from the shared store at
//! most once per [`REFRESH`], so however often `/metrics` is asked, the store is read a
//! few times a minute. Anonymous scrapes cost a copy of the last reading, never a write.

use std::sync::Mutex;
use std::time::Duration;

use phone_otp::store::StoreError;
use phone_otp::{BudgetUse, OtpService, Timestamp};

/// How old a reading may be before the next request reads the store again.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);

/// Most tenants a per-tenant cap is read for (label cardinality stays bounded).
const MAX_TENANTS: usize = 1_000;

/// The last reading and when it was taken.
#[derive(Debug, Default)]
pub(crate) struct BudgetView {
    last: Mutex<Option<(Timestamp, Vec<BudgetUse>)>>,
}

impl BudgetView {
    /// The budgets' use as of at most [`REFRESH`] ago; the last good reading when the
    /// store cannot be read now (the error is returned beside it, to be counted). `whose`
    /// names the tenants and countries to read, called only when the store is read.
    pub(crate) async fn read<F>(
        &self,
        otp: &OtpService,
        now: Timestamp,
        whose: impl FnOnce() -> F,
    ) -> (Vec<BudgetUse>, Option<StoreError>)
    where
        F: Future<Output = (Vec<String>, Vec<String>)>,
    {
        if let Some((at, uses)) = &*lock(&self.last)
            && now.saturating_duration_since(*at) < REFRESH
        {
            return (uses.clone(), None);
        }
        let (mut tenants, countries) = whose().await;
        tenants.sort_unstable();
        tenants.dedup();
        tenants.truncate(MAX_TENANTS);
        let tenants: Vec<&str> = tenants.iter().map(String::as_str).collect();
        let countries: Vec<&str> = countries.iter().map(String::as_str).collect();
        match otp.budget_use(&tenants, &countries).await {
            Ok(uses) => {
                *lock(&self.last) = Some((now, uses.clone()));
                (uses, None)
            }
            Err(error) => {
                let stale = lock(&self.last)
                    .as_ref()
                    .map(|(_, uses)| uses.clone())
                    .unwrap_or_default();
                (stale, Some(error))
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
