//! One contract every `OtpStore` must meet, run against each backend.
//!
//! Each check takes a fresh store; the memory backend runs them below, other backends call
//! the same functions from their own modules.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use phone_otp::{
    ChallengeId, Clock, Decision, LimitKey, ManualClock, MemoryStore, NotPending, OtpStore, Quota,
    VerifyOutcome,
};

use crate::support::{Harness, TestResult, jp_mobile, jp_mobile_n, verify_from_64_tasks, wrong};

pub async fn every_verify_outcome<S: OtpStore + Clone + 'static>(store: S) -> TestResult {
    let h = Harness::with_store(store);
    let (id, code) = h.start(&jp_mobile()).await;
    assert_eq!(
        h.otp.verify(&id, &wrong(&code)).await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    assert_eq!(h.otp.verify(&id, &code).await?, VerifyOutcome::AlreadyUsed);

    let (exhausted, code) = h.start(&jp_mobile()).await;
    for left in (0..5).rev() {
        assert_eq!(
            h.otp.verify(&exhausted, &wrong(&code)).await?,
            VerifyOutcome::Mismatch {
                attempts_left: left
            }
        );
    }
    assert_eq!(
        h.otp.verify(&exhausted, &code).await?,
        VerifyOutcome::AttemptsExhausted
    );

    let (expiring, code) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(300));
    assert_eq!(
        h.otp.verify(&expiring, &code).await?,
        VerifyOutcome::Expired
    );

    let unknown = ChallengeId::from_bytes([0x5A; 25]);
    assert_eq!(
        h.otp.verify(&unknown, "123456").await?,
        VerifyOutcome::NotFound
    );
    Ok(())
}

pub async fn single_use_under_64_concurrent_checks<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with_store(store);
    let (id, code) = h.start(&jp_mobile()).await;
    let mut verified = 0;
    for outcome in verify_from_64_tasks(std::slice::from_ref(&h.otp), id, &code).await? {
        match outcome {
            VerifyOutcome::Verified { .. } => verified += 1,
            VerifyOutcome::AlreadyUsed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(verified, 1);
    Ok(())
}

pub async fn resend_codes_and_pending_state<S: OtpStore + Clone + 'static>(store: S) -> TestResult {
    let h = Harness::with_store(store.clone());
    let (id, _) = h.start(&jp_mobile_n(77)).await;
    let pending = store.pending(&id, h.clock.now()).await?.expect("live");
    assert_eq!(pending.destination, jp_mobile_n(77));
    for _ in 0..3 {
        h.otp.resend(&id).await?;
    }
    h.clock.advance(Duration::from_secs(300));
    assert!(matches!(
        store.pending(&id, h.clock.now()).await?,
        Err(NotPending::Expired)
    ));
    store.remove(&id).await?;
    assert!(matches!(
        store.pending(&id, h.clock.now()).await?,
        Err(NotPending::NotFound)
    ));
    Ok(())
}

pub async fn throttle_decisions_and_retry_after(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let quota = Quota::per_period(NonZeroU32::new(3).unwrap(), Duration::from_secs(90));
    let key = LimitKey::subject("contract-user");
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&key, quota, clock.now()).await?,
            Decision::Allowed
        );
    }
    assert_eq!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Limited {
            retry_after: Duration::from_secs(30)
        }
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Limited {
            retry_after: Duration::from_secs(20)
        }
    );
    // Keys are independent.
    let other = LimitKey::subject("contract-user-2");
    assert_eq!(
        store.throttle(&other, quota, clock.now()).await?,
        Decision::Allowed
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Allowed
    );
    assert!(matches!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Limited { .. }
    ));
    // A full period later the whole burst is back.
    clock.advance(Duration::from_secs(90));
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&key, quota, clock.now()).await?,
            Decision::Allowed
        );
    }
    Ok(())
}

fn memory() -> Arc<dyn OtpStore> {
    Arc::new(MemoryStore::new())
}

#[tokio::test]
async fn memory_every_verify_outcome() -> TestResult {
    every_verify_outcome(memory()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_single_use_under_64_concurrent_checks() -> TestResult {
    single_use_under_64_concurrent_checks(memory()).await
}

#[tokio::test]
async fn memory_resend_codes_and_pending_state() -> TestResult {
    resend_codes_and_pending_state(memory()).await
}

#[tokio::test]
async fn memory_throttle_decisions_and_retry_after() -> TestResult {
    throttle_decisions_and_retry_after(memory()).await
}

#[tokio::test]
async fn memory_store_sweeps_dead_records_and_limits() -> TestResult {
    let store = MemoryStore::new();
    let h = Harness::with_store(Arc::new(store.clone()));
    for i in 0..200 {
        h.start(&jp_mobile_n(i)).await;
    }
    assert_eq!(store.len(), 200);
    store
        .throttle(
            &LimitKey::global(),
            Quota::per_minute(NonZeroU32::MIN),
            h.clock.now(),
        )
        .await?;
    assert_eq!(store.limit_keys(), 1);
    // Still kept shortly after expiry so verify can say Expired...
    h.clock.advance(Duration::from_secs(301));
    store.sweep(h.clock.now());
    assert_eq!(store.len(), 200);
    // ...and gone once that window passes; new inserts sweep on their own too.
    h.clock.advance(Duration::from_secs(600));
    h.start(&jp_mobile_n(999)).await;
    store.sweep(h.clock.now());
    assert_eq!(store.len(), 1);
    assert_eq!(store.limit_keys(), 0);
    Ok(())
}
