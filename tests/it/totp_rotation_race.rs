//! Two interleavings of concurrent first uses after an HMAC key rotation, when a TOTP
//! factor moves from the old key's account id to the new one, each forced step by step by
//! a store that holds calls until others have happened:
//!
//! - **A late copy.** Both requests read the factor under the old id; the first moves it,
//!   and its code's step is accepted under the new id; only then does the second write its
//!   copy. Written over the moved factor, the copy would bring back a factor with no step
//!   spent, and the same code would verify twice.
//! - **A late lookup.** Both find nothing under the new id; the first moves the factor;
//!   only then does the second look under the old id, and finds nothing there either. It
//!   must still find the factor (now under the new id), not answer `NotEnrolled`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phone_otp::store::{ChallengeRecord, PendingRecord};
use phone_otp::totp::{TotpKeys, TotpOutcome, TotpService, TotpSettings};
use phone_otp::{
    AccountId, Admission, ChallengeId, Clock, Digest, FactorWrite, FailureCap, KeyRing, Limit,
    ManualClock, MemoryStore, NotPending, OtpService, OtpStore, StepDecision, StoreError,
    StubProvider, Timestamp, TotpFactor, VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};
use tokio::sync::watch;

use crate::support::{TestResult, key};

/// Which interleaving the store forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    /// The first factor write waits until both requests read the old factor, the second
    /// until a step was accepted.
    LateCopy,
    /// The second lookup under the old id waits until the first request removed it there;
    /// the move's write waits until both requests looked under the new id.
    LateLookup,
    /// A move's write waits until the test releases it, after a disable.
    DisableDuringMove,
}

/// What the gates wait for.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// While setting up: nothing waits.
    open: bool,
    /// Set by the test: a held move may write.
    released: bool,
    /// Reads of the secret under an id (each check's first look, under the new id).
    secret_reads: usize,
    /// Lookups of a whole factor started (a move's look under an older id).
    factor_lookups: usize,
    /// Reads of a whole factor done.
    factor_reads: usize,
    /// Factor writes started.
    writes: usize,
    /// Factors removed.
    removes: usize,
    /// Steps accepted.
    accepted: usize,
}

/// A `MemoryStore` that forces one `Race`.
#[derive(Debug)]
struct Gated {
    inner: MemoryStore,
    race: Race,
    seen: watch::Sender<Seen>,
}

impl Gated {
    async fn wait_for(&self, ready: impl Fn(Seen) -> bool) {
        let mut seen = self.seen.subscribe();
        // The sender lives as long as the store, so the wait ends only when `ready` does.
        let _ = seen.wait_for(|seen| seen.open || ready(*seen)).await;
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
        tenant: Option<&str>,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.check(id, tenant, candidates, cap, now).await
    }
    async fn pending(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError> {
        self.inner.pending(id, tenant, now).await
    }
    async fn add_code(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        self.inner.add_code(id, tenant, digest, now).await
    }
    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        self.inner.remove(id).await
    }
    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError> {
        self.inner.throttle(limits, now).await
    }
    async fn release_limits(&self, keys: &[phone_otp::LimitKey]) -> Result<(), StoreError> {
        self.inner.release_limits(keys).await
    }
    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError> {
        self.inner.failures(account, now).await
    }
    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError> {
        self.inner.reset_failures(account).await
    }
    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        let mut order = 0;
        self.record(|seen| {
            order = seen.factor_lookups;
            seen.factor_lookups += 1;
        });
        if self.race == Race::LateLookup && order > 0 {
            self.wait_for(|seen| seen.removes >= 1).await;
        }
        let factor = self.inner.totp_factor(account).await;
        self.record(|seen| seen.factor_reads += 1);
        factor
    }
    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        let secret = self.inner.totp_secret(account).await;
        self.record(|seen| seen.secret_reads += 1);
        secret
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
        match (self.race, order) {
            (Race::LateCopy, 0) => self.wait_for(|seen| seen.factor_reads >= 2).await,
            (Race::LateCopy, _) => self.wait_for(|seen| seen.accepted >= 1).await,
            (Race::LateLookup, _) => self.wait_for(|seen| seen.secret_reads >= 2).await,
            (Race::DisableDuringMove, _) if when == FactorWrite::IfAbsent => {
                self.wait_for(|seen| seen.released).await;
            }
            (Race::DisableDuringMove, _) => {}
        }
        self.inner.put_totp_factor(account, factor, when).await
    }
    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        let removed = self.inner.remove_totp_factor(account).await;
        self.record(|seen| seen.removes += 1);
        removed
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

