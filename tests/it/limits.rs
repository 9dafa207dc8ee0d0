use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{
    Decision, LimitKey, LimitKind, Limits, MemoryStore, OtpStore, Purpose, Quota, StartError,
    StartRequest,
};

use crate::support::{Harness, TestResult, jp_mobile, jp_mobile_n};

fn n(count: u32) -> NonZeroU32 {
    NonZeroU32::new(count).unwrap()
}

async fn refusal(h: &Harness, request: StartRequest) -> (LimitKind, Duration) {
    match h.otp.start(request).await {
        Err(StartError::Limited { limit, retry_after }) => (limit, retry_after),
        other => panic!("expected a limit refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn destination_allows_five_per_ten_minutes() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            resend_cooldown: None,
            ..Limits::default()
        })
    });
    for _ in 0..5 {
        h.start(&jp_mobile()).await;
    }
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn);
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::Destination, Duration::from_secs(120))
    );
    // Nothing was generated or sent for the refused request.
    assert_eq!(h.stub.attempts(), 5);
    h.clock.advance(Duration::from_secs(120));
    h.start(&jp_mobile()).await;
    Ok(())
}

#[tokio::test]
async fn cooldown_spaces_sends_to_one_number() -> TestResult {
    let h = Harness::new();
    h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(5));
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn);
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::ResendCooldown, Duration::from_secs(25))
    );
    Ok(())
}

#[tokio::test]
async fn subject_allows_ten_per_hour_across_numbers() -> TestResult {
    let h = Harness::new();
    for i in 0..10 {
        h.start_request(StartRequest::sms(jp_mobile_n(i), Purpose::SignIn).subject("user-1"))
            .await;
    }
    let request = StartRequest::sms(jp_mobile_n(99), Purpose::SignIn).subject("user-1");
    assert_eq!(
        refusal(&h, request).await,
        (LimitKind::Subject, Duration::from_secs(360))
    );
    // Another user is unaffected.
    h.start_request(StartRequest::sms(jp_mobile_n(98), Purpose::SignIn).subject("user-2"))
        .await;
    Ok(())
}

#[tokio::test]
async fn client_ip_tenant_country_and_global_limits() -> TestResult {
    let ip: IpAddr = "203.0.113.9".parse()?;
    let cases: [(Limits, LimitKind); 4] = [
        (
            Limits {
                per_client_ip: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::ClientIp,
        ),
        (
            Limits {
                per_tenant: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Tenant,
        ),
        (
            Limits {
                per_country: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Country,
        ),
        (
            Limits {
                global: Some(Quota::per_hour(n(2))),
                ..Limits::danger_none()
            },
            LimitKind::Global,
        ),
    ];
    for (limits, kind) in cases {
        let h = Harness::with(|b| b.limits(limits));
        let request = |i| {
            StartRequest::sms(jp_mobile_n(i), Purpose::SignIn)
                .client_ip(ip)
                .tenant("acme")
        };
        h.start_request(request(1)).await;
        h.start_request(request(2)).await;
        assert_eq!(
            refusal(&h, request(3)).await,
            (kind, Duration::from_secs(1800)),
            "{kind}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64_block() -> TestResult {
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_client_ip: Some(Quota::per_hour(n(1))),
            ..Limits::danger_none()
        })
    });
    let first: IpAddr = "2001:db8:1:2::1".parse()?;
    let same_block: IpAddr = "2001:db8:1:2:ffff::9".parse()?;
    h.start_request(StartRequest::sms(jp_mobile_n(1), Purpose::SignIn).client_ip(first))
        .await;
    let request = StartRequest::sms(jp_mobile_n(2), Purpose::SignIn).client_ip(same_block);
    assert_eq!(refusal(&h, request).await.0, LimitKind::ClientIp);
    Ok(())
}

#[tokio::test]
async fn limits_can_be_switched_off() -> TestResult {
    let h = Harness::unlimited();
    for _ in 0..50 {
        h.start(&jp_mobile()).await;
    }
    assert_eq!(h.stub.attempts(), 50);
    Ok(())
}

#[tokio::test]
async fn throttle_refusals_do_not_count() -> TestResult {
    let store = MemoryStore::new();
    let clock = phone_otp::ManualClock::new();
    use phone_otp::Clock;
    let key = LimitKey::global();
    let quota = Quota::per_minute(n(1));
    assert_eq!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Allowed
    );
    for _ in 0..10 {
        assert_eq!(
            store.throttle(&key, quota, clock.now()).await?,
            Decision::Limited {
                retry_after: Duration::from_secs(60)
            }
        );
    }
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        store.throttle(&key, quota, clock.now()).await?,
        Decision::Allowed
    );
    Ok(())
}

#[test]
fn limited_error_names_the_limit_and_wait() {
    let error = StartError::Limited {
        limit: LimitKind::Destination,
        retry_after: Duration::from_millis(119_200),
    };
    assert_eq!(
        error.to_string(),
        "destination rate limit reached, retry after 120s"
    );
}

/// Subjects and tenants become stored fields and rate-limit keys: one over
/// `MAX_LABEL_BYTES` is refused before any quota is spent or any code is sent.
#[tokio::test]
async fn oversized_subject_or_tenant_is_refused_before_anything_is_spent() -> TestResult {
    // One send per destination: a refusal that spent it would make the last start fail.
    let h = Harness::with(|b| {
        b.limits(Limits {
            per_destination: Some(Quota::per_period(n(1), Duration::from_secs(600))),
            resend_cooldown: None,
            ..Limits::default()
        })
    });
    let long = "u".repeat(phone_otp::MAX_LABEL_BYTES + 1);
    let cases = [
        (
            StartRequest::sms(jp_mobile(), Purpose::SignIn).subject(long.clone()),
            "invalid start request: subject is longer than 256 bytes",
        ),
        (
            StartRequest::sms(jp_mobile(), Purpose::SignIn).tenant(long.clone()),
            "invalid start request: tenant is longer than 256 bytes",
        ),
    ];
    for (request, message) in cases {
        let error = h.otp.start(request).await.expect_err("refused");
        assert!(matches!(error, StartError::InvalidRequest(_)), "{error:?}");
        assert_eq!(error.to_string(), message);
    }
    assert_eq!(h.stub.attempts(), 0, "nothing was sent");

    // At the limit is fine, and the destination's one send was not spent by the refusals.
    let at_limit = "u".repeat(phone_otp::MAX_LABEL_BYTES);
    let request = StartRequest::sms(jp_mobile(), Purpose::SignIn)
        .subject(at_limit.clone())
        .tenant(at_limit);
    h.otp.start(request).await?;
    Ok(())
}
