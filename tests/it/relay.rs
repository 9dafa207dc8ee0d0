//! `OtpService::relay`: a code generated elsewhere, delivered under the same policy,
//! limits and routing as `start`.

use std::time::Duration;

use async_trait::async_trait;
use phone_otp::{
    AttemptOutcome, Channel, LimitKind, Limits, Message, PhoneNumber, PhoneProvider, PolicyRefusal,
    ProviderError, ProviderErrorKind, Purpose, Receipt, RelayError, RelayRequest, RelayTextPolicy,
    Router, StubProvider, TextRefusal, Timestamp,
};
use secrecy::ExposeSecret;

use crate::support::{Harness, TestResult, jp_mobile, jp_mobile_n};

fn relay(to: PhoneNumber, code: &str) -> RelayRequest {
    RelayRequest::sms(to, code, Purpose::SignIn)
}

#[tokio::test]
async fn relays_the_given_code_through_the_template() -> TestResult {
    let h = Harness::new();
    let relayed = h.otp.relay(relay(jp_mobile(), "48213")).await?;
    assert_eq!(relayed.provider, "stub");
    assert_eq!(relayed.masked_destination, "+8190****5678");
    assert_eq!(relayed.channel, Channel::Sms);
    assert!(relayed.attempts.is_empty());
    let sent = h.stub.delivered();
    assert_eq!(sent.len(), 1);
    let text = sent[0].text().expose_secret().to_owned();
    assert!(
        text.contains("48213"),
        "the template carries the relayed code"
    );
    assert_eq!(relayed.segments.map(|s| s.segments), Some(1));
    // Default validity: the service's lifetime.
    assert_eq!(sent[0].validity(), Some(h.otp.lifetime()));
    assert!(!sent[0].reference().is_empty());
    Ok(())
}

#[tokio::test]
async fn the_callers_text_is_sent_as_is_and_must_hold_the_code() -> TestResult {
    let h = Harness::new();
    h.otp
        .relay(relay(jp_mobile(), "11111").text("(HOOK)Your code is 11111"))
        .await?;
    assert_eq!(
        h.stub.delivered()[0].text().expose_secret(),
        "(HOOK)Your code is 11111"
    );

    // A voice text may spell the code out.
    h.otp
        .relay(
            RelayRequest::voice(jp_mobile_n(3), "123456", Purpose::SignIn)
                .text("Your code is 1. 2. 3. 4. 5. 6."),
        )
        .await?;

    let other = jp_mobile_n(2);
    let refused = h
        .otp
        .relay(relay(other.clone(), "11111").text("Click http://evil.example to win"))
        .await;
    assert!(matches!(
        refused,
        Err(RelayError::TextRefused(TextRefusal::NoCode))
    ));
    // The phishing texts a hook's caller could send before: a link with the code, the
    // code hidden inside another number, or a word for a code.
    for (code, text, why) in [
        (
            "482913",
            "Your bank account is locked. Click https://evil.example/login to unlock it. 482913",
            Some(TextRefusal::Link),
        ),
        (
            "482913",
            "482913 Locked? evil.example/login",
            Some(TextRefusal::Link),
        ),
        ("11111", "Call +1 800 111112 now", Some(TextRefusal::NoCode)),
        ("Click", "Your bank account is locked. Click here", None),
        ("locked", "Your account is locked", None),
    ] {
        let refused = h.otp.relay(relay(other.clone(), code).text(text)).await;
        match why {
            Some(why) => assert!(
                matches!(refused, Err(RelayError::TextRefused(r)) if r == why),
                "{text}: {refused:?}"
            ),
            None => assert!(
                matches!(refused, Err(RelayError::InvalidRequest(_))),
                "{code}: {refused:?}"
            ),
        }
    }
    let too_long = h
        .otp
        .relay(relay(other.clone(), "11111").text(format!("11111 {}", "x".repeat(700))))
        .await;
    assert!(matches!(too_long, Err(RelayError::InvalidRequest(_))));
    for code in [
        "123",
        "12345678901",
        "1234567890123",
        "12 345",
        "１２３４５",
        "abc123",
    ] {
        let bad = h.otp.relay(relay(other.clone(), code)).await;
        assert!(
            matches!(bad, Err(RelayError::InvalidRequest(_))),
            "{code:?} must be refused"
        );
    }
    // Refused requests spent nothing: the number's cooldown is still free.
    assert_eq!(h.stub.delivered().len(), 2);
    h.otp.relay(relay(other, "1234567890")).await?;
    Ok(())
}

