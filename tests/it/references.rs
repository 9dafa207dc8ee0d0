//! A caller's send reference reaches the provider as it is (delivery receipts carry it
//! back to the caller's record); without one each send gets its own; a reference a
//! provider cannot carry is refused before anything is sent or spent.

use phone_otp::{
    Channel, Purpose, RelayError, RelayRequest, ResendError, ResendRequest, StartError,
    StartRequest,
};

use crate::support::{Harness, TestResult, jp_mobile};

fn last_reference(h: &Harness) -> String {
    h.stub
        .last_message_to(&jp_mobile())
        .expect("a message went out")
        .reference()
        .to_owned()
}

#[tokio::test]
async fn a_callers_reference_reaches_the_provider() -> TestResult {
    let h = Harness::unlimited();
    let started = h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn).reference("aud-1"))
        .await?;
    assert_eq!(last_reference(&h), "aud-1");
    h.otp
        .resend_with(ResendRequest::new(started.challenge_id).reference("aud-2"))
        .await?;
    assert_eq!(last_reference(&h), "aud-2");
    h.otp
        .relay(RelayRequest::sms(jp_mobile(), "482913", Purpose::SignIn).reference("aud_3.x"))
        .await?;
    assert_eq!(last_reference(&h), "aud_3.x");
    Ok(())
}

#[tokio::test]
async fn without_one_every_send_has_its_own() -> TestResult {
    let h = Harness::unlimited();
    let started = h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await?;
    let first = last_reference(&h);
    h.clock.advance(std::time::Duration::from_secs(61));
    h.otp.resend(&started.challenge_id).await?;
    let second = last_reference(&h);
    h.otp
        .relay(RelayRequest::sms(jp_mobile(), "482913", Purpose::SignIn))
        .await?;
    let third = last_reference(&h);
    assert!(!first.is_empty() && first != second && second != third && first != third);
    Ok(())
}

#[tokio::test]
async fn a_reference_providers_cannot_carry_is_refused_before_sending() -> TestResult {
    let h = Harness::unlimited();
    let long = "a".repeat(65);
    for bad in ["", "two words", "a&b=c", "ü", long.as_str()] {
        let start = h
            .otp
            .start(StartRequest::new(jp_mobile(), Channel::Sms, Purpose::SignIn).reference(bad))
            .await;
        assert!(
            matches!(start, Err(StartError::InvalidRequest(_))),
            "{bad:?}: {start:?}"
        );
        let relay = h
            .otp
            .relay(RelayRequest::sms(jp_mobile(), "482913", Purpose::SignIn).reference(bad))
            .await;
        assert!(
            matches!(relay, Err(RelayError::InvalidRequest(_))),
            "{bad:?}: {relay:?}"
        );
    }
    assert_eq!(h.stub.attempts(), 0, "nothing sent");
    let started = h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await?;
    let resend = h
        .otp
        .resend_with(ResendRequest::new(started.challenge_id).reference("a b"))
        .await;
    assert!(matches!(resend, Err(ResendError::InvalidRequest(_))));
    assert_eq!(h.stub.attempts(), 1, "only the start");
    // 64 characters is the longest taken.
    h.otp
        .relay(RelayRequest::sms(jp_mobile(), "482913", Purpose::SignIn).reference("b".repeat(64)))
        .await?;
    Ok(())
}
