use std::time::Duration;

use phone_otp::{
    Channel, LimitKind, NotPending, ProviderErrorKind, Purpose, ResendError, StartError,
    StartRequest, VerifyOutcome,
};
use secrecy::ExposeSecret;

use crate::support::{Harness, TestResult, jp_mobile, last_code, wrong};

async fn resend_and_read(h: &Harness, id: &phone_otp::ChallengeId) -> String {
    h.otp.resend(id).await.expect("resend succeeds");
    last_code(&h.stub, &jp_mobile())
}

#[tokio::test]
async fn resend_keeps_the_newest_three_codes_valid() -> TestResult {
    let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
    let (id, first) = h.start(&jp_mobile()).await;
    let second = resend_and_read(&h, &id).await;
    let third = resend_and_read(&h, &id).await;
    let fourth = resend_and_read(&h, &id).await;
    let codes = [&first, &second, &third, &fourth];
    // The first code dropped out (unless it happens to equal a newer one).
    if !codes[1..].contains(&&first) {
        assert_eq!(
            h.otp.verify(&id, &first).await?,
            VerifyOutcome::Mismatch { attempts_left: 4 }
        );
    }
    // Any of the newest three verifies (a late SMS must not lock the user out).
    assert!(h.otp.verify(&id, &second).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn each_of_the_last_three_codes_verifies() -> TestResult {
    for pick in 0..3 {
        let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
        let (id, first) = h.start(&jp_mobile()).await;
        let second = resend_and_read(&h, &id).await;
        let third = resend_and_read(&h, &id).await;
        let code = [&first, &second, &third][pick];
        assert!(h.otp.verify(&id, code).await?.is_verified(), "code #{pick}");
    }
    Ok(())
}

#[tokio::test]
async fn resend_shares_the_attempt_budget() -> TestResult {
    let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
    let (id, first) = h.start(&jp_mobile()).await;
    for _ in 0..3 {
        h.otp.verify(&id, &wrong(&first)).await?;
    }
    let second = resend_and_read(&h, &id).await;
    let bad = if wrong(&first) == second {
        wrong(&second)
    } else {
        wrong(&first)
    };
    assert_eq!(
        h.otp.verify(&id, &bad).await?,
        VerifyOutcome::Mismatch { attempts_left: 1 }
    );
    Ok(())
}

#[tokio::test]
async fn resend_waits_for_the_cooldown() -> TestResult {
    let h = Harness::new();
    let (id, _) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(10));
    match h.otp.resend(&id).await {
        Err(ResendError::Limited { limit, retry_after }) => {
            assert_eq!(limit, LimitKind::ResendCooldown);
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("expected a cooldown refusal, got {other:?}"),
    }
    h.clock.advance(Duration::from_secs(20));
    h.otp.resend(&id).await?;
    Ok(())
}

#[tokio::test]
async fn resend_of_a_finished_challenge_is_refused() -> TestResult {
    let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
    let (id, code) = h.start(&jp_mobile()).await;
    h.otp.verify(&id, &code).await?;
    assert!(matches!(
        h.otp.resend(&id).await,
        Err(ResendError::NotPending(NotPending::AlreadyUsed))
    ));
    let (id, _) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(301));
    assert!(matches!(
        h.otp.resend(&id).await,
        Err(ResendError::NotPending(NotPending::Expired))
    ));
    Ok(())
}

#[tokio::test]
async fn resend_via_voice_delivers_a_spoken_code() -> TestResult {
    let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
    let (id, _) = h.start(&jp_mobile()).await;
    let started = h.otp.resend_via(&id, Channel::Voice).await?;
    assert_eq!(started.channel, Channel::Voice);
    let call = h.stub.last_message_to(&jp_mobile()).unwrap();
    assert_eq!(call.channel(), Channel::Voice);
    let code = call.code().unwrap().expose_secret().to_owned();
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}

#[tokio::test]
async fn failed_delivery_withdraws_the_challenge() -> TestResult {
    let store = phone_otp::MemoryStore::new();
    let h = Harness::with_store(std::sync::Arc::new(store.clone()));
    h.stub.fail_next(ProviderErrorKind::Unavailable);
    match h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await
    {
        Err(StartError::Delivery(error)) => {
            assert_eq!(error.kind(), ProviderErrorKind::Unavailable);
            assert_eq!(error.to_string(), "stub: provider unavailable");
        }
        other => panic!("expected a delivery error, got {other:?}"),
    }
    // The challenge was inserted before the send and withdrawn after it failed.
    assert_eq!(store.len(), 0);
    assert_eq!(h.stub.attempts(), 1);
    assert!(h.stub.delivered().is_empty());
    Ok(())
}

/// A provider that was reached and did not answer in time may still deliver: the
/// challenge is kept (its code would work if it arrives) and the caller gets its id with
/// the outcome unknown, instead of an error that invites a second start and a second code.
#[tokio::test]
async fn a_delivery_that_may_have_happened_keeps_the_challenge() -> TestResult {
    let store = phone_otp::MemoryStore::new();
    let h = Harness::with_store(std::sync::Arc::new(store.clone()));
    h.stub.fail_next(ProviderErrorKind::Timeout);
    let id = match h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await
    {
        Err(StartError::DeliveryUnknown {
            challenge_id,
            error,
            ..
        }) => {
            assert!(error.may_have_delivered());
            challenge_id
        }
        other => panic!("expected an unknown delivery, got {other:?}"),
    };
    assert_eq!(store.len(), 1, "the challenge is kept");
    // It is a live challenge: a wrong code is a mismatch (not "not found"), and a resend
    // delivers a code that verifies.
    assert!(matches!(
        h.otp.verify(&id, "000000").await?,
        phone_otp::VerifyOutcome::Mismatch { .. }
    ));
    h.clock.advance(std::time::Duration::from_secs(120));
    h.otp.resend(&id).await?;
    let code = h
        .stub
        .last_message_to(&jp_mobile())
        .unwrap()
        .code()
        .unwrap()
        .expose_secret()
        .to_owned();
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    Ok(())
}

fn quota(count: u32) -> Option<phone_otp::Quota> {
    Some(phone_otp::Quota::per_hour(
        std::num::NonZeroU32::new(count).unwrap(),
    ))
}

/// A resend is charged to every limit a start is: the requesting client's IP and the
/// challenge's tenant too (the issue saw 409 SMS from one IP against a quota of 30).
#[tokio::test]
async fn resends_are_charged_to_the_client_ip_and_tenant() -> TestResult {
    use phone_otp::{Limits, ResendRequest};
    let ip: std::net::IpAddr = "198.51.100.20".parse()?;
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: quota(2),
            ..Limits::danger_none()
        })
    });
    let (id, _) = h
        .start_request(StartRequest::sms(jp_mobile(), Purpose::SignIn).client_ip(ip))
        .await;
    h.otp
        .resend_with(ResendRequest::new(id).client_ip(ip))
        .await?;
    match h
        .otp
        .resend_with(ResendRequest::new(id).client_ip(ip))
        .await
    {
        Err(ResendError::Limited { limit, .. }) => assert_eq!(limit, LimitKind::ClientIp),
        other => panic!("expected the IP limit, got {other:?}"),
    }
    // A resend from another IP is charged to that IP.
    h.otp
        .resend_with(ResendRequest::new(id).client_ip("192.0.2.1".parse()?))
        .await?;
    assert_eq!(h.stub.attempts(), 3);

    let h = Harness::with(|b| {
        b.limits(Limits {
            per_tenant: quota(1),
            ..Limits::danger_none()
        })
    });
    let (id, _) = h
        .start_request(StartRequest::sms(jp_mobile(), Purpose::SignIn).tenant("acme"))
        .await;
    match h
        .otp
        .resend_with(ResendRequest::new(id).tenant("acme"))
        .await
    {
        Err(ResendError::Limited { limit, .. }) => assert_eq!(limit, LimitKind::Tenant),
        other => panic!("expected the tenant limit, got {other:?}"),
    }
    assert_eq!(h.stub.attempts(), 1);
    Ok(())
}