#[tokio::test]
async fn relayed_texts_follow_the_services_text_policy() -> TestResult {
    // Our own domain may be named; with templates only, the caller's text is replaced.
    let ours =
        Harness::with(|b| b.relay_texts(RelayTextPolicy::default().allow_host("acme.example")));
    ours.otp
        .relay(relay(jp_mobile(), "482913").text("482913 is your code. Help: acme.example/help"))
        .await?;
    let refused = ours
        .otp
        .relay(relay(jp_mobile_n(2), "482913").text("482913 is your code. evil.example"))
        .await;
    assert!(matches!(
        refused,
        Err(RelayError::TextRefused(TextRefusal::Link))
    ));
    assert_eq!(ours.stub.delivered().len(), 1);

    let templates = Harness::with(|b| b.relay_texts(RelayTextPolicy::default().templates_only()));
    templates
        .otp
        .relay(relay(jp_mobile(), "482913").text("Locked! evil.example 482913"))
        .await?;
    let sent = templates.stub.delivered()[0]
        .text()
        .expose_secret()
        .to_owned();
    assert!(sent.contains("482913") && !sent.contains("evil"), "{sent}");
    Ok(())
}

#[tokio::test]
async fn an_expired_code_is_never_sent_and_spends_nothing() -> TestResult {
    let h = Harness::new();
    h.clock.set(Timestamp::from_millis(1_000_000));
    let expired = h
        .otp
        .relay(relay(jp_mobile(), "11111").expires_at(Timestamp::from_millis(1_000_000)))
        .await;
    assert!(matches!(expired, Err(RelayError::Expired)));
    assert!(h.stub.delivered().is_empty());

    // Two minutes left: the provider is told, and the cooldown was not spent above.
    h.otp
        .relay(relay(jp_mobile(), "11111").expires_at(Timestamp::from_millis(1_120_000)))
        .await?;
    assert_eq!(
        h.stub.delivered()[0].validity(),
        Some(Duration::from_secs(120))
    );
    Ok(())
}

#[tokio::test]
async fn policy_refuses_premium_numbers_before_any_limit() -> TestResult {
    let h = Harness::new();
    let premium = PhoneNumber::parse("+81990123456")?;
    let refused = h
        .otp
        .relay(relay(premium, "11111").client_ip("203.0.113.9".parse()?))
        .await;
    assert!(matches!(
        refused,
        Err(RelayError::Refused(PolicyRefusal::NumberType { .. }))
    ));
    assert!(h.stub.delivered().is_empty());
    Ok(())
}

#[tokio::test]
async fn relays_are_charged_to_the_same_limits_as_starts() -> TestResult {
    let h = Harness::new();
    // The cooldown of the number is shared with `start`.
    h.start(&jp_mobile()).await;
    let refused = h.otp.relay(relay(jp_mobile(), "11111")).await;
    assert!(matches!(
        refused,
        Err(RelayError::Limited {
            limit: LimitKind::ResendCooldown,
            ..
        })
    ));

    // Ten per subject per hour, across numbers.
    for n in 0..10 {
        h.otp
            .relay(relay(jp_mobile_n(100 + n), "11111").subject("00uyxxSknGtK8022w0g3"))
            .await?;
    }
    let refused = h
        .otp
        .relay(relay(jp_mobile_n(200), "11111").subject("00uyxxSknGtK8022w0g3"))
        .await;
    match refused {
        Err(RelayError::Limited {
            limit: LimitKind::Subject,
            retry_after,
        }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected the subject limit, got {other:?}"),
    }
    assert_eq!(h.stub.delivered().len(), 11);
    Ok(())
}

#[tokio::test]
async fn a_repeated_request_key_sends_one_message_while_the_code_lives() -> TestResult {
    let h = Harness::unlimited();
    h.clock.set(Timestamp::from_millis(0));
    let expires = Timestamp::from_millis(300_000);
    let first = relay(jp_mobile(), "11111")
        .once("uS5871kJThSsU8qlA1LTcg")
        .expires_at(expires);
    h.otp.relay(first.clone()).await?;
    let again = h.otp.relay(first.clone()).await;
    match again {
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            retry_after,
        }) => assert_eq!(retry_after, Duration::from_secs(300)),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // Another tenant's request with the same key is another request.
    h.otp.relay(first.clone().tenant("other-org")).await?;
    assert_eq!(h.stub.delivered().len(), 2);

    // Once the code is dead the key is forgotten (a new code would carry a new key anyway).
    h.clock.advance(Duration::from_secs(300));
    h.otp
        .relay(first.expires_at(Timestamp::from_millis(600_000)))
        .await?;
    assert_eq!(h.stub.delivered().len(), 3);
    Ok(())
}

