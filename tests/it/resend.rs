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
