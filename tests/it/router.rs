use std::time::Duration;

use async_trait::async_trait;
use phone_otp::{
    AttemptOutcome, BreakerConfig, BreakerStatus, Channel, DestinationPolicy, Failover, HmacKey,
    KeyRing, ManualClock, Message, NumberType, OtpService, PhoneNumber, PhoneProvider,
    PolicyRefusal, ProviderError, ProviderErrorKind, Purpose, Receipt, Router, RouterBuildError,
    StartError, StartRequest, StubProvider,
};
use secrecy::{ExposeSecret, SecretSlice};

use crate::support::{TestResult, jp_mobile};

fn us_number() -> PhoneNumber {
    PhoneNumber::parse("+14155550123").unwrap()
}

fn sms(to: &PhoneNumber) -> Message {
    Message::sms(to.clone(), "123456 is your code").with_code("123456")
}

/// Japan SMS -> NTT CPaaS, SMSLINK, Twilio; Japan voice -> NTT CPaaS, Twilio; else Twilio.
struct Setup {
    ntt: StubProvider,
    smslink: StubProvider,
    twilio: StubProvider,
    router: Router,
}

fn setup(configure: impl FnOnce(phone_otp::RouterBuilder) -> phone_otp::RouterBuilder) -> Setup {
    let ntt = StubProvider::named("ntt-cpaas");
    let smslink = StubProvider::with_channels("smslink", &[Channel::Sms]);
    let twilio = StubProvider::named("twilio");
    let builder = Router::builder()
        .provider(ntt.clone())
        .provider(smslink.clone())
        .provider(twilio.clone())
        .country("JP", Channel::Sms, &["ntt-cpaas", "smslink", "twilio"])
        .country("JP", Channel::Voice, &["ntt-cpaas", "twilio"])
        .default_chain(Channel::Sms, &["twilio"])
        .default_chain(Channel::Voice, &["twilio"]);
    let router = configure(builder).build().unwrap();
    Setup {
        ntt,
        smslink,
        twilio,
        router,
    }
}

#[tokio::test]
async fn rules_pick_chains_by_country_with_a_default() -> TestResult {
    let s = setup(|b| b);
    assert_eq!(
        s.router.chain_for(&jp_mobile(), Channel::Sms).unwrap(),
        ["ntt-cpaas", "smslink", "twilio"]
    );
    assert_eq!(
        s.router.chain_for(&jp_mobile(), Channel::Voice).unwrap(),
        ["ntt-cpaas", "twilio"]
    );
    assert_eq!(
        s.router.chain_for(&us_number(), Channel::Sms).unwrap(),
        ["twilio"]
    );
    let jp = s.router.send(&sms(&jp_mobile())).await?;
    let us = s.router.send(&sms(&us_number())).await?;
    assert_eq!(
        (jp.provider.as_str(), us.provider.as_str()),
        ("ntt-cpaas", "twilio")
    );
    assert_eq!(
        (s.ntt.attempts(), s.smslink.attempts(), s.twilio.attempts()),
        (1, 0, 1)
    );
    Ok(())
}

#[tokio::test]
async fn longest_prefix_wins_and_prefixes_beat_countries() -> TestResult {
    let s = setup(|b| {
        b.prefix("+81", Channel::Sms, &["twilio"])
            .prefix("+8190", Channel::Sms, &["smslink"])
    });
    assert_eq!(
        s.router.chain_for(&jp_mobile(), Channel::Sms).unwrap(),
        ["smslink"]
    );
    let other_jp = PhoneNumber::parse("+818012345678")?;
    assert_eq!(
        s.router.chain_for(&other_jp, Channel::Sms).unwrap(),
        ["twilio"]
    );
    // Voice has no prefix rule, so the country rule applies.
    assert_eq!(
        s.router.chain_for(&jp_mobile(), Channel::Voice).unwrap(),
        ["ntt-cpaas", "twilio"]
    );
    assert_eq!(s.router.send(&sms(&jp_mobile())).await?.provider, "smslink");
    Ok(())
}

#[tokio::test]
async fn a_destination_without_a_chain_is_a_clear_error() -> TestResult {
    let only_jp = Router::builder()
        .provider(StubProvider::named("ntt-cpaas"))
        .country("JP", Channel::Sms, &["ntt-cpaas"])
        .build()?;
    let error = only_jp.send(&sms(&us_number())).await.unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::NoRoute);
    assert_eq!(
        error.to_string(),
        "router: no provider configured for this destination"
    );
    Ok(())
}

