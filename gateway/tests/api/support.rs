//! Spawning the gateway on loopback, Okta's fixtures, and external validators.

use std::path::PathBuf;
use std::sync::Arc;

use phone_otp::{
    Channel, HmacKey, KeyRing, Limits, ManualClock, OtpService, Router, StubProvider, Timestamp,
};
use phone_otp_gateway::auth::scope::{Scope, Scopes};
use phone_otp_gateway::{BearerAccess, Gateway, GatewayBuilder, OktaHook, TwilioCallbacks};
use secrecy::{SecretSlice, SecretString};
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The header value Okta is configured to send in these tests.
pub const OKTA_SECRET: &str = "Basic b2t0YTpzM2NyZXQtZm9yLXRlc3Rz";
/// The bearer token of Auth0 Actions in these tests.
pub const AUTH0_TOKEN: &str = "auth0-action-token-for-tests";
/// The Twilio Auth Token and public callback URL of PROVIDERS.md's signature test vector.
pub const TWILIO_TOKEN: &str = "12345";
pub const TWILIO_CALLBACK_URL: &str = "https://mycompany.com/myapp.php";
/// The token NTT CPaaS delivery reports carry in these tests.
pub const NTT_CALLBACK_TOKEN: &str = "ntt-callback-token-for-tests";
/// The bearer token of `/v1` callers in these tests.
pub const API_TOKEN: &str = "internal-api-token-for-tests";
/// What authenticator apps show as the issuer in these tests.
pub const TOTP_ISSUER: &str = "Gateway Tests";

/// Serves `gateway` on 127.0.0.1 with an OS-chosen port and returns its base URL.
pub async fn spawn_gateway(gateway: &Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_on(listener, gateway)
}

/// Serves `gateway` on `listener` and returns its base URL.
pub fn spawn_on(listener: tokio::net::TcpListener, gateway: &Gateway) -> String {
    let address = listener.local_addr().unwrap();
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{address}")
}

/// A gateway over two stub providers (`primary`, then `secondary`) behind a router, a
/// manual clock and the default limits.
pub struct TestGateway {
    pub url: String,
    pub gateway: Gateway,
    pub primary: StubProvider,
    pub secondary: StubProvider,
    pub clock: ManualClock,
    pub client: reqwest::Client,
}

pub struct Setup {
    /// A key database: `/v1` and the Auth0 hook then take API keys too.
    pub keys: Option<phone_otp_gateway::db::Db>,
    /// The OTP store (default: a fresh `MemoryStore`).
    pub store: Option<Arc<dyn phone_otp::OtpStore>>,
    pub limits: Limits,
    pub clock_at: Timestamp,
    pub primary: Arc<dyn phone_otp::PhoneProvider>,
    pub configure: Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + Send>,
    /// Where to serve (default: a fresh port), for a gateway whose URL must be known
    /// before it is built.
    pub listener: Option<tokio::net::TcpListener>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            keys: None,
            store: None,
            limits: Limits::default(),
            // Okta's sample request was sent at this time (its `eventTime`).
            clock_at: Timestamp::from_millis(1_643_406_220_000),
            primary: Arc::new(StubProvider::named("primary")),
            configure: Box::new(|builder| builder),
            listener: None,
        }
    }
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Self {
        let primary = StubProvider::named("primary");
        let secondary = StubProvider::named("secondary");
        let clock = ManualClock::starting_at(setup.clock_at);
        let first: Arc<dyn phone_otp::PhoneProvider> = if setup.primary.name() == "primary" {
            Arc::new(primary.clone())
        } else {
            setup.primary
        };
        let first_name = first.name().to_owned();
        let router = Router::builder()
            .provider(first)
            .provider(secondary.clone())
            .default_chain(Channel::Sms, &[&first_name, "secondary"])
            .default_chain(Channel::Voice, &[&first_name, "secondary"])
            .clock(clock.clone())
            .build()
            .unwrap();
        let key = HmacKey::new(1, &SecretSlice::from(vec![9u8; 32])).unwrap();
        let mut otp = OtpService::builder()
            .key_ring(KeyRing::new(key))
            .provider(router.clone())
            .clock(clock.clone())
            .limits(setup.limits);
        if let Some(store) = setup.store {
            otp = otp.store(store);
        }
        let otp = otp.build().unwrap();
        let totp_keys =
            phone_otp::totp::TotpKeys::new(1, &SecretSlice::from(vec![7u8; 32])).unwrap();
        let totp = otp
            .totp(phone_otp::totp::TotpSettings::new(TOTP_ISSUER), totp_keys)
            .unwrap();
        let builder = Gateway::builder(otp)
            .totp(totp)
            .provider_router(router)
            .okta(OktaHook::new(
                "Authorization",
                SecretString::from(OKTA_SECRET),
            ))
            .auth0(BearerAccess::new(SecretString::from(AUTH0_TOKEN), "auth0"))
            .api(
                BearerAccess::new(SecretString::from(API_TOKEN), "internal").scopes(Scopes::of(&[
                    Scope::MessagesSend,
                    Scope::ChallengesStart,
                    Scope::ChallengesVerify,
                    Scope::TotpEnroll,
                    Scope::TotpVerify,
                ])),
            )
            .twilio_callbacks(TwilioCallbacks::new(
                TWILIO_CALLBACK_URL,
                SecretString::from(TWILIO_TOKEN),
            ))
            .ntt_cpaas_callbacks(SecretString::from(NTT_CALLBACK_TOKEN))
            // Okta's sample number `9876543210` is an Indian mobile number.
            .default_region("IN");
        let builder = match setup.keys {
            Some(db) => builder.keys(db),
            None => builder,
        }
        .clock(clock.clone());
        let gateway = (setup.configure)(builder).build().unwrap();
        let url = match setup.listener {
            Some(listener) => spawn_on(listener, &gateway),
            None => spawn_gateway(&gateway).await,
        };
        Self {
            url,
            gateway,
            primary,
            secondary,
            clock,
            client: reqwest::Client::new(),
        }
    }

    /// `GET /readyz`: its status and body.
    pub async fn readyz(&self) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// POSTs every body to `path` at once, with `token`; the answers in completion order.
    pub async fn post_concurrently(
        &self,
        path: &str,
        token: &str,
        bodies: Vec<Value>,
    ) -> Vec<reqwest::Response> {
        let mut tasks = tokio::task::JoinSet::new();
        for body in bodies {
            let request = self
                .client
                .post(format!("{}{path}", self.url))
                .bearer_auth(token)
                .json(&body);
            tasks.spawn(async move { request.send().await.unwrap() });
        }
        let mut answers = Vec::new();
        while let Some(answer) = tasks.join_next().await {
            answers.push(answer.unwrap());
        }
        answers
    }

    /// Everything both stubs delivered.
    pub fn delivered(&self) -> Vec<phone_otp::Message> {
        let mut all = self.primary.delivered();
        all.extend(self.secondary.delivered());
        all
    }

    /// POSTs `body` as JSON to `path` with a bearer `token`.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `/metrics`, parsed by the reference Python client (`None` when it is missing).
    pub async fn metrics(&self) -> Option<Samples> {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        parse_prometheus(&text)
    }

    pub async fn okta(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/hooks/okta/telephony", self.url))
            .header("authorization", OKTA_SECRET)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// `../shared/fixtures` beside the repository, or `None` (said loudly; a failure under CI).
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if dir.is_dir() {
        return Some(dir);
    }
    skip_loudly("../shared/fixtures is not beside the repository");
    None
}

