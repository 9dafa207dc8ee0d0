//! One contract every `OtpStore` must meet, run against each backend.
//!
//! Each check takes a fresh store; the memory backend runs them below, other backends call
//! the same functions from their own modules.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use phone_otp::{
    Account, Admission, Backoff, CHALLENGE_ID_BYTES, ChallengeId, Clock, ConversionRule,
    FactorWrite, FailureCap, Limit, LimitKey, LimitKind, Limits, ManualClock, MemoryStore,
    NotPending, OtpStore, Purpose, Quota, ResendError, ResendRequest, Rule, StartError,
    StartRequest, StepDecision, TotpFactor, VerifyOutcome, VerifyRequest,
};

use phone_otp::store::StoredDestination;

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

    let unknown = ChallengeId::from_bytes([0x5A; 33]);
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
    let pending = store
        .pending(&id, None, h.clock.now())
        .await?
        .expect("live");
    // In clear in this process's memory; sealed (no digits of it) in a shared store.
    match &pending.destination {
        StoredDestination::Number(number) => assert_eq!(number, &jp_mobile_n(77)),
        StoredDestination::Sealed(sealed) => {
            let digits = jp_mobile_n(77).e164_digits().to_owned();
            let bytes = sealed.as_bytes();
            assert!(
                !bytes
                    .windows(8)
                    .any(|w| digits.as_bytes().windows(8).any(|d| d == w))
            );
        }
    }
    for _ in 0..3 {
        h.otp.resend(&id).await?;
    }
    h.clock.advance(Duration::from_secs(300));
    assert!(matches!(
        store.pending(&id, None, h.clock.now()).await?,
        Err(NotPending::Expired)
    ));
    store.remove(&id).await?;
    assert!(matches!(
        store.pending(&id, None, h.clock.now()).await?,
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
        let pending = store
            .pending(&id, tenant, h.clock.now())
            .await?
            .expect("live");
        assert_eq!(pending.subject.as_deref(), subject, "case {i}");
        assert_eq!(pending.tenant.as_deref(), tenant, "case {i}");
        assert_eq!(pending.client_ip_given, with_ip, "case {i}");
        assert_eq!(pending.context_bound, with_context, "case {i}");
        // After a resend too (the memory store moves older codes next to the tenant).
        let context: &[u8] = if with_context { b"ctx" } else { b"" };
        let mut resend = ResendRequest::new(id).context(context);
        resend.tenant = tenant.map(str::to_owned);
        if with_ip {
            resend = resend.client_ip("192.0.2.1".parse()?);
        }
        h.otp.resend_with(resend).await?;
        let pending = store
            .pending(&id, tenant, h.clock.now())
            .await?
            .expect("live");
        assert_eq!(pending.tenant.as_deref(), tenant, "case {i} after resend");
        let mut verify = VerifyRequest::new(id, &code).context(context);
        verify.tenant = tenant;
        let outcome = h.otp.verify_with(verify).await?;
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

fn cap(max: u32) -> FailureCap {
    FailureCap::new(NonZeroU32::new(max).unwrap(), Duration::from_secs(86_400))
}

/// Consecutive wrong codes are counted per account across its challenges: new challenges
/// bring no fresh guesses past the cap, a verified code clears the count, and a reset
/// unlocks (NIST SP 800-63B 5.2.2).
pub async fn failures_are_capped_per_account<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with(|b| {
        b.store(store.clone())
            .limits(Limits::danger_none())
            .failure_cap(cap(12))
    });
    let user = |i| StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).subject("capped-user");
    let account = Account::Subject {
        tenant: None,
        subject: "capped-user",
    };
    // A verified code clears what came before.
    let (id, code) = h.start_request(user(0)).await;
    h.otp.verify(&id, &wrong(&code)).await?;
    assert_eq!(h.otp.failures(account).await?, 1);
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    assert_eq!(h.otp.failures(account).await?, 0);

    // Twelve wrong codes over three challenges lock the account...
    let mut last = None;
    for i in 1..=3 {
        let (id, code) = h.start_request(user(i)).await;
        for _ in 0..4 {
            assert!(matches!(
                h.otp.verify(&id, &wrong(&code)).await?,
                VerifyOutcome::Mismatch { .. }
            ));
        }
        last = Some((id, code));
    }
    assert_eq!(h.otp.failures(account).await?, 12);
    let (id, code) = last.unwrap();
    // ...so even the right code is refused, without using up an attempt...
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::AccountLocked
    );
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::AccountLocked
    );
    // ...and no new code is sent for it.
    let sent = h.stub.attempts();
    assert!(matches!(
        h.otp.start(user(9)).await,
        Err(StartError::AccountLocked)
    ));
    assert!(matches!(
        h.otp.resend(&id).await,
        Err(ResendError::AccountLocked)
    ));
    assert_eq!(h.stub.attempts(), sent, "nothing was sent");
    // Another user, and the same user in another tenant, are other accounts.
    let (other, other_code) = h
        .start_request(
            StartRequest::sms(jp_mobile_n(20), Purpose::SignIn)
                .subject("capped-user")
                .tenant("t2"),
        )
        .await;
    assert!(
        h.otp
            .verify_with(VerifyRequest::new(other, &other_code).tenant("t2"))
            .await?
            .is_verified()
    );

    // An administrator's reset unlocks; the challenge's last attempt is still there.
    h.otp.reset_failures(account).await?;
    assert!(h.otp.verify(&id, &code).await?.is_verified());

    // Without a subject, the number is the account; counts are forgotten a window after
    // the last failure.
    let (id, code) = h.start(&jp_mobile_n(30)).await;
    h.otp.verify(&id, &wrong(&code)).await?;
    let number = jp_mobile_n(30);
    assert_eq!(h.otp.failures(Account::Number(&number)).await?, 1);
    h.clock.advance(Duration::from_secs(86_400));
    assert_eq!(h.otp.failures(Account::Number(&number)).await?, 0);
    Ok(())
}

