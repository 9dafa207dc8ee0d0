//! The one interleaving in which moving a TOTP factor after an HMAC key rotation could
//! undo replay protection, forced step by step: two requests read the factor under the
//! old key's id; the first moves it, and its code's step is accepted under the new id;
//! only then does the second write its copy. Were that copy written over the moved
//! factor, it would bring back a factor with no step spent, and the same code would
//! verify twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phone_otp::store::{ChallengeRecord, PendingRecord};
use phone_otp::totp::{TotpKeys, TotpOutcome, TotpSettings};
use phone_otp::{
    AccountId, Admission, ChallengeId, Clock, Digest, FactorWrite, FailureCap, KeyRing, Limit,
    ManualClock, MemoryStore, NotPending, OtpService, OtpStore, StepDecision, StoreError,
    StubProvider, Timestamp, TotpFactor, VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};
use tokio::sync::watch;

use crate::support::{TestResult, key};

/// What the gates wait for.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Reads of a whole factor (what a move reads under an older id).
    factor_reads: usize,
    /// Factor writes started.
    writes: usize,
    /// Steps accepted.
    accepted: usize,
}

/// A `MemoryStore` that holds the first factor write until both requests have read the
/// old factor, and the second write until a step was accepted.
#[derive(Debug)]
struct Gated {
    inner: MemoryStore,
    seen: watch::Sender<Seen>,
}

impl Gated {
    async fn wait_for(&self, ready: impl Fn(Seen) -> bool) {
        let mut seen = self.seen.subscribe();
        // The sender lives as long as the store, so the wait ends only when `ready` does.
        let _ = seen.wait_for(|seen| ready(*seen)).await;
    }

    fn record(&self, change: impl FnOnce(&mut Seen)) {
        self.seen.send_modify(change);
    }
}

#[async_trait]
impl OtpStore for Gated {
    fn reserve_key(&self, random: [u8; 16], now: Timestamp) -> Result<[u8; 16], StoreError> {
        self.inner.reserve_key(random, now)
    }
    async fn insert(&self, challenge: ChallengeRecord, now: Timestamp) -> Result<(), StoreError> {
        self.inner.insert(challenge, now).await
    }
    async fn check(
        &self,
        id: &ChallengeId,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.check(id, candidates, cap, now).await
    }
    async fn pending(
        &self,
        id: &ChallengeId,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError> {
        self.inner.pending(id, now).await
    }
    async fn add_code(
        &self,
        id: &ChallengeId,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        self.inner.add_code(id, digest, now).await
    }
    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        self.inner.remove(id).await
    }
    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError> {
        self.inner.throttle(limits, now).await
    }
    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError> {
        self.inner.failures(account, now).await
    }
    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError> {
        self.inner.reset_failures(account).await
    }
    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        let factor = self.inner.totp_factor(account).await;
        self.record(|seen| seen.factor_reads += 1);
        factor
    }
    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        self.inner.totp_secret(account).await
    }
    async fn put_totp_factor(
        &self,
        account: AccountId,
        factor: TotpFactor,
        when: FactorWrite,
    ) -> Result<bool, StoreError> {
        let mut order = 0;
        self.record(|seen| {
            order = seen.writes;
            seen.writes += 1;
        });
        if order == 0 {
            self.wait_for(|seen| seen.factor_reads >= 2).await;
        } else {
            self.wait_for(|seen| seen.accepted >= 1).await;
        }
        self.inner.put_totp_factor(account, factor, when).await
    }
    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        self.inner.remove_totp_factor(account).await
    }
    async fn update_totp_factor(
        &self,
        account: AccountId,
        expected_secret: &[u8],
        confirm: bool,
        resealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        self.inner
            .update_totp_factor(account, expected_secret, confirm, resealed)
            .await
    }
    async fn accept_totp_step(
        &self,
        account: AccountId,
        step: u64,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        let decision = self.inner.accept_totp_step(account, step, cap, now).await;
        if matches!(decision, Ok(StepDecision::Accepted)) {
            self.record(|seen| seen.accepted += 1);
        }
        decision
    }
    async fn use_recovery_code(
        &self,
        account: AccountId,
        digests: &[[u8; 32]],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        self.inner
            .use_recovery_code(account, digests, cap, now)
            .await
    }
    async fn count_failure(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        self.inner.count_failure(account, cap, now).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_a_moved_factor_does_not_undo_a_spent_step() -> TestResult {
    let store = Arc::new(Gated {
        inner: MemoryStore::new(),
        seen: watch::Sender::new(Seen::default()),
    });
    let clock = ManualClock::new();
    let service = |ring: KeyRing| {
        OtpService::builder()
            .key_ring(ring)
            .provider(StubProvider::new())
            .store(Arc::clone(&store) as Arc<dyn OtpStore>)
            .clock(clock.clone())
            .build()
    };
    let totp_keys = TotpKeys::new(1, &SecretSlice::from(vec![1; 32]))?;
    let settings = TotpSettings::new("Example");
    // Enrolled and confirmed under the old HMAC key, every gate open.
    store.record(|seen| {
        seen.factor_reads = 2;
        seen.accepted = 1;
    });
    let before = service(KeyRing::new(key(1, 7)))?
        .totp(settings.clone(), totp_keys.clone())
        .unwrap();
    let enrollment = before.enroll(None, "alice", "alice").await?;
    let secret =
        phone_otp::totp::base32_decode(enrollment.secret_base32.expose_secret()).ok_or("base32")?;
    let code = |clock: &ManualClock| settings.code_at(&secret, clock.now().as_millis() / 1000);
    assert_eq!(
        before.confirm(None, "alice", &code(&clock)).await?,
        TotpOutcome::Verified
    );
    store.record(|seen| *seen = Seen::default());

    // Rotated: the factor is under the old key's id. Two requests with the next code.
    let after = service(KeyRing::new(key(2, 8)).with_previous(key(1, 7))?)?
        .totp(settings.clone(), totp_keys)
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let next = code(&clock);
    let (first, second) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            tokio::spawn({
                let (after, next) = (after.clone(), next.clone());
                async move { after.verify(None, "alice", &next).await }
            }),
            tokio::spawn({
                let (after, next) = (after.clone(), next.clone());
                async move { after.verify(None, "alice", &next).await }
            }),
        )
    })
    .await
    .map_err(|_| "the interleaving did not happen: a gate was never opened")?;
    let mut outcomes = [first??, second??];
    outcomes.sort_by_key(|o| *o != TotpOutcome::Verified);
    assert_eq!(outcomes, [TotpOutcome::Verified, TotpOutcome::AlreadyUsed]);
    // Both writes happened: the interleaving was the one described above.
    assert_eq!(store.seen.borrow().writes, 2);
    Ok(())
}