/// Reads a fixture as JSON.
pub fn fixture(name: &str) -> Option<Value> {
    let path = fixtures_dir()?.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

/// A name no other test in this run (or an earlier one) uses.
pub fn unique() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{n}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A fresh path under the system temp dir for one test's file.
pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("potp-gw-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// Reports a skipped check on stderr (not captured); under CI a skip is a failure.
pub fn skip_loudly(reason: &str) {
    use std::io::Write as _;
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test: {reason}"
    );
    let _ = std::io::stderr().write_all(format!("\n*** SKIPPED: {reason} ***\n").as_bytes());
}

/// Prometheus samples: name, labels, value.
pub type Samples = Vec<(String, std::collections::BTreeMap<String, String>, f64)>;

/// The sum of the samples `name` whose labels include all of `labels`.
pub fn sample_value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

/// The Python interpreter with jsonschema, yaml and prometheus_client (`PYTHON`, set by
/// ./scripts/test.sh), or `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Parses Prometheus text with the reference Python client's parser and returns every
/// sample as `(name, labels, value)`; `None` when the parser is unavailable (said loudly).
pub fn parse_prometheus(text: &str) -> Option<Samples> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/parse_metrics.py");
    let mut child = std::process::Command::new(python())
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    {
        use std::io::Write as _;
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    }
    let out = child.wait_with_output().ok()?;
    match out.status.code() {
        Some(0) => Some(serde_json::from_slice(&out.stdout).unwrap()),
        Some(3) => {
            skip_loudly(&format!(
                "prometheus_client missing: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            None
        }
        _ => panic!(
            "/metrics does not parse: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Validates `document` against schema `schema` of Okta's spec excerpt with Python's
/// `jsonschema` (a real validator, installed by ./scripts/test.sh). Returns `false` when
/// the validator or the fixtures are unavailable (said loudly).
pub fn validates_against_okta_schema(document: &Value, schema: &str) -> bool {
    let Some(dir) = fixtures_dir() else {
        return false;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/validate_okta.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .arg(dir.join("okta-telephony-schema.yaml"))
        .arg(schema)
        .arg(document.to_string())
        .output();
    match output {
        Ok(out) if out.status.code() == Some(0) => true,
        Ok(out) if out.status.code() == Some(3) => {
            skip_loudly(&format!(
                "python3 jsonschema/yaml missing: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            false
        }
        Ok(out) => panic!(
            "{document} does not validate against {schema}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            skip_loudly(&format!("python3 not runnable: {e}"));
            false
        }
    }
}

/// A provider that never answers.
#[derive(Debug)]
pub struct Hung;

#[async_trait::async_trait]
impl phone_otp::PhoneProvider for Hung {
    fn name(&self) -> &str {
        "hung"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(
        &self,
        _: &phone_otp::Message,
    ) -> Result<phone_otp::Receipt, phone_otp::ProviderError> {
        std::future::pending().await
    }
}