#[test]
fn bad_rules_are_refused_at_build() {
    let stub = || StubProvider::named("a");
    let build = |b: phone_otp::RouterBuilder| b.build().map(|_| ());
    assert_eq!(
        build(
            Router::builder()
                .provider(stub())
                .country("JP", Channel::Sms, &["b"])
        ),
        Err(RouterBuildError::UnknownProvider("b".into()))
    );
    assert_eq!(
        build(Router::builder().provider(stub()).provider(stub())),
        Err(RouterBuildError::DuplicateProvider("a".into()))
    );
    assert_eq!(
        build(
            Router::builder()
                .provider(stub())
                .default_chain(Channel::Sms, &[])
        ),
        Err(RouterBuildError::EmptyChain)
    );
    assert_eq!(
        build(
            Router::builder()
                .provider(stub())
                .prefix("81", Channel::Sms, &["a"])
        ),
        Err(RouterBuildError::InvalidPrefix("81".into()))
    );
    assert_eq!(
        build(
            Router::builder()
                .provider(stub())
                .country("Japan", Channel::Sms, &["a"])
        ),
        Err(RouterBuildError::UnknownRegion("Japan".into()))
    );
}

#[tokio::test]
async fn providers_without_the_channel_are_skipped() -> TestResult {
    let s = setup(|b| b.country("JP", Channel::Voice, &["smslink", "twilio"]));
    let call = Message::voice(jp_mobile(), "1, 2, 3");
    assert_eq!(s.router.send(&call).await?.provider, "twilio");
    assert_eq!(s.smslink.attempts(), 0);
    s.twilio.fail_next(ProviderErrorKind::Unavailable);
    let error = s.router.send(&call).await.unwrap_err();
    assert_eq!(
        error.attempts()[0].outcome,
        AttemptOutcome::SkippedChannelUnsupported
    );
    assert_eq!(
        error.attempts()[1].outcome,
        AttemptOutcome::Failed(ProviderErrorKind::Unavailable)
    );
    Ok(())
}

#[tokio::test]
async fn policy_refuses_before_any_provider_is_called() -> TestResult {
    let s = setup(|b| {
        b.policy(
            DestinationPolicy::default()
                .deny_country(Channel::Sms, "US")
                .unwrap(),
        )
    });
    let cases = [
        (PhoneNumber::parse("+81990123456")?, "premium_rate"),
        (us_number(), "denied country"),
        (PhoneNumber::parse("+815012345678")?, "voip"),
        (PhoneNumber::parse("+81120123456")?, "toll_free"),
    ];
    for (to, why) in cases {
        let error = s.router.send(&sms(&to)).await.unwrap_err();
        assert_eq!(error.kind(), ProviderErrorKind::PolicyRefused, "{why}");
    }
    assert_eq!(
        s.ntt.attempts() + s.smslink.attempts() + s.twilio.attempts(),
        0
    );
    // VoIP can be allowed explicitly.
    let voip_ok = setup(|b| {
        b.policy(DestinationPolicy::default().allow_number_type(Channel::Sms, NumberType::Voip))
    });
    voip_ok
        .router
        .send(&sms(&PhoneNumber::parse("+815012345678")?))
        .await?;
    Ok(())
}

#[test]
fn policy_reasons_are_specific() {
    let policy = DestinationPolicy::default()
        .deny_country(Channel::Voice, "US")
        .unwrap()
        .allow_only_countries(Channel::Sms, &["JP"])
        .unwrap();
    assert_eq!(
        policy.check(&PhoneNumber::parse("+81990123456").unwrap(), Channel::Sms),
        Err(PolicyRefusal::NumberType {
            number_type: NumberType::PremiumRate,
            channel: Channel::Sms
        })
    );
    assert_eq!(
        policy.check(&us_number(), Channel::Voice),
        Err(PolicyRefusal::CountryDenied {
            region: "US".into(),
            channel: Channel::Voice
        })
    );
    let refusal = policy.check(&us_number(), Channel::Sms).unwrap_err();
    assert_eq!(
        refusal,
        PolicyRefusal::CountryNotAllowed {
            region: "US".into(),
            channel: Channel::Sms
        }
    );
    assert_eq!(
        refusal.to_string(),
        "sms to region US is not in the allowed countries"
    );
    let landline = PhoneNumber::parse("+81312345678").unwrap();
    assert!(policy.check(&landline, Channel::Sms).is_err());
    assert!(policy.check(&landline, Channel::Voice).is_ok());
}

