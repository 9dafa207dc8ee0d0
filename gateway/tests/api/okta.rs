//! `POST /hooks/okta/telephony` against Okta's own example request and schema.

use std::sync::Arc;
use std::time::Duration;

use phone_otp::{Channel, Limits, ProviderErrorKind};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{
    Hung, OKTA_SECRET, Setup, TestGateway, TestResult, fixture, validates_against_okta_schema,
};

/// Okta's sample request, with `mutate` applied.
fn sample(mutate: impl FnOnce(&mut Value)) -> Option<Value> {
    let mut request = fixture("okta-telephony-request.json")?;
    mutate(&mut request);
    Some(request)
}

fn profile(request: &mut Value) -> &mut Value {
    &mut request["data"]["messageProfile"]
}

fn status_of(body: &Value) -> &str {
    body["commands"][0]["value"][0]["status"]
        .as_str()
        .unwrap_or("")
}

/// The answer is Okta's error object (Okta then sends the code through its own provider).
fn assert_error_object(body: &Value) {
    assert!(body["error"]["errorSummary"].is_string(), "{body}");
    assert!(body.get("commands").is_none(), "{body}");
}

#[tokio::test]
async fn oktas_sample_request_is_delivered_and_answered_as_okta_expects() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let response = gw.okta(&request).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await?;
    assert_eq!(body["commands"][0]["type"], "com.okta.telephony.action");
    let value = &body["commands"][0]["value"][0];
    assert_eq!(value["status"], "SUCCESSFUL");
    assert_eq!(value["provider"], "primary");
    let sent = gw.primary.delivered();
    assert_eq!(sent.len(), 1);
    // The stub's message id for its first send.
    assert_eq!(value["transactionId"], "primary-1");
    let metadata = value["transactionMetadata"].as_str().unwrap_or("");
    assert!(metadata.starts_with("Duration="), "{metadata}");
    assert!(metadata.contains("Attempts=1"), "{metadata}");

    // What reached the provider: Okta's own text, to the E.164 form of `9876543210`.
    let message = &sent[0];
    assert_eq!(message.to().e164(), "+919876543210");
    assert_eq!(message.channel(), Channel::Sms);
    assert_eq!(message.text().expose_secret(), "(HOOK)Your code is 11111");
    // otpExpires is 4 min 54.321 s after eventTime: the provider drops it after that.
    assert_eq!(message.validity(), Some(Duration::from_millis(294_321)));

    // Same fields as Okta's sample response, and valid against Okta's schema.
    let Some(okta_sample) = fixture("okta-telephony-response.json") else {
        return Ok(());
    };
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v["commands"][0]["value"][0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(keys(&body), keys(&okta_sample));
    validates_against_okta_schema(&body, "TelephonyResponse");
    Ok(())
}

#[test]
fn the_schema_validator_rejects_what_okta_would() {
    // The spec's older `FAILURE` status is not in the enum: the validator must say so,
    // or the validation above proves nothing.
    let bad = json!({"commands": [{"type": "com.okta.telephony.action", "value": [{"status": "FAILURE"}]}]});
    let result =
        std::panic::catch_unwind(|| validates_against_okta_schema(&bad, "TelephonyResponse"));
    match result {
        Err(_) => {}
        Ok(false) => {} // validator unavailable: said loudly (a failure under CI)
        Ok(true) => panic!("FAILURE must not validate"),
    }
}