/// Enrolls under the old key, rotates, and sends two concurrent verifies of the next code
/// through a store forcing `race`: their outcomes, best first, and what the store saw.
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// After a rotation: the factor under the old key's id, a service with the new key, and
/// the next step's code; every gate closed again.
struct Rotated {
    store: Arc<Gated>,
    after: TotpService,
    next: String,
}

/// Enrolls and confirms alice under the old HMAC key (gates open), then rotates.
async fn enrolled_then_rotated(race: Race) -> Result<Rotated, Failure> {
    let store = Arc::new(Gated {
        inner: MemoryStore::new(),
        race,
        seen: watch::Sender::new(Seen {
            open: true,
            ..Seen::default()
        }),
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

    let after = service(KeyRing::new(key(2, 8)).with_previous(key(1, 7))?)?
        .totp(settings.clone(), totp_keys)
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let next = code(&clock);
    Ok(Rotated { store, after, next })
}

/// Two concurrent verifies of the next code after a rotation, through a store forcing
/// `race`: their outcomes, best first, and what the store saw.
async fn two_first_uses_after_a_rotation(race: Race) -> Result<([TotpOutcome; 2], Seen), Failure> {
    let Rotated { store, after, next } = enrolled_then_rotated(race).await?;
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
    let seen = *store.seen.borrow();
    Ok((outcomes, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_a_moved_factor_does_not_undo_a_spent_step() -> TestResult {
    let (outcomes, seen) = two_first_uses_after_a_rotation(Race::LateCopy).await?;
    assert_eq!(outcomes, [TotpOutcome::Verified, TotpOutcome::AlreadyUsed]);
    // Both wrote: the second copy came after the step was spent, and was refused.
    assert_eq!(seen.writes, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_lookup_finds_the_factor_another_request_moved() -> TestResult {
    let (outcomes, seen) = two_first_uses_after_a_rotation(Race::LateLookup).await?;
    assert_eq!(outcomes, [TotpOutcome::Verified, TotpOutcome::AlreadyUsed]);
    // One move; the second lookup under the old id came after it and found nothing.
    assert_eq!((seen.writes, seen.factor_lookups), (1, 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_during_a_move_is_not_undone() -> TestResult {
    let Rotated { store, after, next } = enrolled_then_rotated(Race::DisableDuringMove).await?;
    // A check reads the factor under the old id and is held before it writes the move.
    let check = tokio::spawn({
        let (after, next) = (after.clone(), next.clone());
        async move { after.verify(None, "alice", &next).await }
    });
    tokio::time::timeout(
        Duration::from_secs(20),
        store.wait_for(|seen| seen.writes >= 1),
    )
    .await
    .map_err(|_| "the check never reached its move")?;
    // Meanwhile the factor is disabled; then the move may write.
    after.disable(None, "alice").await?;
    store.record(|seen| seen.released = true);
    let outcome = tokio::time::timeout(Duration::from_secs(20), check)
        .await
        .map_err(|_| "the held move never finished")???;
    assert_eq!(outcome, TotpOutcome::NotEnrolled);
    // And the factor stays disabled.
    assert_eq!(
        after.verify(None, "alice", &next).await?,
        TotpOutcome::NotEnrolled
    );
    Ok(())
}
