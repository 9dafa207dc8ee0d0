//! Shared helpers: a service over a stub provider and a manual clock.

use phone_otp::store::ChallengeRecord;
use phone_otp::{
    ChallengeId, Channel, Digest, HmacKey, KeyId, KeyRing, Limits, Locale, ManualClock, OtpService,
    OtpServiceBuilder, OtpStore, PhoneNumber, Purpose, StartRequest, StubProvider, Timestamp,
    VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};
use std::sync::Arc;
use tokio::sync::Barrier;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub fn key(id: u8, fill: u8) -> HmacKey {
    HmacKey::new(id, &SecretSlice::from(vec![fill; 32])).expect("32-byte key")
}

pub fn jp_mobile() -> PhoneNumber {
    PhoneNumber::parse("+819012345678").expect("valid JP mobile")
}

/// A distinct valid JP mobile number per index.
pub fn jp_mobile_n(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+81901{:07}", n % 10_000_000)).expect("valid JP mobile")
}

pub struct Harness {
    pub otp: OtpService,
    pub stub: StubProvider,
    pub clock: ManualClock,
}

impl Harness {
    /// Default limits, memory store.
    pub fn new() -> Self {
        Self::with(|builder| builder)
    }

    /// No send limits, so tests can start many challenges.
    pub fn unlimited() -> Self {
        Self::with(|builder| builder.limits(Limits::danger_none()))
    }

    pub fn with_store(store: impl OtpStore + 'static) -> Self {
        Self::with(move |builder| builder.store(store).limits(Limits::danger_none()))
    }

    pub fn with(configure: impl FnOnce(OtpServiceBuilder) -> OtpServiceBuilder) -> Self {
        let stub = StubProvider::new();
        let clock = ManualClock::new();
        let builder = OtpService::builder()
            .key_ring(KeyRing::new(key(1, 7)))
            .provider(stub.clone())
            .clock(clock.clone());
        let otp = configure(builder).build().expect("valid configuration");
        Self { otp, stub, clock }
    }

    /// Starts an SMS sign-in challenge and returns its id and the delivered code.
    pub async fn start(&self, to: &PhoneNumber) -> (ChallengeId, String) {
        self.start_request(StartRequest::sms(to.clone(), Purpose::SignIn))
            .await
    }

    pub async fn start_request(&self, request: StartRequest) -> (ChallengeId, String) {
        let to = request.to.clone();
        let started = self.otp.start(request).await.expect("start succeeds");
        (started.challenge_id, last_code(&self.stub, &to))
    }
}

/// The last code `stub` delivered to `to`, in the clear.
pub fn last_code(stub: &StubProvider, to: &PhoneNumber) -> String {
    stub.last_code_for(to)
        .expect("stub saw the code")
        .expose_secret()
        .to_owned()
}

/// A sign-in SMS record for `id` whose digest is `digest_byte` repeated, for tests that
/// talk to a store directly.
pub fn record(id: ChallengeId, digest_byte: u8, expires_at: Timestamp) -> ChallengeRecord {
    ChallengeRecord {
        id,
        digest: Digest::from_parts(KeyId(1), [digest_byte; 32]),
        expires_at,
        attempts_left: 5,
        purpose: Purpose::SignIn,
        channel: Channel::Sms,
        locale: Locale::En,
        destination: jp_mobile(),
        sealed_destination: phone_otp::SealedDestination::from_bytes(vec![0xA5; 29]),
        subject: None,
        tenant: None,
        client_ip_given: false,
        context_bound: false,
    }
}

/// A code guaranteed to differ from `code` (same length).
pub fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect()
}

/// Reports a skipped group of tests so it shows in the test output: the harness captures
/// `eprintln!` of passing tests, so this writes to the stderr handle directly. Under CI
/// (`CI` set) a skip is a failure instead.
pub fn skip_loudly(reason: &str) {
    use std::io::Write as _;
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run these tests: {reason}"
    );
    let _ = std::io::stderr()
        .write_all(format!("\n*** REDIS TESTS SKIPPED: {reason} ***\n").as_bytes());
}

/// Checks `code` against `id` from 64 tasks released at once, spread round-robin over
/// `services`, and returns every outcome: single use must hold under that race.
pub async fn verify_from_64_tasks(
    services: &[OtpService],
    id: ChallengeId,
    code: &str,
) -> Result<Vec<VerifyOutcome>, Box<dyn std::error::Error + Send + Sync>> {
    let barrier = Arc::new(Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let otp = services[i % services.len()].clone();
            let (code, barrier) = (code.to_owned(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                otp.verify(&id, &code).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await??);
    }
    Ok(outcomes)
}