#[tokio::test]
async fn every_delivery_channel_spelling() -> TestResult {
    let cases = [
        ("SMS", Channel::Sms),
        ("sms", Channel::Sms),
        ("CALL", Channel::Voice),
        ("voice call", Channel::Voice),
        ("Voice call", Channel::Voice),
        ("Voice", Channel::Voice),
    ];
    let gw = TestGateway::with(Setup {
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    for (i, (spelling, channel)) in cases.into_iter().enumerate() {
        let Some(request) = sample(|r| {
            r["eventId"] = json!(format!("event-{i}"));
            profile(r)["deliveryChannel"] = json!(spelling);
        }) else {
            return Ok(());
        };
        let body: Value = gw.okta(&request).await.json().await?;
        assert_eq!(status_of(&body), "SUCCESSFUL", "{spelling}: {body}");
        let sent = gw.primary.delivered();
        let last = sent.last().unwrap();
        assert_eq!(last.channel(), channel, "{spelling}");
        if channel == Channel::Voice {
            // msgTemplate is "not applicable for voice call": a call speaks our template.
            assert_ne!(last.text().expose_secret(), "(HOOK)Your code is 11111");
            assert!(last.text().expose_secret().contains("1, 1, 1, 1, 1") || last.code().is_some());
        }
    }
    assert_eq!(gw.primary.delivered().len(), 6);

    let Some(request) = sample(|r| profile(r)["deliveryChannel"] = json!("email")) else {
        return Ok(());
    };
    let body: Value = gw.okta(&request).await.json().await?;
    assert_error_object(&body);
    assert_eq!(
        body["error"]["errorCauses"][0]["location"],
        "data.messageProfile.deliveryChannel"
    );
    assert_eq!(gw.primary.delivered().len(), 6, "nothing sent");
    Ok(())
}

#[tokio::test]
async fn numbers_with_and_without_plus_and_as_json_numbers() -> TestResult {
    let gw = TestGateway::with(Setup {
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    for (i, number) in [
        json!("+14155550123"),
        json!("9876543211"),
        json!(9876543212u64),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(request) = sample(|r| {
            r["eventId"] = json!(format!("n-{i}"));
            profile(r)["phoneNumber"] = number.clone();
            // Okta's spec example also has the code as a YAML integer.
            profile(r)["otpCode"] = json!(11111);
        }) else {
            return Ok(());
        };
        let body: Value = gw.okta(&request).await.json().await?;
        assert_eq!(status_of(&body), "SUCCESSFUL", "{number}: {body}");
    }
    let numbers: Vec<String> = gw
        .primary
        .delivered()
        .iter()
        .map(|m| m.to().e164().to_owned())
        .collect();
    assert_eq!(numbers, ["+14155550123", "+919876543211", "+919876543212"]);
    Ok(())
}

#[tokio::test]
async fn failover_shows_in_the_answer() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    gw.primary.fail_always(ProviderErrorKind::Unavailable);
    let body: Value = gw.okta(&request).await.json().await?;
    let value = &body["commands"][0]["value"][0];
    assert_eq!(value["status"], "SUCCESSFUL");
    assert_eq!(value["provider"], "secondary");
    let metadata = value["transactionMetadata"].as_str().unwrap_or("");
    assert!(metadata.contains("Attempts=2"), "{metadata}");
    assert!(
        metadata.contains("Failover=primary:unavailable"),
        "{metadata}"
    );
    assert_eq!(gw.secondary.delivered().len(), 1);
    validates_against_okta_schema(&body, "TelephonyResponse");
    Ok(())
}

#[tokio::test]
async fn when_no_provider_delivers_okta_gets_its_error_object() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    gw.primary.fail_always(ProviderErrorKind::Unavailable);
    gw.secondary.fail_always(ProviderErrorKind::Network);
    let response = gw.okta(&request).await;
    assert_eq!(response.status(), 200, "Okta reads errors from a 200 body");
    let body: Value = response.json().await?;
    assert_error_object(&body);
    let cause = &body["error"]["errorCauses"][0];
    let reason = cause["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("primary:unavailable") && reason.contains("secondary:network"),
        "{reason}"
    );
    // Same shape as Okta's documented error response.
    let Some(documented) = fixture("okta-telephony-error-response.json") else {
        return Ok(());
    };
    for key in ["errorSummary", "errorCauses"] {
        assert_eq!(
            body["error"][key].is_null(),
            documented["error"][key].is_null(),
            "{key}"
        );
    }
    assert!(cause["errorSummary"].is_string());
    Ok(())
}

#[tokio::test]
async fn the_hook_relays_codes_never_free_text() -> TestResult {
    let gw = TestGateway::start().await;
    for (code, template) in [
        (
            "locked",
            "Your bank account is locked. Click https://evil.example/login to unlock it",
        ),
        (
            "11111",
            "Your account is locked: evil.example/login (11111)",
        ),
        ("11111", "Call 111112 to unlock"),
    ] {
        let Some(request) = sample(|r| {
            profile(r)["otpCode"] = json!(code);
            profile(r)["msgTemplate"] = json!(template);
        }) else {
            return Ok(());
        };
        let response = gw.okta(&request).await;
        assert_eq!(response.status(), 200, "Okta reads errors from a 200 body");
        let body: Value = response.json().await?;
        assert_error_object(&body);
    }
    assert!(gw.delivered().is_empty());
    // Okta's own sample still goes through (nothing was spent above).
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let body: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&body), "SUCCESSFUL", "{body}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_hung_provider_still_gets_okta_an_answer_inside_the_deadline() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    // The provider accepts and never answers: after its 1.5 s attempt the code may still
    // arrive, so no second provider is called, and Okta is told PENDING (an error would
    // make it send a second code through its own provider). Its retry of the eventId sends
    // nothing either.
    let gw = TestGateway::with(Setup {
        primary: Arc::new(Hung),
        ..Setup::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let response = gw.okta(&request).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(status_of(&body), "PENDING", "{body}");
    let metadata = body["commands"][0]["value"][0]["transactionMetadata"]
        .as_str()
        .unwrap_or("");
    assert!(metadata.contains("may have been delivered"), "{body}");
    validates_against_okta_schema(&body, "TelephonyResponse");
    assert_eq!(
        elapsed,
        Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    assert_eq!(gw.secondary.attempts(), 0, "no second code");
    let again: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&again), "PENDING", "{again}");
    assert_eq!(gw.secondary.attempts(), 0);
    Ok(())
}

#[tokio::test]
async fn an_expired_code_is_not_sent() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    gw.clock.advance(Duration::from_secs(300));
    let body: Value = gw.okta(&request).await.json().await?;
    assert_error_object(&body);
    assert!(
        body["error"]["errorCauses"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("otpExpires")
    );
    assert!(gw.delivered().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_401_and_sends_nothing() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let url = format!("{}/hooks/okta/telephony", gw.url);
    let missing = gw.client.post(&url).json(&request).send().await?;
    assert_eq!(missing.status(), 401);
    let wrong = gw
        .client
        .post(&url)
        .header("authorization", format!("{OKTA_SECRET}x"))
        .json(&request)
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await?;
    assert_error_object(&body);
    assert!(gw.delivered().is_empty());
    // Nothing spent: the real request still goes through (no cooldown, no duplicate).
    let body: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&body), "SUCCESSFUL");
    Ok(())
}

#[tokio::test]
async fn premium_rate_numbers_are_refused_by_policy() -> TestResult {
    let Some(request) = sample(|r| profile(r)["phoneNumber"] = json!("+81990123456")) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let body: Value = gw.okta(&request).await.json().await?;
    assert_error_object(&body);
    let summary = body["error"]["errorSummary"].as_str().unwrap_or("");
    assert!(summary.contains("policy"), "{summary}");
    assert!(gw.delivered().is_empty());
    Ok(())
}

#[tokio::test]
async fn limits_per_user_and_per_number_name_the_limit() -> TestResult {
    let gw = TestGateway::start().await;
    // Ten sends per Okta user per hour, to any numbers.
    for i in 0..10 {
        let Some(request) = sample(|r| {
            r["eventId"] = json!(format!("u-{i}"));
            profile(r)["phoneNumber"] = json!(format!("98765432{i:02}"));
        }) else {
            return Ok(());
        };
        let body: Value = gw.okta(&request).await.json().await?;
        assert_eq!(status_of(&body), "SUCCESSFUL", "{i}: {body}");
    }
    let Some(request) = sample(|r| {
        r["eventId"] = json!("u-10");
        profile(r)["phoneNumber"] = json!("9876543299");
    }) else {
        return Ok(());
    };
    let body: Value = gw.okta(&request).await.json().await?;
    assert_error_object(&body);
    let reason = body["error"]["errorCauses"][0]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(reason.starts_with("subject rate limit reached"), "{reason}");
    assert_eq!(gw.delivered().len(), 10);

    // The same number again within 30 s: the cooldown.
    let Some(again) = sample(|r| {
        r["eventId"] = json!("other-user");
        r["data"]["userProfile"]["userId"] = json!("00uOTHER");
        profile(r)["phoneNumber"] = json!("9876543200");
    }) else {
        return Ok(());
    };
    let body: Value = gw.okta(&again).await.json().await?;
    let reason = body["error"]["errorCauses"][0]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(reason.starts_with("resend_cooldown rate limit"), "{reason}");
    assert_eq!(gw.delivered().len(), 10);
    Ok(())
}

#[tokio::test]
async fn per_ip_limits_use_oktas_end_user_address() -> TestResult {
    let gw = TestGateway::with(Setup {
        limits: Limits {
            per_client_ip: Some(phone_otp::Quota::per_hour(std::num::NonZeroU32::MIN)),
            ..Limits::danger_none()
        },
        ..Setup::default()
    })
    .await;
    let send = |i: u32, ip: &'static str| {
        sample(move |r| {
            r["eventId"] = json!(format!("ip-{i}"));
            r["data"]["context"]["request"]["ipAddress"] = json!(ip);
        })
    };
    let (Some(a), Some(b), Some(c)) = (
        send(1, "203.0.113.5"),
        send(2, "203.0.113.5"),
        send(3, "198.51.100.7"),
    ) else {
        return Ok(());
    };
    assert_eq!(status_of(&gw.okta(&a).await.json().await?), "SUCCESSFUL");
    let body: Value = gw.okta(&b).await.json().await?;
    let reason = body["error"]["errorCauses"][0]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(reason.starts_with("client_ip rate limit"), "{reason}");
    assert_eq!(status_of(&gw.okta(&c).await.json().await?), "SUCCESSFUL");
    Ok(())
}