/// A locked account's refused starts charge no limit: the user's quota (three an hour
/// here) is whole once an administrator unlocks the account. The account's failures and
/// the limits are read in one step on one Redis server, so this checks that step too.
pub async fn a_locked_account_charges_no_limit<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with(|b| {
        b.store(store.clone())
            .limits(Limits {
                per_subject: Some(Quota::per_hour(NonZeroU32::new(3).unwrap())),
                ..Limits::danger_none()
            })
            .failure_cap(cap(2))
    });
    let user = |n: u32| StartRequest::sms(jp_mobile_n(n), Purpose::SignIn).subject("locked-user");
    let (id, code) = h.start_request(user(0)).await;
    for _ in 0..2 {
        h.otp.verify(&id, &wrong(&code)).await?;
    }
    let sent = h.stub.attempts();
    for n in 1..=5 {
        assert!(matches!(
            h.otp.start(user(n)).await,
            Err(StartError::AccountLocked)
        ));
    }
    assert!(matches!(
        h.otp.resend(&id).await,
        Err(ResendError::AccountLocked)
    ));
    assert_eq!(h.stub.attempts(), sent, "nothing was sent");
    let account = Account::Subject {
        tenant: None,
        subject: "locked-user",
    };
    h.otp.reset_failures(account).await?;
    // One of three used before the lock; the two left are still there, then the quota.
    h.start_request(user(6)).await;
    h.start_request(user(7)).await;
    assert!(matches!(
        h.otp.start(user(8)).await,
        Err(StartError::Limited {
            limit: LimitKind::Subject,
            ..
        })
    ));
    Ok(())
}

/// The cap holds under a race: 64 concurrent wrong codes over 13 challenges of one
/// account with a cap of 10 count exactly 10 failures.
pub async fn failure_cap_holds_under_concurrent_wrong_codes<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with(|b| {
        b.store(store.clone())
            .limits(Limits::danger_none())
            .failure_cap(cap(10))
    });
    let mut challenges = Vec::new();
    for i in 0..13 {
        challenges.push(
            h.start_request(StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).subject("racer"))
                .await,
        );
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (otp, barrier) = (h.otp.clone(), Arc::clone(&barrier));
            let (id, code) = challenges[i % challenges.len()].clone();
            tokio::spawn(async move {
                barrier.wait().await;
                otp.verify(&id, &wrong(&code)).await
            })
        })
        .collect();
    let mut mismatches = 0;
    for task in tasks {
        match task.await?? {
            VerifyOutcome::Mismatch { .. } => mismatches += 1,
            VerifyOutcome::AccountLocked | VerifyOutcome::AttemptsExhausted => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(mismatches, 10);
    let account = Account::Subject {
        tenant: None,
        subject: "racer",
    };
    assert_eq!(h.otp.failures(account).await?, 10);
    Ok(())
}

/// An id whose account bytes were changed finds nothing: it can neither spend the
/// challenge's attempts nor charge failures to another account.
pub async fn an_id_with_another_account_finds_nothing<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with_store(store.clone());
    let (victim, _) = h
        .start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).subject("victim"))
        .await;
    let (own, own_code) = h
        .start_request(StartRequest::sms(jp_mobile_n(2), Purpose::SignIn).subject("attacker"))
        .await;
    let mut forged = <[u8; CHALLENGE_ID_BYTES]>::try_from(own.as_bytes())?;
    forged[CHALLENGE_ID_BYTES - 8..].copy_from_slice(&victim.as_bytes()[CHALLENGE_ID_BYTES - 8..]);
    let forged = ChallengeId::from_bytes(forged);
    assert_eq!(forged.account(), victim.account());
    for _ in 0..3 {
        assert_eq!(
            h.otp.verify(&forged, &wrong(&own_code)).await?,
            VerifyOutcome::NotFound
        );
    }
    let victim_account = Account::Subject {
        tenant: None,
        subject: "victim",
    };
    assert_eq!(h.otp.failures(victim_account).await?, 0);
    assert!(matches!(
        store.pending(&forged, None, h.clock.now()).await?,
        Err(NotPending::NotFound)
    ));
    // The genuine id kept all its attempts.
    assert_eq!(
        h.otp.verify(&own, &wrong(&own_code)).await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    Ok(())
}

