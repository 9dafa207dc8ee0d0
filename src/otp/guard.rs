//! The service's side of the abuse controls, self-contained: the conversion guard's floor
//! per country (from its learned conversion, read from the store at most once a minute
//! per country), crediting a verified code to its number's prefix and country, and
//! counting refusals per limit for metrics. It is given the store; it knows nothing of
//! the service that holds it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{info, warn};

use super::guard_refusal::{GuardRefusal, remember};
use crate::clock::Timestamp;
use crate::limit::{
    ConversionGuard, Counts, GuardLevel, LimitKey, LimitKind, guard_keys, guard_region,
};
use crate::phone::PhoneNumber;
use crate::store::OtpStore;

/// How long a country's learned conversion is used before it is read again.
const BASELINE_REFRESH_MS: u64 = 60_000;

/// Per-process state of the abuse controls.
#[derive(Debug)]
pub(super) struct Guard {
    /// The conversion guard's settings; `None`: off.
    conversion: Option<ConversionGuard>,
    /// Country → (its baseline counts, when read).
    baselines: Mutex<HashMap<String, (Option<Counts>, u64)>>,
    /// Refusals per limit kind, for metrics.
    refusals: [AtomicU64; REFUSAL_KINDS.len()],
    /// Conversion refusals per guard level, in [`GuardLevel::ALL`] order, for metrics.
    levels: [AtomicU64; GuardLevel::ALL.len()],
    /// The latest conversion refusals, one per prefix.
    recent: Mutex<Vec<GuardRefusal>>,
}

/// The limit kinds refusals are counted for, in [`Guard::refusals`] order.
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

impl Guard {
    /// The abuse controls for `conversion` (the conversion guard's settings, if on).
    pub(super) fn new(conversion: Option<ConversionGuard>) -> Self {
        Self {
            conversion,
            baselines: Mutex::default(),
            refusals: Default::default(),
            levels: Default::default(),
            recent: Mutex::default(),
        }
    }

    /// Whether the conversion guard is on.
    pub(super) fn converts(&self) -> bool {
        self.conversion.is_some()
    }

    /// Sends refused so far by each limit (this process).
    pub(super) fn refusals(&self) -> Vec<(LimitKind, u64)> {
        REFUSAL_KINDS
            .iter()
            .zip(&self.refusals)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Conversion refusals so far by each guard level (this process).
    pub(super) fn level_refusals(&self) -> Vec<(GuardLevel, u64)> {
        GuardLevel::ALL
            .iter()
            .zip(&self.levels)
            .map(|(level, count)| (*level, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The latest conversion refusals (this process), one per prefix, newest first.
    pub(super) fn recent_refusals(&self) -> Vec<GuardRefusal> {
        let mut list = self
            .recent
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default();
        list.reverse();
        list
    }

    /// Counts one send refused by `kind`.
    pub(super) fn count_refusal(&self, kind: LimitKind) {
        if let Some(index) = REFUSAL_KINDS.iter().position(|k| *k == kind) {
            self.refusals[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The guard's floor for a send to `to` (0 with the guard off).
    pub(super) async fn floor(
        &self,
        store: &dyn OtpStore,
        to: &PhoneNumber,
        now: Timestamp,
    ) -> u32 {
        let Some(guard) = &self.conversion else {
            return 0;
        };
        let [_, _, _, (baseline_key, bucket)] = guard_keys(guard, to);
        let country = baseline_key.as_str().to_owned();
        let cached = self
            .baselines
            .lock()
            .ok()
            .and_then(|map| map.get(&country).copied())
            .filter(|(_, at)| now.as_millis().saturating_sub(*at) < BASELINE_REFRESH_MS);
        let baseline = match cached {
            Some((counts, _)) => counts,
            None => {
                let counts = match store.conversion_counts(&baseline_key, bucket, now).await {
                    Ok(counts) => Some(counts),
                    Err(error) => {
                        warn!(error = %error, "conversion baseline unreadable: using the default");
                        None
                    }
                };
                if let Ok(mut map) = self.baselines.lock() {
                    // Bounded: one entry per country (and calling code) there is.
                    map.insert(country, (counts, now.as_millis()));
                }
                counts
            }
        };
        guard.floor_permille(baseline)
    }

    /// Counts a verified code sent to `to` for its prefix and country. A failure is
    /// logged: the code is verified either way (the guard only gets stricter).
    pub(super) async fn credit(&self, store: &dyn OtpStore, to: &PhoneNumber, now: Timestamp) {
        let Some(guard) = &self.conversion else {
            return;
        };
        let keys = guard_keys(guard, to);
        if let Err(error) = store.credit_conversions(&keys, now).await {
            warn!(error = %error, "verified code not credited to the conversion guard");
        }
    }

    /// Says why the guard refused a send to `to`: which level (`key`, the refusing one),
    /// its counts and the floor they fell below.
    pub(super) async fn report_refusal(
        &self,
        store: &dyn OtpStore,
        to: &PhoneNumber,
        key: &LimitKey,
        now: Timestamp,
    ) {
        let Some(guard) = &self.conversion else {
            return;
        };
        let keys = guard_keys(guard, to);
        let Some(level) = GuardLevel::of(key) else {
            return;
        };
        if let Some(index) = GuardLevel::ALL.iter().position(|l| *l == level) {
            self.levels[index].fetch_add(1, Ordering::Relaxed);
        }
        let bucket = keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(1, |(_, bucket)| *bucket);
        let counts = store
            .conversion_counts(key, bucket, now)
            .await
            .unwrap_or_default();
        let floor = self.floor(store, to, now).await;
        let prefix = keys[0].0.as_str().trim_start_matches("cv:p:");
        let country = guard_region(to);
        let rate_permille = (counts.rate() * 1000.0).round() as u32;
        // Not the masked number: with the prefix it would show nearly every digit.
        info!(
            level = level.as_str(),
            prefix,
            country,
            sends = counts.sends,
            verified = counts.verified,
            rate_permille,
            floor_permille = floor,
            "send refused by the conversion guard (SMS pumping suspected)"
        );
        if let Ok(mut list) = self.recent.lock() {
            remember(
                &mut list,
                GuardRefusal {
                    level,
                    prefix: prefix.to_owned(),
                    country: to
                        .region()
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default(),
                    sends: counts.sends,
                    verified: counts.verified,
                    rate_permille,
                    floor_permille: floor,
                    at: now,
                    refusals: 1,
                },
            );
        }
    }
}