/// A challenge started with a client IP cannot be resent without one: leaving it out
/// would dodge the per-IP limit.
#[tokio::test]
async fn a_resend_without_the_client_ip_is_refused_before_anything_is_spent() -> TestResult {
    use phone_otp::{Limits, ResendRequest};
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: quota(2),
            ..Limits::danger_none()
        })
    });
    let ip: std::net::IpAddr = "198.51.100.21".parse()?;
    let (id, _) = h
        .start_request(StartRequest::sms(jp_mobile(), Purpose::SignIn).client_ip(ip))
        .await;
    let error = h.otp.resend(&id).await.expect_err("refused");
    assert!(matches!(error, ResendError::InvalidRequest(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid resend request: the challenge was started with a client IP: resend needs the requesting client's IP"
    );
    assert_eq!(h.stub.attempts(), 1, "nothing was sent");
    // Nothing was spent either: the IP's second send is still there.
    h.otp
        .resend_with(ResendRequest::new(id).client_ip(ip))
        .await?;
    Ok(())
}

/// Transaction binding does not depend on the caller picking the right method: a plain
/// resend of a context-bound challenge is refused (it used to yield a code that verified
/// with no context at all).
#[tokio::test]
async fn a_context_bound_challenge_cannot_be_resent_without_its_context() -> TestResult {
    let h = Harness::with(|b| b.limits(phone_otp::Limits::danger_none()));
    let payment = b"amount=120.00 EUR;payee=ACME".to_vec();
    let (id, _) = h
        .start_request(
            StartRequest::sms(jp_mobile(), Purpose::TransactionApproval).context(payment.clone()),
        )
        .await;
    for refused in [
        h.otp.resend(&id).await,
        h.otp.resend_via(&id, Channel::Voice).await,
    ] {
        match refused {
            Err(ResendError::InvalidRequest(reason)) => assert_eq!(
                reason,
                "the challenge is bound to a context: resend with the same context"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(h.stub.attempts(), 1, "nothing was sent");

    h.otp.resend_with_context(&id, &payment).await?;
    let code = last_code(&h.stub, &jp_mobile());
    assert!(matches!(
        h.otp.verify(&id, &code).await?,
        VerifyOutcome::Mismatch { .. }
    ));
    assert!(
        h.otp
            .verify_with_context(&id, &code, &payment)
            .await?
            .is_verified()
    );

    // And a context cannot be slipped into a challenge that has none.
    let (plain, _) = h.start(&jp_mobile()).await;
    assert!(matches!(
        h.otp.resend_with_context(&plain, b"x").await,
        Err(ResendError::InvalidRequest(_))
    ));
    Ok(())
}