/// A challenge answers only the tenant it was started for: any other tenant (or none)
/// finds nothing, spends no attempt, sends nothing, and the owner's challenge is untouched,
/// also while 32 other-tenant checks with the right code race the owner's own.
pub async fn a_challenge_answers_only_its_tenant<S: OtpStore + Clone + 'static>(
    store: S,
) -> TestResult {
    let h = Harness::with_store(store.clone());
    let to = jp_mobile_n(31);
    let (id, code) = h
        .start_request(
            StartRequest::sms(to.clone(), Purpose::SignIn)
                .subject("user-1")
                .tenant("sys-a"),
        )
        .await;
    let sent = h.stub.attempts();
    let now = h.clock.now();
    for tenant in [Some("sys-b"), None, Some("sys-a "), Some("sys")] {
        let mut request = VerifyRequest::new(id, &code);
        request.tenant = tenant;
        assert_eq!(h.otp.verify_with(request).await?, VerifyOutcome::NotFound);
        let mut resend = ResendRequest::new(id);
        resend.tenant = tenant.map(str::to_owned);
        assert!(matches!(
            h.otp.resend_with(resend).await,
            Err(ResendError::NotPending(NotPending::NotFound))
        ));
        assert!(matches!(
            store.pending(&id, tenant, now).await?,
            Err(NotPending::NotFound)
        ));
        let digest = phone_otp::Digest::from_parts(phone_otp::KeyId(1), [9; 32]);
        assert!(matches!(
            store.add_code(&id, tenant, digest, now).await?,
            Err(NotPending::NotFound)
        ));
    }
    assert_eq!(
        h.stub.attempts(),
        sent,
        "nothing was sent for another tenant"
    );
    let account = Account::Subject {
        tenant: Some("sys-a"),
        subject: "user-1",
    };
    assert_eq!(h.otp.failures(account).await?, 0);
    // The owner's challenge kept every attempt and its code.
    assert_eq!(
        h.otp
            .verify_with(VerifyRequest::new(id, &wrong(&code)).tenant("sys-a"))
            .await?,
        VerifyOutcome::Mismatch { attempts_left: 4 }
    );
    let record = store.pending(&id, Some("sys-a"), now).await?.expect("live");
    assert_eq!(record.tenant.as_deref(), Some("sys-a"));

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..33 {
        let (otp, code) = (h.otp.clone(), code.clone());
        tasks.spawn(async move {
            let tenant = if task == 16 { "sys-a" } else { "sys-b" };
            let outcome = otp
                .verify_with(VerifyRequest::new(id, &code).tenant(tenant))
                .await;
            (tenant, outcome)
        });
    }
    let mut verified = 0;
    while let Some(joined) = tasks.join_next().await {
        let (tenant, outcome) = joined?;
        match (tenant, outcome?) {
            ("sys-a", VerifyOutcome::Verified { subject, .. }) => {
                assert_eq!(subject.as_deref(), Some("user-1"));
                verified += 1;
            }
            ("sys-b", VerifyOutcome::NotFound) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(verified, 1);
    Ok(())
}

/// A relayed request (Okta's `eventId`) whose delivery failed is tried again on its
/// repeat, once: while in flight or after delivery a repeat is a duplicate, and a request
/// that failed twice is not tried a third time (a duplicate, nothing sent), nor is one
/// whose provider timed out (it may have delivered). The default limits stay on (the
/// failed attempt's cooldown is released with it).
pub async fn a_failed_relay_is_released_for_one_retry(store: Arc<dyn OtpStore>) -> TestResult {
    use phone_otp::{ProviderErrorKind, RelayError, RelayRequest};
    let h = Harness::with(|b| b.store(store));
    let relay = |n: u32| {
        RelayRequest::sms(jp_mobile_n(n), "482913", Purpose::SignIn)
            .tenant("okta")
            .once(format!("event-{n}"))
    };
    // Fails, then its repeat is delivered, then a further repeat is a duplicate.
    h.stub.fail_next(ProviderErrorKind::Unavailable);
    assert!(matches!(
        h.otp.relay(relay(41)).await,
        Err(RelayError::Delivery(_))
    ));
    h.otp.relay(relay(41)).await?;
    assert!(matches!(
        h.otp.relay(relay(41)).await,
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            ..
        })
    ));
    assert_eq!(h.stub.delivered().len(), 1);
    // Fails twice: the third call is refused, and nothing is sent for it.
    h.stub.fail_always(ProviderErrorKind::Unavailable);
    for _ in 0..2 {
        assert!(matches!(
            h.otp.relay(relay(42)).await,
            Err(RelayError::Delivery(_))
        ));
    }
    let attempts = h.stub.attempts();
    assert!(matches!(
        h.otp.relay(relay(42)).await,
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            ..
        })
    ));
    assert_eq!(h.stub.attempts(), attempts, "no third attempt");
    // A provider that timed out may still deliver: the request is not released, so its
    // repeat is a duplicate, never a second code.
    h.stub.recover();
    h.stub.fail_next(ProviderErrorKind::Timeout);
    let Err(RelayError::Delivery(failure)) = h.otp.relay(relay(43)).await else {
        panic!("a timeout is a delivery failure");
    };
    assert!(failure.may_have_delivered());
    let attempts = h.stub.attempts();
    assert!(matches!(
        h.otp.relay(relay(43)).await,
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            ..
        })
    ));
    assert_eq!(
        h.stub.attempts(),
        attempts,
        "no second attempt after a timeout"
    );
    // Another request to a number whose message went out still waits out its cooldown.
    let again = RelayRequest::sms(jp_mobile_n(41), "482913", Purpose::SignIn).once("other");
    assert!(matches!(
        h.otp.relay(again).await,
        Err(RelayError::Limited {
            limit: LimitKind::ResendCooldown,
            ..
        })
    ));
    Ok(())
}