/// Okta retries a hook call once after a timeout. When the first attempt failed (every
/// provider down on that instance), the retry on another instance sharing one Redis is
/// sent; a further repeat after delivery is answered PENDING with nothing sent.
#[tokio::test]
async fn oktas_retry_of_a_failed_send_is_delivered_across_instances() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        crate::support::skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    let prefix = format!("okta-retry:{}:", crate::support::unique());
    let store: Arc<dyn phone_otp::OtpStore> =
        Arc::new(phone_otp::RedisStore::connect(&redis_url, &prefix).await?);
    let instance = || {
        TestGateway::with(Setup {
            store: Some(Arc::clone(&store)),
            ..Setup::default()
        })
    };
    let (a, b) = (instance().await, instance().await);
    a.primary.fail_always(ProviderErrorKind::Unavailable);
    a.secondary.fail_always(ProviderErrorKind::Unavailable);
    let failed: Value = a.okta(&request).await.json().await?;
    assert_error_object(&failed);
    // Okta's retry reaches the other instance, whose providers work: it is sent.
    let retried: Value = b.okta(&request).await.json().await?;
    assert_eq!(status_of(&retried), "SUCCESSFUL", "{retried}");
    assert_eq!(b.delivered().len(), 1);
    // A repeat after delivery sends nothing, on either instance.
    a.primary.recover();
    for gw in [&a, &b] {
        let repeat: Value = gw.okta(&request).await.json().await?;
        assert_eq!(status_of(&repeat), "PENDING", "{repeat}");
    }
    assert_eq!(a.delivered().len() + b.delivered().len(), 1);

    // An event that fails twice is not tried a third time: each failure gave Okta its
    // error object (so Okta sent through its own provider); a third call is a duplicate
    // and no provider is called.
    let other = sample(|r| {
        r["eventId"] = json!("event-failing-twice");
        profile(r)["phoneNumber"] = json!("+14155550150");
    })
    .unwrap_or_default();
    b.primary.fail_always(ProviderErrorKind::Unavailable);
    b.secondary.fail_always(ProviderErrorKind::Unavailable);
    for gw in [&a, &b] {
        gw.primary.fail_always(ProviderErrorKind::Unavailable);
        let body: Value = gw.okta(&other).await.json().await?;
        assert_error_object(&body);
        let reason = body["error"]["errorCauses"][0]["reason"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.contains("primary:unavailable"),
            "tried and failed: {reason}"
        );
    }
    let attempts = a.primary.attempts() + b.primary.attempts();
    let third: Value = a.okta(&other).await.json().await?;
    assert_eq!(status_of(&third), "PENDING", "{third}");
    assert_eq!(a.primary.attempts() + b.primary.attempts(), attempts);
    Ok(())
}

