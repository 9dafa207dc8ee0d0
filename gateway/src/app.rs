//! The assembly: [`GatewayBuilder`] checks the configuration and builds the shared
//! [`State`](crate::state::State); [`Gateway::router`] says which endpoints exist and the
//! layers every request passes (body limit, timeout, request id, trace span).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{MethodRouter, get, post};
use phone_otp::totp::TotpService;
use phone_otp::{Clock, OtpService, PriceTable, Router as ProviderRouter, SystemClock};
use secrecy::SecretString;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::audit::{Endpoint, audit_writer};
use crate::auth::cidr::Cidr;
use crate::auth::failures::{AuthFailures, DEFAULT_AUTH_FAILURES_PER_MINUTE};
use crate::auth::forwarded::{ForwardedHeader, TrustedProxies};
use crate::auth::jwt::{IssuerError, JwtIssuer, JwtVerifier};
use crate::auth::scope::{Scope, Scopes};
use crate::auth::{SharedSecret, key_lookup};
use crate::db::Db;
use crate::metrics::GatewayMetrics;
use crate::routes;
use crate::state::{AppState, State};
use crate::surfaces::{BearerAccess, OktaAuth, OktaHook, TwilioCallbacks};
use crate::telemetry;

/// Request bodies over this are refused with 413 (every contract here is far smaller).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
/// Requests still running after this are answered 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration the gateway cannot run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The default region is not an ISO 3166 code the phone parser knows.
    #[error("unknown default region {0:?}")]
    UnknownRegion(String),
    /// A hook secret or bearer token is shorter than 16 characters.
    #[error("the {0} secret is shorter than 16 characters")]
    WeakSecret(&'static str),
    /// A JWT issuer cannot be used.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// Okta's hook uses OAuth but no issuer (or key database) can check its token.
    #[error("the okta hook uses oauth, but no jwt issuer is configured")]
    NoIssuer,
    /// A static token was given no scope: it could call nothing.
    #[error("the {0} token has no scopes: name what it may call")]
    NoScopes(&'static str),
    /// The console shows the audit trail and keys: it needs the key database.
    #[error("the console needs a database ([database])")]
    ConsoleNeedsDatabase,
    /// No random session key could be made for the console.
    #[error("no random console session key")]
    NoRandom,
}

/// Builds a [`Gateway`] around an [`OtpService`].
#[derive(Debug)]
pub struct GatewayBuilder {
    otp: OtpService,
    router: Option<ProviderRouter>,
    okta: Option<OktaHook>,
    auth0: Option<BearerAccess>,
    auth0_notices: bool,
    api: Option<BearerAccess>,
    twilio_callbacks: Option<TwilioCallbacks>,
    ntt_cpaas_callbacks: Option<SharedSecret>,
    db: Option<Db>,
    totp: Option<TotpService>,
    jwt: Vec<JwtIssuer>,
    prices: Option<PriceTable>,
    trusted_proxies: Vec<Cidr>,
    forwarded_header: ForwardedHeader,
    clock: Arc<dyn Clock>,
    default_region: Option<String>,
    body_limit: usize,
    request_timeout: Duration,
    auth_failures_per_minute: NonZeroU32,
    #[cfg(feature = "console")]
    console: Option<crate::console::ConsoleSettings>,
}

impl GatewayBuilder {
    /// Serves the operator console under `/console` (it needs [`Self::keys`]: operators
    /// sign in with keys, and pages read the audit trail).
    #[cfg(feature = "console")]
    pub fn console(mut self, settings: crate::console::ConsoleSettings) -> Self {
        self.console = Some(settings);
        self
    }

    /// The provider router the service sends through, for its metrics.
    pub fn provider_router(mut self, router: ProviderRouter) -> Self {
        self.router = Some(router);
        self
    }

    /// Serves Okta's telephony inline hook at `POST /hooks/okta/telephony`.
    pub fn okta(mut self, hook: OktaHook) -> Self {
        self.okta = Some(hook);
        self
    }

    /// Serves Auth0 Actions at `POST /hooks/auth0/phone-message`; the token may call that
    /// hook and nothing else.
    pub fn auth0(mut self, access: BearerAccess) -> Self {
        self.auth0 = Some(access.scopes(Scopes::of(&[Scope::HooksAuth0])));
        self
    }

    /// Whether the Auth0 hook delivers the security notices Auth0 sends a custom phone
    /// provider (`blocked_account`, `change_password`, `password_breach`), in the
    /// gateway's own words and under the same policy and limits (default: yes).
    pub fn auth0_notices(mut self, deliver: bool) -> Self {
        self.auth0_notices = deliver;
        self
    }

    /// Serves `POST /v1/messages` and the `/v1/challenges` endpoints. The static token may
    /// call what its [`BearerAccess::scopes`] name (at least one, or the build fails).
    pub fn api(mut self, access: BearerAccess) -> Self {
        self.api = Some(access);
        self
    }

    /// Counts Twilio's status callbacks at `POST /callbacks/twilio/status`.
    pub fn twilio_callbacks(mut self, callbacks: TwilioCallbacks) -> Self {
        self.twilio_callbacks = Some(callbacks);
        self
    }

    /// Counts NTT CPaaS delivery reports at `POST /callbacks/ntt-cpaas/delivery`; they
    /// must carry `token` (header `X-Callback-Token` or query `?token=`).
    pub fn ntt_cpaas_callbacks(mut self, token: SecretString) -> Self {
        self.ntt_cpaas_callbacks = Some(SharedSecret::new(token));
        self
    }

    /// Authenticates callers of `/v1` and the Auth0 hook with API keys and personal
    /// tokens from `db` (each endpoint needs its scope; the key's owner becomes the
    /// tenant). A surface's static token, if configured, still works beside them.
    pub fn keys(mut self, db: Db) -> Self {
        self.db = Some(db);
        self
    }

    /// Serves `/v1/totp` (enroll, confirm, verify, disable) with `totp`, made from the
    /// same `OtpService` (`otp.totp(settings, keys)`) so TOTP and SMS failures share one
    /// cap. Callers need `totp:enroll` or `totp:verify`; the calling system is the tenant.
    pub fn totp(mut self, totp: TotpService) -> Self {
        self.totp = Some(totp);
        self
    }

    /// Accepts OAuth 2.0 access tokens (RFC 9068 JWTs) from `issuer` on `/v1`, the Auth0
    /// hook and, with [`OktaHook::oauth`], Okta's hook. The token's scopes are checked
    /// like a key's, and its client id becomes the calling system. Call once per issuer.
    pub fn jwt(mut self, issuer: JwtIssuer) -> Self {
        self.jwt.push(issuer);
        self
    }

    /// Prices sends in the audit trail (per SMS segment and per call, by provider and
    /// country).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Proxies whose `X-Forwarded-For` is believed (for key IP allow-lists); from any
    /// other peer the header is ignored.
    pub fn trusted_proxies(mut self, proxies: Vec<Cidr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The header the trusted proxies set (default `X-Forwarded-For`). Only the one they
    /// set (and strip from what clients send) may be read: a client can write any other.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
        self
    }

    /// The clock key expiry is checked against (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The region of numbers given without `+` (Okta's samples send `9876543210`).
    pub fn default_region(mut self, region: &str) -> Self {
        self.default_region = Some(region.to_ascii_uppercase());
        self
    }

    /// Request bodies over `bytes` are refused with 413 (default 16 KiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Requests running longer are answered 408 (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Failed authentications a source network (IPv4 /24, IPv6 /48) may have per minute
    /// before its requests are refused unread, 429 (default 30).
    pub fn auth_failures_per_minute(mut self, failures: NonZeroU32) -> Self {
        self.auth_failures_per_minute = failures;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// An unknown default region or a weak hook secret.
    pub fn build(self) -> Result<Gateway, BuildError> {
        // The number metadata compiles here, not in the first request's parse.
        phone_otp::PhoneNumber::warm_up();
        if let Some(region) = &self.default_region
            && phone_otp::PhoneNumber::parse_with_region("+1 202 555 0123", region).is_err()
        {
            return Err(BuildError::UnknownRegion(region.clone()));
        }
        match self.okta.as_ref().map(|okta| &okta.auth) {
            Some(OktaAuth::Header { secret, .. }) if secret.len() < 16 => {
                return Err(BuildError::WeakSecret("okta hook"));
            }
            Some(OktaAuth::OAuth) if self.jwt.is_empty() && self.db.is_none() => {
                return Err(BuildError::NoIssuer);
            }
            _ => {}
        }
        #[cfg(feature = "console")]
        let reserved: Vec<String> = self
            .jwt
            .iter()
            .flat_map(|issuer| issuer.mapped_systems().map(str::to_owned))
            .chain(self.okta.as_ref().map(|hook| hook.tenant.clone()))
            .chain(self.auth0.as_ref().map(|access| access.tenant.clone()))
            .chain(self.api.as_ref().map(|access| access.tenant.clone()))
            .collect();
        let jwt = if self.jwt.is_empty() {
            None
        } else {
            Some(JwtVerifier::new(self.jwt)?)
        };
        for (name, access) in [("auth0", &self.auth0), ("api", &self.api)] {
            if access.as_ref().is_some_and(|a| a.secret.len() < 16) {
                return Err(BuildError::WeakSecret(name));
            }
        }
        if self.api.as_ref().is_some_and(|api| api.scopes.is_empty()) {
            return Err(BuildError::NoScopes("api"));
        }
        if self
            .ntt_cpaas_callbacks
            .as_ref()
            .is_some_and(|s| s.len() < 16)
        {
            return Err(BuildError::WeakSecret("ntt-cpaas callback"));
        }
        #[cfg(feature = "console")]
        let console = match self.console {
            Some(_) if self.db.is_none() => return Err(BuildError::ConsoleNeedsDatabase),
            Some(settings) => Some(
                settings
                    .into_console(reserved)
                    .ok_or(BuildError::NoRandom)?,
            ),
            None => None,
        };
        Ok(Gateway {
            state: Arc::new(State {
                otp: self.otp,
                router: self.router,
                okta: self.okta,
                auth0: self.auth0,
                auth0_notices: self.auth0_notices,
                api: self.api,
                twilio_callbacks: self.twilio_callbacks,
                ntt_cpaas_callbacks: self.ntt_cpaas_callbacks,
                audit: self.db.clone().map(|db| Arc::new(audit_writer(db))),
                key_lookup: self.db.clone().map(key_lookup),
                db: self.db,
                totp: self.totp,
                jwt,
                prices: self.prices,
                trusted_proxies: TrustedProxies::new(self.trusted_proxies, self.forwarded_header),
                clock: self.clock,
                default_region: self.default_region,
                metrics: GatewayMetrics::default(),
                auth_failures: AuthFailures::new(self.auth_failures_per_minute),
                budgets: crate::budgets::BudgetView::default(),
                request_timeout: self.request_timeout,
                #[cfg(feature = "console")]
                console,
            }),
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
        })
    }
}

/// The gateway: an [`OtpService`] and the hooks it answers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    state: AppState,
    body_limit: usize,
    request_timeout: Duration,
}

impl Gateway {
    /// A builder around `otp` (its provider is usually a [`phone_otp::Router`]).
    pub fn builder(otp: OtpService) -> GatewayBuilder {
        GatewayBuilder {
            otp,
            router: None,
            okta: None,
            auth0: None,
            auth0_notices: true,
            api: None,
            twilio_callbacks: None,
            ntt_cpaas_callbacks: None,
            db: None,
            totp: None,
            jwt: Vec::new(),
            prices: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            clock: Arc::new(SystemClock),
            default_region: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            #[cfg(feature = "console")]
            console: None,
        }
    }

    /// The gateway's own counters (requests by endpoint and outcome, durations).
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.state.metrics
    }

    /// Settles audit rows left `pending` by a send that stopped (see
    /// [`crate::audit::reconcile`]): once now (`at_startup`: on SQLite, every pending row),
    /// with nothing to do without a database.
    ///
    /// # Errors
    /// The database failed.
    pub async fn reconcile_audit(
        &self,
        at_startup: bool,
    ) -> Result<crate::db::Settled, crate::db::DbError> {
        match &self.state.db {
            Some(db) => {
                crate::audit::reconcile::pass(
                    db,
                    self.state.now_millis(),
                    self.request_timeout,
                    at_startup,
                )
                .await
            }
            None => Ok(crate::db::Settled::default()),
        }
    }

    /// Runs [`Self::reconcile_audit`] every [`crate::audit::reconcile::EVERY`] (the
    /// startup pass is the caller's, before it serves), until the runtime stops.
    pub fn spawn_audit_reconciler(&self) -> tokio::task::JoinHandle<()> {
        let gateway = self.clone();
        tokio::spawn(async move {
            if gateway.state.db.is_none() {
                return;
            }
            let every = crate::audit::reconcile::EVERY;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                if let Err(error) = gateway.reconcile_audit(false).await {
                    tracing::warn!(error = %error, "pending audit rows not reconciled: retried later");
                }
            }
        })
    }

    /// `route` with the audit layer: its record opened before the handler runs and
    /// completed after, and the request counted as `name` in the metrics.
    fn audited(&self, name: &'static str, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
        route
            .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                Arc::clone(&self.state),
                crate::audit::audited,
            ))
            .layer::<_, std::convert::Infallible>(Extension(Endpoint(name)))
    }

    /// The endpoints, with their layers, as an axum router to serve or merge.
    pub fn router(&self) -> axum::Router {
        let mut app = axum::Router::new()
            .route("/healthz", get(routes::ops::healthz))
            .route("/readyz", get(routes::ops::readyz))
            .route("/metrics", get(routes::ops::metrics))
            .route("/openapi.json", get(crate::openapi::serve));
        if self.state.okta.is_some() {
            app = app.route(
                "/hooks/okta/telephony",
                self.audited("okta_telephony", post(routes::okta::telephony)),
            );
        }
        let keys = self.state.db.is_some() || self.state.jwt.is_some();
        if self.state.auth0.is_some() || keys {
            app = app.route(
                "/hooks/auth0/phone-message",
                self.audited(
                    "auth0_phone_message",
                    // Its Actions read `{"error":{"code","message"}}`.
                    post(routes::auth0::phone_message)
                        .layer(axum::middleware::map_response(crate::problem::legacy_shape)),
                ),
            );
        }
        if self.state.twilio_callbacks.is_some() {
            app = app.route(
                "/callbacks/twilio/status",
                post(routes::callbacks::twilio_status),
            );
        }
        if self.state.ntt_cpaas_callbacks.is_some() {
            app = app.route(
                "/callbacks/ntt-cpaas/delivery",
                post(routes::callbacks::ntt_cpaas_delivery),
            );
        }
        if self.state.api.is_some() || keys {
            app = app
                .route(
                    "/v1/messages",
                    self.audited("messages", post(routes::messages::send)),
                )
                .route(
                    "/v1/challenges",
                    self.audited("challenges_start", post(routes::challenges::start)),
                )
                .route(
                    "/v1/challenges/{id}/resend",
                    self.audited("challenges_resend", post(routes::challenges::resend)),
                )
                .route(
                    "/v1/challenges/{id}/verify",
                    self.audited("challenges_verify", post(routes::challenges::verify)),
                );
        }
        if self.state.totp.is_some() && (self.state.api.is_some() || keys) {
            app = app
                .route(
                    "/v1/totp/enroll",
                    self.audited("totp_enroll", post(routes::totp::enroll)),
                )
                .route(
                    "/v1/totp/confirm",
                    self.audited("totp_confirm", post(routes::totp::confirm)),
                )
                .route(
                    "/v1/totp/verify",
                    self.audited("totp_verify", post(routes::totp::verify)),
                )
                .route(
                    "/v1/totp/disable",
                    self.audited("totp_disable", post(routes::totp::disable)),
                );
        }
        if self.state.db.is_some() {
            app = app.route(
                "/v1/usage",
                self.audited("usage", get(routes::usage::usage)),
            );
        }
        #[cfg(feature = "console")]
        if self
            .state
            .console
            .as_ref()
            .is_some_and(|console| !console.own_listener)
        {
            app = app.merge(crate::console::routes(|name, route| {
                self.audited(name, route)
            }));
        }
        self.with_layers(app)
    }

    /// The console alone, for a listener of its own
    /// ([`ConsoleSettings::own_listener`](crate::console::ConsoleSettings::own_listener));
    /// `None` without a console.
    #[cfg(feature = "console")]
    pub fn console_router(&self) -> Option<axum::Router> {
        self.state.console.as_ref()?;
        let routes = crate::console::routes(|name, route| self.audited(name, route));
        Some(self.with_layers(routes))
    }

    /// The layers every request passes, around `app`.
    fn with_layers(&self, app: axum::Router<AppState>) -> axum::Router {
        let request_id = HeaderName::from_static("x-request-id");
        app.fallback(routes::ops::not_found)
            .with_state(Arc::clone(&self.state))
            .layer(DefaultBodyLimit::max(self.body_limit))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.request_timeout,
            ))
            .layer(PropagateRequestIdLayer::new(request_id.clone()))
            .layer(telemetry::trace_layer())
            .layer(SetRequestIdLayer::new(request_id, telemetry::RequestIds))
            .layer(axum::middleware::map_request(
                telemetry::keep_valid_request_id,
            ))
    }
}