/// Limits hold under a race: 64 concurrent starts from one client IP, each to its own
/// number, with an IP quota of 10: exactly 10 are sent, and the refused ones spent no
/// number's budget (each number can still be sent to at once).
pub async fn limits_hold_under_concurrent_starts(store: Arc<dyn OtpStore>) -> TestResult {
    let h = Harness::with(|b| {
        b.store(Arc::clone(&store)).limits(Limits {
            per_client_ip: Some(Quota::per_hour(NonZeroU32::new(10).unwrap())),
            per_destination: Some(Quota::per_hour(NonZeroU32::MIN)),
            ..Limits::danger_none()
        })
    });
    let ip: std::net::IpAddr = "198.51.100.99".parse()?;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (otp, barrier) = (h.otp.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                otp.start(StartRequest::sms(jp_mobile_n(500 + i), Purpose::SignIn).client_ip(ip))
                    .await
            })
        })
        .collect();
    let mut refused_numbers = Vec::new();
    let mut sent = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await? {
            Ok(_) => sent += 1,
            Err(StartError::Limited {
                limit: LimitKind::ClientIp,
                ..
            }) => refused_numbers.push(500 + i as u32),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent, 10);
    for number in refused_numbers {
        h.otp
            .start(
                StartRequest::sms(jp_mobile_n(number), Purpose::SignIn)
                    .client_ip("192.0.2.99".parse()?),
            )
            .await
            .map_err(|e| format!("number {number}: {e}"))?;
        h.clock.advance(Duration::from_secs(400));
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
        index: 0,
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
                retry_after: Duration::from_secs(3600),
                index: 0,
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
            retry_after: Duration::from_secs(1800),
            index: 0,
        }
    );
    assert_eq!(store.throttle(&[], clock.now()).await?, Admission::Allowed);
    Ok(())
}

/// A refused send leaves no charge of any kind: a budget's amount, a guard's send and a
/// backoff step charged beside a limit that refuses are all absent after (on a cluster,
/// where each key is charged by its own script, they are taken back).
pub async fn a_refused_send_leaves_no_charge_of_any_kind(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let now = clock.now();
    let day = now.as_millis() / 86_400_000;
    let budget = Limit {
        key: LimitKey::budget("ten:refund", "msg", day),
        rule: Rule::Budget {
            cap: 10,
            amount: 3,
            resets_at_millis: (day + 1) * 86_400_000,
        },
    };
    let hour = 3_600_000;
    let guard = Limit {
        key: LimitKey::prefix_conversion("8190555"),
        rule: Rule::Conversion(ConversionRule {
            bucket_millis: hour,
            allowance: 100,
            floor_permille: 200,
            hold_millis: hour,
        }),
    };
    let backoff = Limit::backoff(LimitKey::destination_backoff([9; 8]), Backoff::default(), 0);
    let ip = Limit::new(
        LimitKey::client_ip("203.0.113.2".parse()?),
        Quota::per_hour(NonZeroU32::MIN),
    );
    // One earlier send: the budget has 3 used, the guard one send, the backoff one step.
    let all = [budget.clone(), guard.clone(), backoff.clone(), ip.clone()];
    assert_eq!(store.throttle(&all, now).await?, Admission::Allowed);
    for _ in 0..5 {
        assert!(matches!(
            store.throttle(&all, now).await?,
            Admission::Limited {
                limit: LimitKind::ClientIp,
                index: 3,
                ..
            }
        ));
    }
    assert_eq!(
        store
            .budget_used(std::slice::from_ref(&budget.key), now)
            .await?,
        vec![3]
    );
    let counts = store.conversion_counts(&guard.key, hour, now).await?;
    assert_eq!((counts.sends, counts.verified), (1.0, 0.0));
    // Two of the backoff's three free sends are left, then the wait.
    for n in 0..2 {
        assert_eq!(
            store.throttle(std::slice::from_ref(&backoff), now).await?,
            Admission::Allowed,
            "free send {n}"
        );
    }
    assert!(matches!(
        store.throttle(std::slice::from_ref(&backoff), now).await?,
        Admission::Limited {
            limit: LimitKind::Backoff,
            ..
        }
    ));
    Ok(())
}

/// Progressive backoff: free sends, then doubling waits with the exact time left, and one
/// step forgotten per quiet hour.
pub async fn backoff_schedule_and_decay(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let key = LimitKey::subject_backoff(Some("contract"), "backoff-user");
    let limit = |jitter| [Limit::backoff(key.clone(), Backoff::default(), jitter)];
    let waited = |secs| Admission::Limited {
        limit: LimitKind::Backoff,
        retry_after: Duration::from_secs(secs),
        index: 0,
    };
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&limit(0), clock.now()).await?,
            Admission::Allowed
        );
    }
    assert_eq!(store.throttle(&limit(0), clock.now()).await?, waited(60));
    clock.advance(Duration::from_secs(59));
    assert_eq!(store.throttle(&limit(0), clock.now()).await?, waited(1));
    clock.advance(Duration::from_secs(1));
    // The fourth send starts a 2-minute wait; full jitter (20%) makes the fifth's 4 minutes
    // 4 min 48 s.
    assert_eq!(
        store.throttle(&limit(0), clock.now()).await?,
        Admission::Allowed
    );
    assert_eq!(store.throttle(&limit(0), clock.now()).await?, waited(120));
    clock.advance(Duration::from_secs(120));
    assert_eq!(
        store.throttle(&limit(1000), clock.now()).await?,
        Admission::Allowed
    );
    assert_eq!(store.throttle(&limit(0), clock.now()).await?, waited(288));
    // Two quiet hours (and the wait) forget two of five steps: the next send is the fourth
    // of its streak again, starting a 2-minute wait.
    clock.advance(Duration::from_secs(288 + 7200));
    assert_eq!(
        store.throttle(&limit(0), clock.now()).await?,
        Admission::Allowed
    );
    assert_eq!(store.throttle(&limit(0), clock.now()).await?, waited(120));
    // Another user's streak is its own.
    let other = [Limit::backoff(
        LimitKey::subject_backoff(Some("contract"), "backoff-user-2"),
        Backoff::default(),
        0,
    )];
    assert_eq!(
        store.throttle(&other, clock.now()).await?,
        Admission::Allowed
    );
    Ok(())
}