#[tokio::test]
async fn concurrent_repeats_of_one_request_send_once() -> TestResult {
    let h = Harness::unlimited();
    let request = relay(jp_mobile(), "11111").once("event-1");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (otp, request) = (h.otp.clone(), request.clone());
            tokio::spawn(async move { otp.relay(request).await })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        match task.await? {
            Ok(_) => sent += 1,
            Err(RelayError::Limited {
                limit: LimitKind::Duplicate,
                ..
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(h.stub.delivered().len(), 1);
    Ok(())
}

/// A provider that never answers.
#[derive(Debug)]
struct Hung;

#[async_trait]
impl PhoneProvider for Hung {
    fn name(&self) -> &str {
        "hung"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, _: &Message) -> Result<Receipt, ProviderError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_provider_is_cut_off_at_the_deadline() -> TestResult {
    let h = Harness::with(|builder| builder.provider(Hung));
    let started = tokio::time::Instant::now();
    let result = h
        .otp
        .relay(relay(jp_mobile(), "11111").deadline(Duration::from_millis(2500)))
        .await;
    match result {
        Err(RelayError::Delivery(error)) => assert_eq!(error.kind(), ProviderErrorKind::Timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
    Ok(())
}

#[tokio::test]
async fn failover_is_reported_in_the_attempts() -> TestResult {
    let (first, second) = (StubProvider::named("first"), StubProvider::named("second"));
    first.fail_always(ProviderErrorKind::Unavailable);
    let router = Router::builder()
        .provider(first.clone())
        .provider(second.clone())
        .default_chain(Channel::Sms, &["first", "second"])
        .build()?;
    let h = Harness::with(|builder| builder.provider(router).limits(Limits::danger_none()));
    let relayed = h.otp.relay(relay(jp_mobile(), "11111")).await?;
    assert_eq!(relayed.provider, "second");
    assert_eq!(relayed.attempts.len(), 1);
    assert_eq!(relayed.attempts[0].provider, "first");
    assert_eq!(
        relayed.attempts[0].outcome,
        AttemptOutcome::Failed(ProviderErrorKind::Unavailable)
    );
    assert_eq!(second.delivered().len(), 1);
    Ok(())
}

#[tokio::test]
async fn debug_never_shows_the_code_or_text() {
    let request = relay(jp_mobile(), "48213").text("Your code is 48213");
    let debug = format!("{request:?}");
    assert!(!debug.contains("48213"), "{debug}");
    assert!(!debug.contains("5678") || debug.contains("****"), "{debug}");
}

/// Two services (instances) over one shared store remember the same request key.
#[cfg(feature = "redis")]
pub(crate) async fn duplicates_across_instances(
    store: std::sync::Arc<dyn phone_otp::OtpStore>,
) -> TestResult {
    use phone_otp::OtpService;
    use std::sync::Arc;

    let build = |stub: &StubProvider| {
        OtpService::builder()
            .key_ring(phone_otp::KeyRing::new(crate::support::key(1, 7)))
            .provider(stub.clone())
            .store(Arc::clone(&store))
            .limits(Limits::danger_none())
            .build()
    };
    let (a_stub, b_stub) = (StubProvider::new(), StubProvider::new());
    let (a, b) = (build(&a_stub)?, build(&b_stub)?);
    let request = relay(jp_mobile(), "11111").once("event-across");
    a.relay(request.clone()).await?;
    assert!(matches!(
        b.relay(request).await,
        Err(RelayError::Limited {
            limit: LimitKind::Duplicate,
            ..
        })
    ));
    assert_eq!(a_stub.delivered().len() + b_stub.delivered().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_notice_is_sent_in_the_services_words_under_the_same_limits() -> TestResult {
    use phone_otp::{Locale, Notice};
    let h = Harness::new();
    h.otp
        .relay(
            RelayRequest::notice(jp_mobile(), Channel::Sms, Notice::ChangePassword)
                .locale(Locale::Ja),
        )
        .await?;
    let sent = &h.stub.delivered()[0];
    assert!(sent.code().is_none());
    assert!(
        sent.text()
            .expose_secret()
            .contains("パスワードが変更されました")
    );
    // The number's cooldown applies to notices too.
    let again = h
        .otp
        .relay(RelayRequest::notice(
            jp_mobile(),
            Channel::Sms,
            Notice::PasswordBreach,
        ))
        .await;
    assert!(matches!(
        again,
        Err(RelayError::Limited {
            limit: LimitKind::ResendCooldown,
            ..
        })
    ));
    // A notice carries neither caller text nor a code.
    let texted = RelayRequest::notice(jp_mobile_n(2), Channel::Sms, Notice::BlockedAccount)
        .text("Locked: call +1 900 555 0100");
    assert!(matches!(
        h.otp.relay(texted).await,
        Err(RelayError::InvalidRequest(_))
    ));
    let mut coded = RelayRequest::notice(jp_mobile_n(2), Channel::Sms, Notice::BlockedAccount);
    coded.code = "123456".to_owned().into();
    assert!(matches!(
        h.otp.relay(coded).await,
        Err(RelayError::InvalidRequest(_))
    ));
    assert_eq!(h.stub.delivered().len(), 1);
    Ok(())
}