#[tokio::test]
async fn failover_matrix_for_every_error_kind() -> TestResult {
    use ProviderErrorKind as K;
    // Written out, not derived from Failover, so a wrong default fails here.
    let moves_on = |kind: K| match kind {
        K::InvalidRecipient | K::RecipientBlocked | K::RecipientCannotReceive => false,
        K::PolicyRefused => false,
        K::Auth | K::NotPermitted | K::BadRequest | K::RateLimited | K::Unavailable => true,
        K::Network | K::Protocol | K::ChannelUnsupported | K::NoRoute => true,
        // Reached, no answer: it may deliver yet; a second provider would be a second code.
        K::Timeout => false,
        _ => panic!("new kind {kind:?}: decide its failover"),
    };
    for kind in ProviderErrorKind::ALL {
        let s = setup(|b| b);
        s.ntt.fail_next(kind);
        let result = s.router.send(&sms(&jp_mobile())).await;
        if moves_on(kind) {
            assert_eq!(result?.provider, "smslink", "{kind:?} should move on");
        } else {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), kind, "{kind:?} should stop");
            assert_eq!(s.smslink.attempts(), 0, "{kind:?} should stop");
            assert_eq!(
                error
                    .attempts()
                    .iter()
                    .map(|a| a.outcome)
                    .collect::<Vec<_>>(),
                [
                    AttemptOutcome::Failed(kind),
                    AttemptOutcome::SkippedBudgetExhausted,
                    AttemptOutcome::SkippedBudgetExhausted
                ]
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_final_error_lists_every_attempt() -> TestResult {
    let s = setup(|b| b);
    s.ntt.fail_next(ProviderErrorKind::Unavailable);
    s.smslink.fail_next(ProviderErrorKind::Auth);
    s.twilio.fail_next(ProviderErrorKind::RateLimited);
    let error = s.router.send(&sms(&jp_mobile())).await.unwrap_err();
    let attempts: Vec<(&str, AttemptOutcome)> = error
        .attempts()
        .iter()
        .map(|a| (a.provider.as_str(), a.outcome))
        .collect();
    assert_eq!(
        attempts,
        [
            (
                "ntt-cpaas",
                AttemptOutcome::Failed(ProviderErrorKind::Unavailable)
            ),
            ("smslink", AttemptOutcome::Failed(ProviderErrorKind::Auth)),
            (
                "twilio",
                AttemptOutcome::Failed(ProviderErrorKind::RateLimited)
            ),
        ]
    );
    assert_eq!(error.kind(), ProviderErrorKind::RateLimited);
    assert!(std::error::Error::source(&error).is_some());
    Ok(())
}

#[tokio::test]
async fn attempts_are_capped() -> TestResult {
    let s = setup(|b| b.failover(Failover::default().max_attempts(2)));
    s.ntt.fail_next(ProviderErrorKind::Unavailable);
    s.smslink.fail_next(ProviderErrorKind::Unavailable);
    let error = s.router.send(&sms(&jp_mobile())).await.unwrap_err();
    assert_eq!(s.twilio.attempts(), 0);
    assert_eq!(
        error.attempts()[2].outcome,
        AttemptOutcome::SkippedBudgetExhausted
    );
    Ok(())
}

/// A provider that never answers.
#[derive(Debug)]
struct Hung(&'static str);

#[async_trait]
impl PhoneProvider for Hung {
    fn name(&self) -> &str {
        self.0
    }
    fn supports(&self, _: Channel) -> bool {
        true
    }
    async fn send(&self, _: &Message) -> Result<Receipt, ProviderError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn hung_providers_time_out_within_the_overall_deadline() -> TestResult {
    let backup = StubProvider::named("backup");
    let router = Router::builder()
        .provider(Hung("slow-1"))
        .provider(Hung("slow-2"))
        .provider(backup.clone())
        .default_chain(Channel::Sms, &["slow-1", "slow-2", "backup"])
        .failover(
            Failover::default()
                .move_on(ProviderErrorKind::Timeout)
                .per_attempt_timeout(Duration::from_secs(2))
                .deadline(Duration::from_secs(3)),
        )
        .build()?;
    let started = tokio::time::Instant::now();
    let error = router.send(&sms(&jp_mobile())).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let outcomes: Vec<AttemptOutcome> = error.attempts().iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Failed(ProviderErrorKind::Timeout),
            AttemptOutcome::Failed(ProviderErrorKind::Timeout),
            AttemptOutcome::SkippedBudgetExhausted
        ]
    );
    assert_eq!(backup.attempts(), 0);

    // By default a provider that accepted and stalls is not followed by another: the
    // send's outcome is unknown (it may still deliver), not a second code.
    let router = Router::builder()
        .provider(Hung("slow-1"))
        .provider(backup.clone())
        .default_chain(Channel::Sms, &["slow-1", "backup"])
        .build()?;
    let started = tokio::time::Instant::now();
    let error = router.send(&sms(&jp_mobile())).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert!(error.may_have_delivered());
    assert_eq!(backup.attempts(), 0);
    assert_eq!(
        router
            .metrics()
            .provider("backup")
            .unwrap()
            .possible_duplicates,
        0
    );

    // Opted in, the backup gets its turn inside the default budget (1.5 s per attempt,
    // 3 s in all), and the send is counted as a possible duplicate.
    let router = Router::builder()
        .provider(Hung("slow-1"))
        .provider(backup.clone())
        .default_chain(Channel::Sms, &["slow-1", "backup"])
        .failover(Failover::default().move_on(ProviderErrorKind::Timeout))
        .build()?;
    let started = tokio::time::Instant::now();
    assert_eq!(router.send(&sms(&jp_mobile())).await?.provider, "backup");
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert_eq!(
        router
            .metrics()
            .provider("backup")
            .unwrap()
            .possible_duplicates,
        1
    );
    Ok(())
}

#[tokio::test]
async fn breaker_opens_cools_down_and_probes() -> TestResult {
    let clock = ManualClock::new();
    let s = setup(|b| {
        b.clock(clock.clone()).breaker(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
        })
    });
    s.ntt.fail_always(ProviderErrorKind::Unavailable);
    for _ in 0..3 {
        assert_eq!(s.router.send(&sms(&jp_mobile())).await?.provider, "smslink");
    }
    assert_eq!(
        s.router.metrics().provider("ntt-cpaas").unwrap().breaker,
        BreakerStatus::Open
    );
    // Open: NTT is skipped, and the skip is visible.
    s.smslink.fail_next(ProviderErrorKind::Unavailable);
    s.twilio.fail_next(ProviderErrorKind::Unavailable);
    let error = s.router.send(&sms(&jp_mobile())).await.unwrap_err();
    assert_eq!(
        error.attempts()[0].outcome,
        AttemptOutcome::SkippedBreakerOpen
    );
    assert_eq!(s.ntt.attempts(), 3);
    assert_eq!(
        s.router
            .metrics()
            .provider("ntt-cpaas")
            .unwrap()
            .skipped_breaker_open,
        1
    );

    // After the cool-down one probe goes through; it fails, so the breaker opens again.
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        s.router.metrics().provider("ntt-cpaas").unwrap().breaker,
        BreakerStatus::HalfOpen
    );
    s.router.send(&sms(&jp_mobile())).await?;
    assert_eq!(s.ntt.attempts(), 4);
    s.router.send(&sms(&jp_mobile())).await?;
    assert_eq!(s.ntt.attempts(), 4, "open again after a failed probe");

    // Next cool-down: the probe succeeds and the breaker closes.
    clock.advance(Duration::from_secs(30));
    s.ntt.recover();
    assert_eq!(
        s.router.send(&sms(&jp_mobile())).await?.provider,
        "ntt-cpaas"
    );
    assert_eq!(
        s.router.metrics().provider("ntt-cpaas").unwrap().breaker,
        BreakerStatus::Closed
    );
    assert_eq!(
        s.router.send(&sms(&jp_mobile())).await?.provider,
        "ntt-cpaas"
    );
    Ok(())
}