/// How many of 64 concurrent throttles of `limits` at `now` are allowed.
async fn allowed_of_64(
    store: &Arc<dyn OtpStore>,
    limits: &[Limit],
    now: phone_otp::Timestamp,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, limits) = (Arc::clone(store), limits.to_vec());
        tasks.push(tokio::spawn(
            async move { store.throttle(&limits, now).await },
        ));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await?? == Admission::Allowed);
    }
    Ok(allowed)
}

/// 64 concurrent sends against three free sends: exactly three pass, and the refused ones
/// charge nothing else.
pub async fn backoff_holds_under_64_concurrent_sends(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let backoff = Limit::backoff(LimitKey::destination_backoff([9; 8]), Backoff::default(), 0);
    let rate = Limit::new(
        LimitKey::tenant("backoff-contract"),
        Quota::per_hour(NonZeroU32::new(4).unwrap()),
    );
    let limits = [rate.clone(), backoff];
    assert_eq!(allowed_of_64(&store, &limits, clock.now()).await?, 3);
    // The tenant was charged three times, not 64: one more fits, then none.
    let tenant_only = [rate.clone()];
    assert_eq!(
        store.throttle(&tenant_only, clock.now()).await?,
        Admission::Allowed
    );
    assert!(matches!(
        store.throttle(&tenant_only, clock.now()).await?,
        Admission::Limited {
            limit: LimitKind::Tenant,
            ..
        }
    ));
    Ok(())
}

/// A daily budget: spent up to its cap exactly, refused beyond it until the day ends, and
/// a refusal spends nothing.
pub async fn budget_refuses_at_the_boundary(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let (day, resets_at_millis) = phone_otp::day_of(clock.now());
    let spend = |amount| {
        [Limit {
            key: LimitKey::budget("ten:contract", "money", day),
            rule: Rule::Budget {
                cap: 10,
                amount,
                resets_at_millis,
            },
        }]
    };
    let refused = Admission::Limited {
        limit: LimitKind::Budget,
        retry_after: Duration::from_millis(resets_at_millis - clock.now().as_millis()),
        index: 0,
    };
    for _ in 0..3 {
        assert_eq!(
            store.throttle(&spend(3), clock.now()).await?,
            Admission::Allowed
        );
    }
    assert_eq!(store.throttle(&spend(3), clock.now()).await?, refused);
    assert_eq!(store.throttle(&spend(2), clock.now()).await?, refused);
    // Exactly the cap is allowed; then nothing.
    assert_eq!(
        store.throttle(&spend(1), clock.now()).await?,
        Admission::Allowed
    );
    assert!(matches!(
        store.throttle(&spend(1), clock.now()).await?,
        Admission::Limited {
            limit: LimitKind::Budget,
            ..
        }
    ));
    // The next day has its own key and a full budget.
    let (tomorrow, resets) = (day + 1, resets_at_millis + 86_400_000);
    clock.advance(Duration::from_millis(
        resets_at_millis - clock.now().as_millis(),
    ));
    let fresh = [Limit {
        key: LimitKey::budget("ten:contract", "money", tomorrow),
        rule: Rule::Budget {
            cap: 10,
            amount: 10,
            resets_at_millis: resets,
        },
    }];
    assert_eq!(
        store.throttle(&fresh, clock.now()).await?,
        Admission::Allowed
    );
    Ok(())
}

/// A budget key reads back what was charged to it today, a refusal adds nothing, and a
/// read creates no state (a key read first is still whole).
pub async fn budget_use_reads_what_was_charged(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let (day, resets_at_millis) = phone_otp::day_of(clock.now());
    let key = |scope: &str| LimitKey::budget(scope, "msg", day);
    let spend = |scope: &str, amount| {
        [Limit {
            key: key(scope),
            rule: Rule::Budget {
                cap: 10,
                amount,
                resets_at_millis,
            },
        }]
    };
    let (spent, untouched) = (key("ten:read"), key("ten:unread"));
    assert_eq!(
        store
            .budget_used(&[spent.clone(), untouched.clone()], clock.now())
            .await?,
        vec![0, 0]
    );
    store.throttle(&spend("ten:read", 4), clock.now()).await?;
    store.throttle(&spend("ten:read", 3), clock.now()).await?;
    assert!(matches!(
        store.throttle(&spend("ten:read", 4), clock.now()).await?,
        Admission::Limited { .. }
    ));
    assert_eq!(
        store
            .budget_used(&[spent.clone(), untouched.clone()], clock.now())
            .await?,
        vec![7, 0]
    );
    assert_eq!(
        store
            .throttle(&spend("ten:unread", 10), clock.now())
            .await?,
        Admission::Allowed,
        "a read left the unread key whole"
    );
    assert_eq!(
        store.budget_used(&[], clock.now()).await?,
        Vec::<u64>::new()
    );
    Ok(())
}

/// 64 concurrent sends against a budget of ten: exactly ten pass, never one more.
pub async fn budget_holds_under_64_concurrent_sends(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let (day, resets_at_millis) = phone_otp::day_of(clock.now());
    let limit = Limit {
        key: LimitKey::budget("total", "msg", day),
        rule: Rule::Budget {
            cap: 10,
            amount: 1,
            resets_at_millis,
        },
    };
    assert_eq!(allowed_of_64(&store, &[limit], clock.now()).await?, 10);
    Ok(())
}

