//! One contract every `OtpStore` must meet, run against each backend.
//!
//! Each check takes a fresh store; the memory backend runs them below, other backends call
//! the same functions from their own modules.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use phone_otp::{
    Admission, ChallengeId, Clock, Limit, LimitKey, LimitKind, ManualClock, MemoryStore,
    NotPending, OtpStore, Purpose, Quota, ResendRequest, StartRequest, VerifyOutcome,
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

/// What a resend needs comes back as it went in, on every store: subject (even empty),
/// tenant, and whether a client IP and a context were given.
pub async fn pending_keeps_what_a_resend_needs<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with_store(store.clone());
    let cases = [
        (Some(""), None, false, false),
        (Some("user-7"), Some("acme"), true, true),
        (None, Some(""), true, false),
        (None, None, false, true),
    ];
    for (i, (subject, tenant, with_ip, with_context)) in cases.into_iter().enumerate() {
        let mut request = StartRequest::sms(jp_mobile_n(i as u32), Purpose::SignIn);
        request.subject = subject.map(str::to_owned);
        request.tenant = tenant.map(str::to_owned);
        if with_ip {
            request = request.client_ip("192.0.2.1".parse()?);
        }
        if with_context {
            request = request.context(b"ctx".to_vec());
        }
        let (id, code) = h.start_request(request).await;
        let pending = store.pending(&id, h.clock.now()).await?.expect("live");
        assert_eq!(pending.subject.as_deref(), subject, "case {i}");
        assert_eq!(pending.tenant.as_deref(), tenant, "case {i}");
        assert_eq!(pending.client_ip_given, with_ip, "case {i}");
        assert_eq!(pending.context_bound, with_context, "case {i}");
        // After a resend too (the memory store moves older codes next to the tenant).
        let context: &[u8] = if with_context { b"ctx" } else { b"" };
        let mut resend = ResendRequest::new(id).context(context);
        if with_ip {
            resend = resend.client_ip("192.0.2.1".parse()?);
        }
        h.otp.resend_with(resend).await?;
        let pending = store.pending(&id, h.clock.now()).await?.expect("live");
        assert_eq!(pending.tenant.as_deref(), tenant, "case {i} after resend");
        let outcome = h.otp.verify_with_context(&id, &code, context).await?;
        assert_eq!(
            outcome,
            VerifyOutcome::Verified {
                purpose: Purpose::SignIn,
                subject: subject.map(str::to_owned)
            },
            "case {i}"
        );
    }
    Ok(())
}

pub async fn throttle_decisions_and_retry_after(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let quota = Quota::per_period(NonZeroU32::new(3).unwrap(), Duration::from_secs(90));
    let one = |key: &LimitKey| [Limit::new(key.clone(), quota)];
    let key = LimitKey::subject(None, "contract-user");
    let limited = |retry_after| Admission::Limited {
        limit: LimitKind::Subject,
        retry_after,
    };
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&one(&key), clock.now()).await?,
            Admission::Allowed
        );
    }
    assert_eq!(
        store.throttle(&one(&key), clock.now()).await?,
        limited(Duration::from_secs(30))
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.throttle(&one(&key), clock.now()).await?,
        limited(Duration::from_secs(20))
    );
    // Keys are independent.
    let other = LimitKey::subject(None, "contract-user-2");
    assert_eq!(
        store.throttle(&one(&other), clock.now()).await?,
        Admission::Allowed
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        store.throttle(&one(&key), clock.now()).await?,
        Admission::Allowed
    );
    assert!(matches!(
        store.throttle(&one(&key), clock.now()).await?,
        Admission::Limited { .. }
    ));
    // A full period later the whole burst is back.
    clock.advance(Duration::from_secs(90));
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&one(&key), clock.now()).await?,
            Admission::Allowed
        );
    }
    Ok(())
}

/// A set of limits is decided together: if one refuses, none is charged, and the refusal
/// names the first refusing limit in the order given.
pub async fn throttle_charges_all_limits_or_none(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let once = Quota::per_hour(NonZeroU32::MIN);
    let twice = Quota::per_hour(NonZeroU32::new(2).unwrap());
    let ip = Limit::new(LimitKey::client_ip("203.0.113.1".parse()?), once);
    let number = Limit::new(LimitKey::destination([7; 8]), twice);
    let global = Limit::new(LimitKey::global(), twice);

    // The IP spends its one send.
    let all = [ip.clone(), number.clone(), global.clone()];
    assert_eq!(store.throttle(&all, clock.now()).await?, Admission::Allowed);
    // Over the IP limit: refused, and neither the number nor the global budget is spent,
    // however often it tries.
    for _ in 0..10 {
        assert_eq!(
            store.throttle(&all, clock.now()).await?,
            Admission::Limited {
                limit: LimitKind::ClientIp,
                retry_after: Duration::from_secs(3600)
            }
        );
    }
    let from_elsewhere = [number.clone(), global.clone()];
    assert_eq!(
        store.throttle(&from_elsewhere, clock.now()).await?,
        Admission::Allowed,
        "the refused sends spent the number's budget"
    );
    // Now both are spent; the first refusing limit in order is named.
    assert_eq!(
        store.throttle(&from_elsewhere, clock.now()).await?,
        Admission::Limited {
            limit: LimitKind::Destination,
            retry_after: Duration::from_secs(1800)
        }
    );
    assert_eq!(store.throttle(&[], clock.now()).await?, Admission::Allowed);
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
async fn memory_pending_keeps_what_a_resend_needs() -> TestResult {
    pending_keeps_what_a_resend_needs(memory()).await
}

#[tokio::test]
async fn memory_throttle_charges_all_limits_or_none() -> TestResult {
    throttle_charges_all_limits_or_none(memory()).await
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
            &[Limit::new(
                LimitKey::global(),
                Quota::per_minute(NonZeroU32::MIN),
            )],
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