#[tokio::test]
async fn recipient_errors_do_not_open_the_breaker() -> TestResult {
    let clock = ManualClock::new();
    let s = setup(|b| {
        b.clock(clock.clone()).breaker(BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_secs(30),
        })
    });
    for _ in 0..5 {
        s.ntt.fail_next(ProviderErrorKind::InvalidRecipient);
        assert!(s.router.send(&sms(&jp_mobile())).await.is_err());
    }
    assert_eq!(
        s.router.metrics().provider("ntt-cpaas").unwrap().breaker,
        BreakerStatus::Closed
    );
    assert_eq!(s.ntt.attempts(), 5);
    Ok(())
}

#[tokio::test]
async fn metrics_count_attempts_failures_and_countries() -> TestResult {
    let s = setup(|b| b);
    s.router.send(&sms(&jp_mobile())).await?;
    s.ntt.fail_next(ProviderErrorKind::Unavailable);
    s.router.send(&sms(&jp_mobile())).await?;
    s.router.send(&sms(&us_number())).await?;
    s.twilio.fail_next(ProviderErrorKind::Auth);
    assert!(s.router.send(&sms(&us_number())).await.is_err());

    let metrics = s.router.metrics();
    let ntt = metrics.provider("ntt-cpaas").unwrap();
    assert_eq!((ntt.attempts, ntt.successes), (2, 1));
    assert_eq!(ntt.failures_of(ProviderErrorKind::Unavailable), 1);
    assert!(ntt.mean_latency.is_some());
    let smslink = metrics.provider("smslink").unwrap();
    assert_eq!((smslink.attempts, smslink.successes), (1, 1));
    let twilio = metrics.provider("twilio").unwrap();
    assert_eq!(
        (
            twilio.attempts,
            twilio.successes,
            twilio.failures_of(ProviderErrorKind::Auth)
        ),
        (2, 1, 1)
    );
    let jp = metrics.country("JP").unwrap();
    assert_eq!((jp.sends, jp.delivered, jp.failed), (2, 2, 0));
    let us = metrics.country("US").unwrap();
    assert_eq!((us.sends, us.delivered, us.failed), (2, 1, 1));
    Ok(())
}

