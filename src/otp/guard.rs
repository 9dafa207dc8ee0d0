//! The service's side of the abuse controls: the conversion guard's floor per country
//! (from its learned conversion, read from the store at most once a minute per country),
//! crediting a verified code to its number's prefix and country, and counting refusals
//! per limit for metrics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{info, warn};

use super::service::OtpService;
use crate::challenge::ChallengeId;
use crate::clock::Timestamp;
use crate::limit::{Counts, LimitKind, guard_keys};
use crate::phone::PhoneNumber;
use crate::store::StoredDestination;

/// How long a country's learned conversion is used before it is read again.
const BASELINE_REFRESH_MS: u64 = 60_000;

/// Per-process state of the abuse controls.
#[derive(Debug, Default)]
pub(super) struct GuardState {
    /// Country → (its baseline counts, when read).
    baselines: Mutex<HashMap<String, (Option<Counts>, u64)>>,
    /// Refusals per limit kind, for metrics.
    refusals: [AtomicU64; REFUSAL_KINDS.len()],
}

/// The limit kinds refusals are counted for, in [`OtpService::refusals`] order.
const REFUSAL_KINDS: [LimitKind; 12] = [
    LimitKind::Duplicate,
    LimitKind::ResendCooldown,
    LimitKind::Destination,
    LimitKind::Subject,
    LimitKind::ClientIp,
    LimitKind::ClientNetwork,
    LimitKind::Tenant,
    LimitKind::Country,
    LimitKind::Global,
    LimitKind::Backoff,
    LimitKind::Budget,
    LimitKind::Conversion,
];

impl OtpService {
    /// Sends refused so far by each limit (this process), e.g. for a metrics endpoint.
    pub fn refusals(&self) -> Vec<(LimitKind, u64)> {
        REFUSAL_KINDS
            .iter()
            .zip(&self.inner.guard.refusals)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    pub(super) fn count_refusal(&self, kind: LimitKind) {
        if let Some(index) = REFUSAL_KINDS.iter().position(|k| *k == kind) {
            self.inner.guard.refusals[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The guard's floor for a send to `to` (0 with the guard off).
    pub(super) async fn guard_floor(&self, to: &PhoneNumber, now: Timestamp) -> u32 {
        let Some(guard) = self.inner.limits.conversion_guard else {
            return 0;
        };
        let [_, _, (baseline_key, bucket)] = guard_keys(&guard, to);
        let country = baseline_key.as_str().to_owned();
        let cached = self
            .inner
            .guard
            .baselines
            .lock()
            .ok()
            .and_then(|map| map.get(&country).copied())
            .filter(|(_, at)| now.as_millis().saturating_sub(*at) < BASELINE_REFRESH_MS);
        let baseline = match cached {
            Some((counts, _)) => counts,
            None => {
                let counts = match self
                    .inner
                    .store
                    .conversion_counts(&baseline_key, bucket, now)
                    .await
                {
                    Ok(counts) => Some(counts),
                    Err(error) => {
                        warn!(error = %error, "conversion baseline unreadable: using the default");
                        None
                    }
                };
                if let Ok(mut map) = self.inner.guard.baselines.lock() {
                    // Bounded: one entry per country (and calling code) there is.
                    map.insert(country, (counts, now.as_millis()));
                }
                counts
            }
        };
        guard.floor_permille(baseline)
    }

    /// Counts a verified code for its number's prefix and country. A failure is logged:
    /// the code is verified either way (the guard only gets stricter).
    pub(super) async fn credit_guard(&self, id: &ChallengeId, now: Timestamp) {
        let Some(guard) = self.inner.limits.conversion_guard else {
            return;
        };
        let destination = match self.inner.store.destination(id).await {
            Ok(Some(StoredDestination::Number(number))) => Some(number),
            Ok(Some(StoredDestination::Sealed(sealed))) => {
                self.keys().open_destination(id, &sealed)
            }
            Ok(None) => None,
            Err(error) => {
                warn!(error = %error, "verified code not credited to the conversion guard");
                return;
            }
        };
        let Some(to) = destination else {
            return;
        };
        let keys = guard_keys(&guard, &to);
        if let Err(error) = self.inner.store.credit_conversions(&keys, now).await {
            warn!(error = %error, "verified code not credited to the conversion guard");
        }
    }

    /// Says why the guard refused a send to `to`: its prefix, country, conversion and floor.
    pub(super) async fn report_guard_refusal(&self, to: &PhoneNumber, now: Timestamp) {
        let Some(guard) = self.inner.limits.conversion_guard else {
            return;
        };
        let [(prefix_key, bucket), _, _] = guard_keys(&guard, to);
        let counts = self
            .inner
            .store
            .conversion_counts(&prefix_key, bucket, now)
            .await
            .unwrap_or_default();
        let floor = self.guard_floor(to, now).await;
        let prefix = prefix_key.as_str().trim_start_matches("cv:p:");
        let region = to.region();
        let country = region.as_ref().map_or("", |r| r.as_str());
        // Not the masked number: with the prefix it would show nearly every digit.
        info!(
            prefix,
            country,
            sends = counts.sends,
            verified = counts.verified,
            rate_permille = (counts.rate() * 1000.0).round() as u32,
            floor_permille = floor,
            "send refused by the conversion guard (SMS pumping suspected)"
        );
    }
}