#[tokio::test]
async fn a_repeated_event_id_sends_one_message() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::with(Setup {
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    let first: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&first), "SUCCESSFUL");
    let second: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&second), "PENDING", "{second}");
    validates_against_okta_schema(&second, "TelephonyResponse");
    assert_eq!(gw.delivered().len(), 1);
    Ok(())
}

#[tokio::test]
async fn unreadable_requests_get_http_errors_and_send_nothing() -> TestResult {
    let gw = TestGateway::start().await;
    let url = format!("{}/hooks/okta/telephony", gw.url);
    let post = |body: Vec<u8>, content_type: &'static str| {
        gw.client
            .post(&url)
            .header("authorization", OKTA_SECRET)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = post(b"{\"eventId\": ".to_vec(), "application/json").await?;
    assert_eq!(malformed.status(), 400);
    assert_error_object(&malformed.json().await?);

    let text = post(b"{}".to_vec(), "text/plain").await?;
    assert_eq!(text.status(), 415);
    assert_error_object(&text.json().await?);

    let huge = post(vec![b' '; 17 * 1024], "application/json").await?;
    assert_eq!(huge.status(), 413);
    assert_error_object(&huge.json().await?);

    // Readable JSON without what we need: Okta's contract wants 200 and the error object.
    let Some(request) = sample(|r| {
        profile(r).as_object_mut().map(|p| p.remove("phoneNumber"));
    }) else {
        return Ok(());
    };
    let response = gw.okta(&request).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_error_object(&body);
    assert_eq!(
        body["error"]["errorCauses"][0]["location"],
        "data.messageProfile.phoneNumber"
    );
    let Some(mistyped) = sample(|r| profile(r)["otpCode"] = json!(["1"])) else {
        return Ok(());
    };
    let body: Value = gw.okta(&mistyped).await.json().await?;
    assert_eq!(
        body["error"]["errorCauses"][0]["location"],
        "data.messageProfile.otpCode"
    );
    let Some(invalid) = sample(|r| profile(r)["phoneNumber"] = json!("12")) else {
        return Ok(());
    };
    let body: Value = gw.okta(&invalid).await.json().await?;
    assert_error_object(&body);

    assert!(gw.delivered().is_empty());
    // Nothing spent: Okta's real request still goes through.
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    assert_eq!(
        status_of(&gw.okta(&request).await.json().await?),
        "SUCCESSFUL"
    );
    Ok(())
}