#[tokio::test]
async fn a_router_nests_inside_a_router() -> TestResult {
    let jp_ntt = StubProvider::named("ntt-cpaas");
    let jp_smslink = StubProvider::named("smslink");
    let japan = Router::builder()
        .name("japan")
        .provider(jp_ntt.clone())
        .provider(jp_smslink.clone())
        .default_chain(Channel::Sms, &["ntt-cpaas", "smslink"])
        .build()?;
    let twilio = StubProvider::named("twilio");
    let world = Router::builder()
        .provider(japan.clone())
        .provider(twilio.clone())
        .country("JP", Channel::Sms, &["japan", "twilio"])
        .default_chain(Channel::Sms, &["twilio"])
        .build()?;
    jp_ntt.fail_next(ProviderErrorKind::Unavailable);
    assert_eq!(world.send(&sms(&jp_mobile())).await?.provider, "smslink");
    // The inner router failing as a whole moves the outer one on.
    jp_ntt.fail_next(ProviderErrorKind::Unavailable);
    jp_smslink.fail_next(ProviderErrorKind::Unavailable);
    assert_eq!(world.send(&sms(&jp_mobile())).await?.provider, "twilio");
    assert_eq!(
        world
            .metrics()
            .provider("japan")
            .unwrap()
            .failures_of(ProviderErrorKind::Unavailable),
        1
    );
    Ok(())
}

fn otp_over(router: Router, escalate: bool) -> OtpService {
    OtpService::builder()
        .key_ring(KeyRing::new(
            HmacKey::new(1, &SecretSlice::from(vec![3u8; 32])).unwrap(),
        ))
        .provider(router)
        .escalate_to_voice(escalate)
        .build()
        .unwrap()
}