/// The conversion guard's rule: a key's allowance is free, then every send must be paid
/// for by verifications; a key that spent its allowance is held (one probe once its window
/// is empty) until a full allowance converts at the floor; the window slides.
pub async fn conversion_guard_trips_and_recovers(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let hour = 3_600_000;
    let key = LimitKey::prefix_conversion("8190111");
    let send = |key: &LimitKey| {
        [
            Limit::new(
                LimitKey::global(),
                Quota::per_hour(NonZeroU32::new(1_000).unwrap()),
            ),
            Limit {
                key: key.clone(),
                rule: Rule::Conversion(ConversionRule {
                    bucket_millis: hour,
                    allowance: 20,
                    floor_permille: 300,
                    hold_millis: 24 * hour,
                }),
            },
        ]
    };
    for _ in 0..20 {
        assert_eq!(
            store.throttle(&send(&key), clock.now()).await?,
            Admission::Allowed
        );
    }
    let into = clock.now().as_millis() % hour;
    let tripped = Admission::Limited {
        limit: LimitKind::Conversion,
        retry_after: Duration::from_millis(hour - into),
        index: 1,
    };
    assert_eq!(store.throttle(&send(&key), clock.now()).await?, tripped);
    let counts = store.conversion_counts(&key, hour, clock.now()).await?;
    assert_eq!(
        (counts.sends, counts.verified),
        (20.0, 0.0),
        "refusals count nothing"
    );
    // Held: five verified of twenty do not pay for a 21st at 30%; six do, and release it.
    for _ in 0..5 {
        store
            .credit_conversions(&[(key.clone(), hour)], clock.now())
            .await?;
    }
    assert_eq!(store.throttle(&send(&key), clock.now()).await?, tripped);
    store
        .credit_conversions(&[(key.clone(), hour)], clock.now())
        .await?;
    assert_eq!(
        store.throttle(&send(&key), clock.now()).await?,
        Admission::Allowed
    );
    let counts = store.conversion_counts(&key, hour, clock.now()).await?;
    assert_eq!((counts.sends, counts.verified), (21.0, 6.0));
    // Still held (6 of 21 is under 30%): a seventh verification pays for the 22nd, and 7
    // of 22 at the floor with none free releases the key.
    store
        .credit_conversions(&[(key.clone(), hour)], clock.now())
        .await?;
    assert_eq!(
        store.throttle(&send(&key), clock.now()).await?,
        Admission::Allowed
    );
    // Released: the allowance applies again as the window slides.
    clock.advance(Duration::from_millis(hour + hour / 2));
    assert_eq!(
        store.throttle(&send(&key), clock.now()).await?,
        Admission::Allowed
    );

    // A key that never converts stays held after its counts have left the window: one
    // probe, then nothing.
    let pumped = LimitKey::prefix_conversion("8190222");
    for _ in 0..20 {
        assert_eq!(
            store.throttle(&send(&pumped), clock.now()).await?,
            Admission::Allowed
        );
    }
    clock.advance(Duration::from_millis(2 * hour + 1));
    let counts = store.conversion_counts(&pumped, hour, clock.now()).await?;
    assert_eq!((counts.sends, counts.verified), (0.0, 0.0));
    assert_eq!(
        store.throttle(&send(&pumped), clock.now()).await?,
        Admission::Allowed,
        "the probe"
    );
    assert!(matches!(
        store.throttle(&send(&pumped), clock.now()).await?,
        Admission::Limited { index: 1, .. }
    ));
    Ok(())
}

fn totp_account(byte: u8) -> phone_otp::AccountId {
    phone_otp::AccountId([byte, 0x70, 0x74, 1, 2, 3, 4, 5])
}

/// A factor with two recovery-code digests, `[1; 32]` and `[2; 32]`.
fn factor_with_two_codes(secret: Vec<u8>, confirmed: bool, last_step: Option<u64>) -> TotpFactor {
    TotpFactor {
        sealed_secret: secret,
        confirmed,
        last_step,
        recovery: vec![[1; 32], [2; 32]],
    }
}

/// Stores `factor` where `account` has none, and checks it was written.
async fn put_new(
    store: &Arc<dyn OtpStore>,
    account: phone_otp::AccountId,
    factor: TotpFactor,
) -> TestResult {
    assert!(
        store
            .put_totp_factor(account, factor, FactorWrite::IfAbsent)
            .await?
    );
    Ok(())
}