#[tokio::test]
async fn the_hook_is_absent_when_not_configured() -> TestResult {
    let key = phone_otp::HmacKey::new(1, &secrecy::SecretSlice::from(vec![1u8; 32]))?;
    let otp = phone_otp::OtpService::builder()
        .key_ring(phone_otp::KeyRing::new(key))
        .provider(phone_otp::StubProvider::new())
        .build()?;
    let gateway = phone_otp_gateway::Gateway::builder(otp).build()?;
    let url = crate::support::spawn_gateway(&gateway).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/hooks/okta/telephony"))
        .header("authorization", OKTA_SECRET)
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    Ok(())
}

/// Okta's console preview sends a fictional number: off by default it is refused as a
/// number; with the dry-run on it is answered `SUCCESSFUL` by provider `dry-run`, valid
/// against Okta's schema, nothing sent, and audited as a dry run.
#[tokio::test]
async fn oktas_preview_is_a_dry_run_when_configured() -> TestResult {
    let preview = |number: &'static str| sample(move |r| profile(r)["phoneNumber"] = json!(number));
    let (Some(guide), Some(reference)) = (preview("+15555551212"), preview("9876543210")) else {
        return Ok(());
    };
    // Off by default: the guide's number is not a number.
    let gw = TestGateway::start().await;
    let body: Value = gw.okta(&guide).await.json().await?;
    assert_error_object(&body);

    let db = crate::db::sqlite().await.unwrap();
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        configure: Box::new(|builder| {
            builder.okta(
                phone_otp_gateway::OktaHook::new(
                    "Authorization",
                    secrecy::SecretString::from(OKTA_SECRET),
                )
                .dry_run_for(phone_otp_gateway::OKTA_PREVIEW_NUMBERS),
            )
        }),
        ..Setup::default()
    })
    .await;
    for request in [&guide, &reference] {
        let response = gw.okta(request).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await?;
        assert_eq!(status_of(&body), "SUCCESSFUL", "{body}");
        assert_eq!(body["commands"][0]["value"][0]["provider"], "dry-run");
        validates_against_okta_schema(&body, "TelephonyResponse");
    }
    assert!(gw.delivered().is_empty(), "a dry run sends nothing");
    let records = db.audit_records(0, i64::MAX).await?;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.outcome, "dry_run");
        assert_eq!(record.system.as_deref(), Some("okta"));
        assert_eq!(record.provider, None, "not a send in the usage ledger");
    }
    // A real number still goes out.
    let real = sample(|r| profile(r)["phoneNumber"] = json!("+14155550140")).unwrap_or_default();
    let body: Value = gw.okta(&real).await.json().await?;
    assert_eq!(body["commands"][0]["value"][0]["provider"], "primary");
    assert_eq!(gw.delivered().len(), 1);
    Ok(())
}

/// A wrong hook secret counts against its network: after 30 a minute even the right
/// secret waits (429 in Okta's error shape, `Retry-After`), and nothing is sent.
#[tokio::test]
async fn guessing_the_hook_secret_is_throttled_per_network() -> TestResult {
    let Some(request) = sample(|_| {}) else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let guess = |n: u32| {
        gw.client
            .post(format!("{}/hooks/okta/telephony", gw.url))
            .header("authorization", format!("Basic guess-{n:04}"))
            .json(&request)
            .send()
    };
    let mut statuses = Vec::new();
    for n in 0..40 {
        statuses.push(guess(n).await?.status().as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = gw.okta(&request).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_error_object(&refused.json().await?);
    assert!(gw.delivered().is_empty());
    // Once its failures age out (well inside the sample code's lifetime), Okta is heard.
    gw.clock.advance(Duration::from_secs(100));
    let body: Value = gw.okta(&request).await.json().await?;
    assert_eq!(status_of(&body), "SUCCESSFUL", "{body}");
    Ok(())
}