#[tokio::test]
async fn escalation_to_voice_delivers_the_same_code() -> TestResult {
    let s = setup(|b| b);
    for stub in [&s.ntt, &s.twilio] {
        stub.fail_next(ProviderErrorKind::RecipientCannotReceive); // SMS: not an SMS-capable line
    }
    let otp = otp_over(s.router.clone(), true);
    let started = otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn).reference("aud-7"))
        .await?;
    assert_eq!(started.channel, Channel::Voice);
    let call = s.ntt.last_message_to(&jp_mobile()).unwrap();
    assert_eq!(call.channel(), Channel::Voice);
    // The call is a second send of the request: its own reference, derived from the
    // caller's, so a provider deduplicating by it does not drop the call.
    assert_eq!(call.reference(), "aud-7-voice");
    let code = call.code().unwrap().expose_secret().to_owned();
    assert!(
        call.text()
            .expose_secret()
            .contains(&phone_otp::spaced_digits(&code, phone_otp::Locale::En))
    );
    assert!(
        otp.verify(&started.challenge_id, &code)
            .await?
            .is_verified()
    );

    // Without escalation the same failure is an error.
    let s = setup(|b| b);
    s.ntt.fail_next(ProviderErrorKind::RecipientCannotReceive);
    let otp = otp_over(s.router.clone(), false);
    match otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await
    {
        Err(StartError::Delivery(error)) => {
            assert_eq!(error.kind(), ProviderErrorKind::RecipientCannotReceive)
        }
        other => panic!("expected a delivery error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn landlines_get_a_call_when_escalation_is_on_and_a_refusal_otherwise() -> TestResult {
    let landline = PhoneNumber::parse("+81312345678")?;
    let s = setup(|b| b);
    let started = otp_over(s.router.clone(), true)
        .start(StartRequest::sms(landline.clone(), Purpose::SignIn))
        .await?;
    assert_eq!(started.channel, Channel::Voice);

    let s = setup(|b| b);
    match otp_over(s.router.clone(), false)
        .start(StartRequest::sms(landline, Purpose::SignIn))
        .await
    {
        Err(error @ StartError::Refused(PolicyRefusal::NumberType { number_type, .. })) => {
            assert_eq!(number_type, NumberType::FixedLine);
            // The message names the rule, not just "refused".
            assert_eq!(
                error.to_string(),
                "destination refused: sms to fixed_line numbers is not allowed by policy"
            );
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert_eq!(s.ntt.attempts() + s.twilio.attempts(), 0);
    Ok(())
}

/// Satellite numbers parse as mobiles with no country: the default refuses them on both
/// channels, and only naming their calling code lets them through.
#[tokio::test]
async fn numbers_without_a_country_are_refused_unless_their_calling_code_is_allowed() -> TestResult
{
    let iridium = PhoneNumber::parse("+881612345678")?;
    let inmarsat = PhoneNumber::parse("+870773111632")?;
    assert_eq!(iridium.region(), None);
    assert_eq!(iridium.number_type(), NumberType::Mobile);
    let policy = DestinationPolicy::default();
    for (to, code) in [(&iridium, 881), (&inmarsat, 870)] {
        for channel in [Channel::Sms, Channel::Voice] {
            let refusal = policy.check(to, channel).unwrap_err();
            assert_eq!(
                refusal,
                PolicyRefusal::NoCountry {
                    calling_code: code,
                    channel
                }
            );
        }
    }
    assert_eq!(
        policy
            .check(&iridium, Channel::Sms)
            .unwrap_err()
            .to_string(),
        "sms to numbers of calling code +881, which belong to no country, is not allowed by policy"
    );
    // Through OtpService: refused before anything is spent or sent.
    let stub = StubProvider::new();
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(HmacKey::new(
            1,
            &SecretSlice::from(vec![3u8; 32]),
        )?))
        .provider(stub.clone())
        .build()?;
    assert!(matches!(
        otp.start(StartRequest::sms(iridium.clone(), Purpose::SignIn))
            .await,
        Err(StartError::Refused(PolicyRefusal::NoCountry {
            calling_code: 881,
            ..
        }))
    ));
    assert_eq!(stub.attempts(), 0);

    // Allowing the calling code lets that one through, per channel, even beside an allow
    // list of countries; denying a calling code refuses every number under it.
    let policy = DestinationPolicy::default()
        .allow_only_countries(Channel::Sms, &["JP"])?
        .allow_calling_code(Channel::Sms, 881)
        .deny_calling_code(Channel::Sms, 1);
    assert_eq!(policy.check(&iridium, Channel::Sms), Ok(()));
    assert!(policy.check(&iridium, Channel::Voice).is_err());
    assert!(policy.check(&inmarsat, Channel::Sms).is_err());
    assert_eq!(
        policy.check(&us_number(), Channel::Sms),
        Err(PolicyRefusal::CallingCodeDenied {
            calling_code: 1,
            channel: Channel::Sms
        })
    );
    assert_eq!(policy.check(&jp_mobile(), Channel::Sms), Ok(()));
    Ok(())
}

#[tokio::test]
async fn policy_refusal_spends_no_quota() -> TestResult {
    let stub = StubProvider::new();
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(HmacKey::new(
            1,
            &SecretSlice::from(vec![3u8; 32]),
        )?))
        .provider(stub.clone())
        .destination_policy(DestinationPolicy::default().deny_country(Channel::Sms, "JP")?)
        .build()?;
    for _ in 0..10 {
        assert!(matches!(
            otp.start(StartRequest::sms(jp_mobile(), Purpose::SignIn).subject("u"))
                .await,
            Err(StartError::Refused(PolicyRefusal::CountryDenied { .. }))
        ));
    }
    assert_eq!(stub.attempts(), 0);
    Ok(())
}

/// A provider whose account may not send to one region (a geo-permission refusal), or
/// that hangs while `hang` is set; it delivers everything else.
#[derive(Debug, Default)]
struct Picky {
    blocked_region: Option<&'static str>,
    hang: std::sync::atomic::AtomicBool,
    fail: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl PhoneProvider for Picky {
    fn name(&self) -> &str {
        "picky"
    }
    fn supports(&self, _: Channel) -> bool {
        true
    }
    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        if self.hang.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(SeqCst) {
            return Err(ProviderError::new(ProviderErrorKind::Unavailable, "picky"));
        }
        let region = message.to().region().map(|r| r.to_string());
        if region.as_deref() == self.blocked_region {
            return Err(
                ProviderError::new(ProviderErrorKind::NotPermitted, "picky").with_code("21408")
            );
        }
        Ok(Receipt::new("picky", "id", message.channel()))
    }
}

fn picky_router(
    picky: &std::sync::Arc<Picky>,
    backup: &StubProvider,
    clock: &ManualClock,
) -> Router {
    Router::builder()
        .provider(std::sync::Arc::clone(picky))
        .provider(backup.clone())
        .default_chain(Channel::Sms, &["picky", "backup"])
        .clock(clock.clone())
        .breaker(BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        })
        .build()
        .unwrap()
}