/// A TOTP factor round-trips, and a time step is accepted once: of 64 concurrent
/// submissions of one step exactly one is accepted; older steps are replays.
pub async fn totp_steps_are_accepted_once(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let cap = FailureCap::default();
    let account = totp_account(1);
    assert_eq!(store.totp_factor(account).await?, None);
    assert_eq!(
        store
            .accept_totp_step(account, 100, cap, clock.now())
            .await?,
        StepDecision::NotEnrolled
    );
    let factor = factor_with_two_codes(vec![1, 2, 3], true, None);
    put_new(&store, account, factor.clone()).await?;
    let mut read = store.totp_factor(account).await?.unwrap_or_default();
    read.recovery.sort_unstable();
    assert_eq!(read, factor);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, now) = (Arc::clone(&store), clock.now());
        tasks.push(tokio::spawn(async move {
            store.accept_totp_step(account, 100, cap, now).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await?? {
            StepDecision::Accepted => accepted += 1,
            other => assert_eq!(other, StepDecision::Replayed),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(
        store
            .accept_totp_step(account, 99, cap, clock.now())
            .await?,
        StepDecision::Replayed
    );
    assert_eq!(
        store
            .accept_totp_step(account, 101, cap, clock.now())
            .await?,
        StepDecision::Accepted
    );
    assert_eq!(
        store.totp_factor(account).await?.and_then(|f| f.last_step),
        Some(101)
    );
    store.remove_totp_factor(account).await?;
    assert_eq!(store.totp_factor(account).await?, None);
    Ok(())
}

/// Recovery codes are single use, also under 64 concurrent uses, and TOTP failures count
/// against the account's one failure cap (the cap SMS codes share).
pub async fn totp_recovery_codes_and_the_shared_failure_cap(
    store: Arc<dyn OtpStore>,
) -> TestResult {
    let clock = ManualClock::new();
    let cap = FailureCap::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(3600));
    let account = totp_account(2);
    put_new(
        &store,
        account,
        factor_with_two_codes(vec![9], true, Some(5)),
    )
    .await?;
    let now = clock.now();
    assert_eq!(
        store
            .use_recovery_code(account, &[[1; 32]], cap, now)
            .await?,
        StepDecision::Accepted
    );
    assert_eq!(
        store
            .use_recovery_code(account, &[[1; 32]], cap, now)
            .await?,
        StepDecision::Replayed
    );
    assert_eq!(
        store
            .use_recovery_code(account, &[[3; 32]], cap, now)
            .await?,
        StepDecision::Replayed
    );
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.use_recovery_code(account, &[[2; 32]], cap, now).await
        }));
    }
    let mut used = 0;
    for task in tasks {
        used += usize::from(task.await?? == StepDecision::Accepted);
    }
    assert_eq!(used, 1);
    // Three failures lock the account for every factor, and the count is the one SMS uses.
    for expected in 1..=3 {
        assert_eq!(store.count_failure(account, cap, now).await?, expected);
    }
    assert_eq!(store.failures(account, now).await?, 3);
    assert_eq!(
        store.accept_totp_step(account, 6, cap, now).await?,
        StepDecision::AccountLocked
    );
    // Forgotten after the hour (at the next whole second); an accepted step clears it.
    clock.advance(Duration::from_secs(3601));
    assert_eq!(
        store.accept_totp_step(account, 6, cap, clock.now()).await?,
        StepDecision::Accepted
    );
    store.count_failure(account, cap, clock.now()).await?;
    assert_eq!(
        store.accept_totp_step(account, 7, cap, clock.now()).await?,
        StepDecision::Accepted
    );
    assert_eq!(store.failures(account, clock.now()).await?, 0);
    Ok(())
}

/// Confirming and resealing change only the confirmation and the secret, and only while
/// the factor still holds the secret the caller opened: a step accepted or a recovery code
/// used meanwhile stays so, and a re-enrolled or removed factor is left alone.
pub async fn totp_factor_updates_are_compare_and_set(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let cap = FailureCap::default();
    let account = totp_account(3);
    put_new(
        &store,
        account,
        factor_with_two_codes(vec![1, 1], false, None),
    )
    .await?;
    // Meanwhile: a step accepted and a recovery code used.
    let now = clock.now();
    assert_eq!(
        store.accept_totp_step(account, 50, cap, now).await?,
        StepDecision::Accepted
    );
    assert_eq!(
        store
            .use_recovery_code(account, &[[1; 32]], cap, now)
            .await?,
        StepDecision::Accepted
    );
    // An update with a secret the factor no longer holds changes nothing.
    assert!(
        !store
            .update_totp_factor(account, &[9, 9], true, Some(vec![3]))
            .await?
    );
    let read = store.totp_factor(account).await?.unwrap_or_default();
    assert_eq!((read.confirmed, read.sealed_secret), (false, vec![1, 1]));
    // The matching update confirms and reseals, and nothing else.
    assert!(
        store
            .update_totp_factor(account, &[1, 1], true, Some(vec![2, 2, 2]))
            .await?
    );
    let read = store.totp_factor(account).await?.unwrap_or_default();
    assert_eq!(
        read,
        TotpFactor {
            sealed_secret: vec![2, 2, 2],
            confirmed: true,
            last_step: Some(50),
            recovery: vec![[2; 32]],
        }
    );
    assert_eq!(
        store
            .use_recovery_code(account, &[[1; 32]], cap, now)
            .await?,
        StepDecision::Replayed
    );
    assert_eq!(
        store.accept_totp_step(account, 50, cap, now).await?,
        StepDecision::Replayed
    );
    // Confirming alone leaves the secret; a removed factor is not brought back.
    assert!(
        store
            .update_totp_factor(account, &[2, 2, 2], true, None)
            .await?
    );
    assert_eq!(
        store.totp_factor(account).await?.map(|f| f.sealed_secret),
        Some(vec![2, 2, 2])
    );
    store.remove_totp_factor(account).await?;
    assert!(
        !store
            .update_totp_factor(account, &[2, 2, 2], true, None)
            .await?
    );
    assert_eq!(store.totp_factor(account).await?, None);
    Ok(())
}

