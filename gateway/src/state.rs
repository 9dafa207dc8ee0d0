//! What every handler shares: the service, the configured surfaces, the database and its
//! batchers, the clock and the gateway's own counters. Built by
//! [`GatewayBuilder::build`](crate::GatewayBuilder::build); handlers take it as
//! `State<AppState>`.

use std::sync::Arc;
use std::time::Duration;

use phone_otp::totp::TotpService;
use phone_otp::{Clock, OtpService, PriceTable, Router as ProviderRouter};

use crate::auth::failures::AuthFailures;
use crate::auth::forwarded::TrustedProxies;
use crate::auth::jwt::JwtVerifier;
use crate::auth::{KeyLookup, SharedSecret};
use crate::budgets::BudgetView;
use crate::db::Db;
use crate::db::audit_writer::AuditWriter;
use crate::metrics::GatewayMetrics;
use crate::surfaces::{BearerAccess, OktaHook, TwilioCallbacks};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) otp: OtpService,
    pub(crate) router: Option<ProviderRouter>,
    pub(crate) okta: Option<OktaHook>,
    pub(crate) auth0: Option<BearerAccess>,
    /// Whether Auth0's security notices are delivered.
    pub(crate) auth0_notices: bool,
    pub(crate) api: Option<BearerAccess>,
    pub(crate) twilio_callbacks: Option<TwilioCallbacks>,
    pub(crate) ntt_cpaas_callbacks: Option<SharedSecret>,
    pub(crate) db: Option<Db>,
    /// Authenticator-app codes, when configured.
    pub(crate) totp: Option<TotpService>,
    /// Writes the audit trail to `db`, many requests per commit.
    pub(crate) audit: Option<Arc<AuditWriter>>,
    /// Looks keys up in `db`, many requests per query.
    pub(crate) key_lookup: Option<KeyLookup>,
    pub(crate) jwt: Option<JwtVerifier>,
    pub(crate) prices: Option<PriceTable>,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) default_region: Option<String>,
    pub(crate) metrics: GatewayMetrics,
    /// Failed authentications per source network.
    pub(crate) auth_failures: AuthFailures,
    /// Today's budget use, read from the store at most every few seconds.
    pub(crate) budgets: BudgetView,
    /// The operator console, when served.
    #[cfg(feature = "console")]
    pub(crate) console: Option<crate::console::settings::Console>,
    /// The longest a request runs (claims older than this and a grace are stale).
    pub(crate) request_timeout: Duration,
}

impl State {
    /// Today's budget use (see [`BudgetView`]): per-tenant caps for the static surfaces'
    /// tenants and every key's owner, per-country caps for the router's countries.
    pub(crate) async fn budget_use(
        &self,
    ) -> (
        Vec<phone_otp::BudgetUse>,
        Option<phone_otp::store::StoreError>,
    ) {
        let whose = || async {
            let mut tenants: Vec<String> = [
                self.okta.as_ref().map(|hook| hook.tenant.clone()),
                self.auth0.as_ref().map(|access| access.tenant.clone()),
                self.api.as_ref().map(|access| access.tenant.clone()),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(db) = &self.db
                && let Ok(keys) = db.keys().await
            {
                tenants.extend(keys.into_iter().map(|key| key.owner));
            }
            let countries = self
                .router
                .as_ref()
                .map(|router| {
                    router
                        .metrics()
                        .countries
                        .into_iter()
                        .map(|c| c.region)
                        .collect()
                })
                .unwrap_or_default();
            (tenants, countries)
        };
        self.budgets.read(&self.otp, self.clock.now(), whose).await
    }

    /// Now, in Unix milliseconds.
    pub(crate) fn now_millis(&self) -> i64 {
        i64::try_from(self.clock.now().as_millis()).unwrap_or(i64::MAX)
    }
}

pub(crate) type AppState = Arc<State>;