/// Refusals about one destination (geo permissions) open that destination's breaker
/// only: five sends to a blocked country must not take the provider away from Japan.
#[tokio::test]
async fn a_blocked_country_does_not_open_the_breaker_for_other_countries() -> TestResult {
    use std::sync::atomic::Ordering::SeqCst;
    let picky = std::sync::Arc::new(Picky {
        blocked_region: Some("US"),
        ..Picky::default()
    });
    let (backup, clock) = (StubProvider::named("backup"), ManualClock::new());
    let router = picky_router(&picky, &backup, &clock);
    for _ in 0..5 {
        assert_eq!(router.send(&sms(&us_number())).await?.provider, "backup");
    }
    // Japan still goes to the first provider...
    for _ in 0..3 {
        assert_eq!(router.send(&sms(&jp_mobile())).await?.provider, "picky");
    }
    // ...while the US skips it now, and the metrics say where.
    let error_free = router.send(&sms(&us_number())).await?;
    assert_eq!(error_free.provider, "backup");
    assert_eq!(
        picky.calls.load(SeqCst),
        8,
        "the sixth US send skipped picky"
    );
    let metrics = router.metrics();
    let picky_metrics = metrics.provider("picky").unwrap();
    assert_eq!(picky_metrics.breaker, BreakerStatus::Closed);
    assert_eq!(
        picky_metrics.destination_breakers,
        [("US".to_owned(), BreakerStatus::Open)]
            .into_iter()
            .collect()
    );
    // Provider-wide failures still open the provider's own breaker.
    picky.fail.store(true, SeqCst);
    for _ in 0..5 {
        router.send(&sms(&jp_mobile())).await?;
    }
    assert_eq!(
        router.metrics().provider("picky").unwrap().breaker,
        BreakerStatus::Open
    );
    Ok(())
}

/// A half-open probe whose caller gave up (its future dropped) must not leave the
/// provider skipped for ever: after the attempt timeout another probe is let through.
#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_is_replaced_after_the_attempt_timeout() -> TestResult {
    use std::sync::atomic::Ordering::SeqCst;
    let picky = std::sync::Arc::new(Picky::default());
    let (backup, clock) = (StubProvider::named("backup"), ManualClock::new());
    let router = picky_router(&picky, &backup, &clock);
    picky.fail.store(true, SeqCst);
    for _ in 0..5 {
        router.send(&sms(&jp_mobile())).await?;
    }
    clock.advance(Duration::from_secs(30));
    // The probe hangs and its caller gives up long before the router's own timeout.
    picky.fail.store(false, SeqCst);
    picky.hang.store(true, SeqCst);
    let abandoned =
        tokio::time::timeout(Duration::from_millis(10), router.send(&sms(&jp_mobile()))).await;
    assert!(abandoned.is_err(), "the caller gave up");
    assert_eq!(picky.calls.load(SeqCst), 6);
    picky.hang.store(false, SeqCst);
    // While the probe could still be running, nobody else is let through...
    assert_eq!(router.send(&sms(&jp_mobile())).await?.provider, "backup");
    assert_eq!(picky.calls.load(SeqCst), 6);
    // ...and once it is overdue (the 1.5 s attempt timeout), a new probe goes and closes it.
    clock.advance(Duration::from_millis(1500));
    assert_eq!(router.send(&sms(&jp_mobile())).await?.provider, "picky");
    assert_eq!(
        router.metrics().provider("picky").unwrap().breaker,
        BreakerStatus::Closed
    );
    Ok(())
}