/// A factor is written only where its condition allows, in one step with the check: a
/// move (`IfAbsent`) never overwrites, of 64 concurrent moves exactly one lands, and an
/// enrollment (`UnlessConfirmed`) replaces a pending factor but never a confirmed one. A
/// recovery code offered under several digests (one per key of a rotated ring) is spent
/// once, one digest at a time. A disable's marker (`Replace`) is there for writes and
/// absent for checks.
pub async fn totp_factor_writes_keep_their_condition(store: Arc<dyn OtpStore>) -> TestResult {
    let clock = ManualClock::new();
    let cap = FailureCap::default();
    let account = totp_account(4);
    let factor =
        |secret: u8, confirmed: bool| factor_with_two_codes(vec![secret; 3], confirmed, None);
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let (store, factor) = (Arc::clone(&store), factor(i, true));
        tasks.push(tokio::spawn(async move {
            store
                .put_totp_factor(account, factor, FactorWrite::IfAbsent)
                .await
                .map(|written| written.then_some(i))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await??);
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let held = |f: Option<TotpFactor>| f.map(|f| (f.sealed_secret, f.confirmed));
    assert_eq!(
        held(store.totp_factor(account).await?),
        Some((vec![winners[0]; 3], true))
    );
    // A confirmed factor is kept by both conditions.
    for when in [FactorWrite::IfAbsent, FactorWrite::UnlessConfirmed] {
        assert!(
            !store
                .put_totp_factor(account, factor(200, false), when)
                .await?
        );
    }
    assert_eq!(
        held(store.totp_factor(account).await?),
        Some((vec![winners[0]; 3], true))
    );
    // A pending one is replaced by an enrollment, whole, but not by a move.
    let other = totp_account(5);
    assert!(
        store
            .put_totp_factor(other, factor(1, false), FactorWrite::UnlessConfirmed)
            .await?
    );
    assert!(
        !store
            .put_totp_factor(other, factor(2, false), FactorWrite::IfAbsent)
            .await?
    );
    let replacement = TotpFactor {
        recovery: vec![[3; 32]],
        ..factor(3, false)
    };
    assert!(
        store
            .put_totp_factor(other, replacement.clone(), FactorWrite::UnlessConfirmed)
            .await?
    );
    assert_eq!(store.totp_factor(other).await?, Some(replacement));

    // Several digests for one code: the first held is spent, one per use.
    let now = clock.now();
    let both = [[9; 32], [1; 32], [2; 32]];
    for _ in 0..2 {
        assert_eq!(
            store.use_recovery_code(account, &both, cap, now).await?,
            StepDecision::Accepted
        );
    }
    assert_eq!(
        store.use_recovery_code(account, &both, cap, now).await?,
        StepDecision::Replayed
    );
    assert_eq!(
        store.totp_factor(account).await?.map(|f| f.recovery),
        Some(vec![])
    );

    // A disable's marker replaces even a confirmed factor, accepts no step and no recovery
    // code, keeps a move out, and gives way to a new enrollment.
    assert!(
        store
            .put_totp_factor(account, TotpFactor::disabled(), FactorWrite::Replace)
            .await?
    );
    let marker = store.totp_factor(account).await?.unwrap_or_default();
    assert!(marker.is_disabled() && !marker.confirmed);
    assert_eq!(
        store.accept_totp_step(account, 500, cap, now).await?,
        StepDecision::NotEnrolled
    );
    assert_eq!(
        store.use_recovery_code(account, &both, cap, now).await?,
        StepDecision::NotEnrolled
    );
    assert!(
        !store
            .put_totp_factor(account, factor(7, true), FactorWrite::IfAbsent)
            .await?
    );
    assert!(
        store
            .put_totp_factor(account, factor(8, false), FactorWrite::UnlessConfirmed)
            .await?
    );
    assert_eq!(
        held(store.totp_factor(account).await?),
        Some((vec![8; 3], false))
    );
    Ok(())
}

/// One test per contract check for a backend: `store` is an async fn giving a fresh
/// store, or `None` when the backend is not available (it then says so loudly).
macro_rules! contract_tests {
    ($store:path) => {
        $crate::store_contract::contract_tests!(@each $store;
            every_verify_outcome,
            single_use_under_64_concurrent_checks,
            resend_codes_and_pending_state,
            pending_keeps_what_a_resend_needs,
            failures_are_capped_per_account,
            failure_cap_holds_under_concurrent_wrong_codes,
            a_locked_account_charges_no_limit,
            an_id_with_another_account_finds_nothing,
            a_challenge_answers_only_its_tenant,
            a_failed_relay_is_released_for_one_retry,
            throttle_decisions_and_retry_after,
            throttle_charges_all_limits_or_none,
            a_refused_send_leaves_no_charge_of_any_kind,
            limits_hold_under_concurrent_starts,
            backoff_schedule_and_decay,
            backoff_holds_under_64_concurrent_sends,
            budget_refuses_at_the_boundary,
            budget_holds_under_64_concurrent_sends,
            budget_use_reads_what_was_charged,
            conversion_guard_trips_and_recovers,
            totp_steps_are_accepted_once,
            totp_recovery_codes_and_the_shared_failure_cap,
            totp_factor_updates_are_compare_and_set,
            totp_factor_writes_keep_their_condition,
        );
    };
    (@each $store:path; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() -> $crate::support::TestResult {
            let Some(store) = $store().await else {
                return Ok(());
            };
            $crate::store_contract::$check(store).await
        }
    )*};
}
pub(crate) use contract_tests;

fn memory() -> Arc<dyn OtpStore> {
    Arc::new(MemoryStore::new())
}

async fn memory_store() -> Option<Arc<dyn OtpStore>> {
    Some(memory())
}

mod memory {
    super::contract_tests!(super::memory_store);
}

/// Failure counts are kept only for accounts with failures, and swept once forgotten.
#[tokio::test]
async fn memory_store_sweeps_forgotten_failure_counts() -> TestResult {
    let store = MemoryStore::new();
    let h = Harness::with_store(Arc::new(store.clone()));
    for i in 0..5 {
        let (id, code) = h.start(&jp_mobile_n(i)).await;
        h.otp.verify(&id, &wrong(&code)).await?;
    }
    let (id, code) = h.start(&jp_mobile_n(9)).await;
    h.otp.verify(&id, &code).await?;
    assert_eq!(store.accounts_with_failures(), 5);
    h.clock.advance(Duration::from_secs(86_400));
    store.sweep(h.clock.now());
    assert_eq!(store.accounts_with_failures(), 0);
    Ok(())
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