#[tokio::test]
async fn a_provider_past_its_daily_budget_is_skipped_and_the_chain_moves_on() -> TestResult {
    use phone_otp::{BudgetCap, MemoryStore, Micros, PriceTable, ProviderBudgets, Rate};
    let clock = ManualClock::new();
    // SMSLINK costs 0.05 a segment in Japan; a cap of 0.12 pays for two.
    let prices = PriceTable::new("USD").with(Rate {
        provider: "smslink".into(),
        country: "JP".into(),
        sms: Micros::from_decimal(0.05),
        voice: None,
    });
    let budgets = ProviderBudgets::new(MemoryStore::new(), prices)
        .cap("ntt-cpaas", BudgetCap::Messages(2))
        .cap("smslink", BudgetCap::Money(Micros(120_000)));
    let s = setup(|b| b.provider_budgets(budgets).clock(clock.clone()));
    let mut senders = Vec::new();
    let mut last_attempts = Vec::new();
    for _ in 0..5 {
        let receipt = s.router.send(&sms(&jp_mobile())).await?;
        senders.push(receipt.provider.clone());
        last_attempts = receipt
            .attempts
            .iter()
            .map(|a| a.outcome)
            .collect::<Vec<_>>();
    }
    assert_eq!(
        senders,
        ["ntt-cpaas", "ntt-cpaas", "smslink", "smslink", "twilio"]
    );
    assert_eq!(
        last_attempts,
        [
            AttemptOutcome::SkippedProviderBudget,
            AttemptOutcome::SkippedProviderBudget
        ]
    );
    // A new UTC day, a new budget.
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        s.router.send(&sms(&jp_mobile())).await?.provider,
        "ntt-cpaas"
    );
    Ok(())
}

#[tokio::test]
async fn provider_budgets_hold_under_64_concurrent_sends() -> TestResult {
    use phone_otp::{BudgetCap, MemoryStore, PriceTable, ProviderBudgets};
    let budgets = ProviderBudgets::new(MemoryStore::new(), PriceTable::new("USD"))
        .cap("ntt-cpaas", BudgetCap::Messages(10));
    let s = setup(|b| b.provider_budgets(budgets));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let router = s.router.clone();
        tasks.push(tokio::spawn(async move {
            router.send(&sms(&jp_mobile())).await.map(|r| r.provider)
        }));
    }
    let mut by_ntt = 0;
    for task in tasks {
        by_ntt += usize::from(task.await?? == "ntt-cpaas");
    }
    assert_eq!(by_ntt, 10);
    assert_eq!(s.ntt.attempts(), 10);
    Ok(())
}

/// The destination policy is configured once, on the service, and enforced once, before
/// any limit is charged: a router left with its default policy does not refuse what the
/// service's policy allows. A policy given to the router itself still holds on every send.
#[tokio::test]
async fn the_services_policy_is_enforced_once_and_a_routers_own_still_holds() -> TestResult {
    // A Japanese 050 number is VoIP: refused by default, allowed by this service.
    let voip = PhoneNumber::parse("+815012345678")?;
    assert_eq!(voip.number_type(), NumberType::Voip);
    let s = setup(|b| b);
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(
            HmacKey::new(1, &SecretSlice::from(vec![3u8; 32])).unwrap(),
        ))
        .provider(s.router.clone())
        .destination_policy(
            DestinationPolicy::default().allow_number_type(Channel::Sms, NumberType::Voip),
        )
        .build()?;
    otp.start(StartRequest::sms(voip.clone(), Purpose::SignIn))
        .await?;
    assert!(s.ntt.last_message_to(&voip).is_some(), "delivered");

    // The router's own policy (Japan refused) holds for the service's sends too.
    let s = setup(|b| {
        b.policy(
            DestinationPolicy::default()
                .deny_country(Channel::Sms, "JP")
                .unwrap(),
        )
    });
    let otp = otp_over(s.router.clone(), false);
    match otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await
    {
        Err(StartError::Delivery(error)) => {
            assert_eq!(error.kind(), ProviderErrorKind::PolicyRefused);
        }
        other => panic!("expected the router's refusal, got {other:?}"),
    }
    assert_eq!(
        s.ntt.attempts() + s.twilio.attempts() + s.smslink.attempts(),
        0
    );
    Ok(())
}
