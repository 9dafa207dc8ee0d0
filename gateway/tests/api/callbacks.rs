//! Delivery receipts: Twilio's signed status callback and NTT CPaaS delivery reports,
//! counted per provider and country in `/metrics`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;

use crate::support::{
    NTT_CALLBACK_TOKEN, Samples, TWILIO_CALLBACK_URL, TWILIO_TOKEN, TestGateway, TestResult,
    sample_value as value,
};

/// Signs a form callback as Twilio does (PROVIDERS.md section 3), independently of the
/// gateway's own validator.
pub fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub async fn post_twilio(
    gw: &TestGateway,
    query: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = gw
        .client
        .post(format!("{}/callbacks/twilio/status{query}", gw.url))
        .form(params);
    if let Some(signature) = signature {
        request = request.header("x-twilio-signature", signature);
    }
    request.send().await.unwrap()
}

async fn metrics(gw: &TestGateway) -> Option<Samples> {
    gw.metrics().await
}

#[tokio::test]
async fn twilio_callbacks_are_checked_against_the_published_test_vector() -> TestResult {
    let gw = TestGateway::start().await;
    // PROVIDERS.md: URL https://mycompany.com/myapp.php?foo=1&bar=2, token 12345.
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ];
    let vector = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=".to_owned();
    assert_eq!(
        twilio_signature(&format!("{TWILIO_CALLBACK_URL}?foo=1&bar=2"), &params),
        vector
    );
    let response = post_twilio(&gw, "?foo=1&bar=2", &params, Some(vector.clone())).await;
    assert_eq!(response.status(), 204);

    // Forged: a parameter changed, the query changed, or no signature at all.
    let mut forged = params;
    forged[2] = ("Digits", "9999");
    assert_eq!(
        post_twilio(&gw, "?foo=1&bar=2", &forged, Some(vector.clone()))
            .await
            .status(),
        403
    );
    assert_eq!(
        post_twilio(&gw, "?foo=1&bar=3", &params, Some(vector))
            .await
            .status(),
        403
    );
    assert_eq!(
        post_twilio(&gw, "?foo=1&bar=2", &params, None)
            .await
            .status(),
        403
    );

    let Some(samples) = metrics(&gw).await else {
        return Ok(());
    };
    assert_eq!(
        value(
            &samples,
            "phone_otp_delivery_reports_refused_total",
            &[("provider", "twilio")]
        ),
        3.0
    );
    Ok(())
}

#[tokio::test]
async fn receipts_are_counted_per_provider_and_country() -> TestResult {
    let gw = TestGateway::start().await;
    let sign_and_post = |to: &'static str, status: &'static str| {
        let params = [
            ("MessageSid", "SM00000000000000000000000000000001"),
            ("MessageStatus", status),
            ("To", to),
            ("From", "+15005550006"),
        ];
        let signature = twilio_signature(TWILIO_CALLBACK_URL, &params);
        let gw = &gw;
        async move { post_twilio(gw, "", &params, Some(signature)).await.status() }
    };
    assert_eq!(sign_and_post("+819012345678", "sent").await, 204);
    assert_eq!(sign_and_post("+819012345678", "delivered").await, 204);
    assert_eq!(sign_and_post("+14155550123", "undelivered").await, 204);
    assert_eq!(sign_and_post("+14155550124", "failed").await, 204);

    let reports = json!({"results": [
        {"messageId": "m1", "to": "41793026727", "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"}},
        {"messageId": "m2", "to": "819012345678", "status": {"groupId": 5, "groupName": "REJECTED", "id": 6, "name": "REJECTED_NETWORK"}},
        {"messageId": "m3", "to": "819012345679", "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE"}}
    ]});
    let url = format!("{}/callbacks/ntt-cpaas/delivery", gw.url);
    let by_header = gw
        .client
        .post(&url)
        .header("x-callback-token", NTT_CALLBACK_TOKEN)
        .json(&reports)
        .send()
        .await?;
    assert_eq!(by_header.status(), 204);
    let by_query = gw
        .client
        .post(format!("{url}?token={NTT_CALLBACK_TOKEN}"))
        .json(&reports)
        .send()
        .await?;
    assert_eq!(by_query.status(), 204);
    let wrong = gw
        .client
        .post(format!("{url}?token=guess"))
        .json(&reports)
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);

    let Some(samples) = metrics(&gw).await else {
        return Ok(());
    };
    let reports = "phone_otp_delivery_reports_total";
    let count = |provider, country, result| {
        value(
            &samples,
            reports,
            &[
                ("provider", provider),
                ("country", country),
                ("result", result),
            ],
        )
    };
    assert_eq!(
        count("twilio", "JP", "delivered"),
        1.0,
        "`sent` is not final"
    );
    assert_eq!(count("twilio", "US", "undelivered"), 2.0);
    // The same reports came twice (by header, then by query): counted once.
    assert_eq!(count("ntt-cpaas", "CH", "delivered"), 1.0);
    assert_eq!(
        count("ntt-cpaas", "JP", "undelivered"),
        1.0,
        "PENDING is not final"
    );
    assert_eq!(
        value(
            &samples,
            "phone_otp_delivery_reports_refused_total",
            &[("provider", "ntt-cpaas")]
        ),
        1.0
    );
    Ok(())
}

/// A signed Twilio callback has no timestamp, so it can be replayed; providers also repeat
/// callbacks. Each message and status counts once, across two instances on one Redis.
#[tokio::test]
async fn repeated_and_replayed_receipts_count_once() -> TestResult {
    use std::sync::Arc;
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        crate::support::skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    let prefix = format!("receipts:{}:", crate::support::unique());
    let store: Arc<dyn phone_otp::OtpStore> =
        Arc::new(phone_otp::RedisStore::connect(&redis_url, &prefix).await?);
    let instance = || {
        TestGateway::with(crate::support::Setup {
            store: Some(Arc::clone(&store)),
            ..crate::support::Setup::default()
        })
    };
    let (a, b) = (instance().await, instance().await);
    let params = [
        ("MessageSid", "SM00000000000000000000000000000009"),
        ("MessageStatus", "delivered"),
        ("To", "+819012345678"),
    ];
    let signature = twilio_signature(TWILIO_CALLBACK_URL, &params);
    for gw in [&a, &b, &a, &b] {
        let status = post_twilio(gw, "", &params, Some(signature.clone()))
            .await
            .status();
        assert_eq!(status, 204);
    }
    let report = json!({"results": [{"messageId": "m9", "to": "819012345678",
        "status": {"groupName": "DELIVERED"}}]});
    for gw in [&a, &b, &b] {
        let response = gw
            .client
            .post(format!("{}/callbacks/ntt-cpaas/delivery", gw.url))
            .header("x-callback-token", NTT_CALLBACK_TOKEN)
            .json(&report)
            .send()
            .await?;
        assert_eq!(response.status(), 204);
    }
    let (Some(on_a), Some(on_b)) = (metrics(&a).await, metrics(&b).await) else {
        return Ok(());
    };
    let total = |provider| {
        let labels = [
            ("provider", provider),
            ("country", "JP"),
            ("result", "delivered"),
        ];
        value(&on_a, "phone_otp_delivery_reports_total", &labels)
            + value(&on_b, "phone_otp_delivery_reports_total", &labels)
    };
    assert_eq!(total("twilio"), 1.0);
    assert_eq!(total("ntt-cpaas"), 1.0);
    // A new status of the same message is its own receipt.
    let failed = [
        ("MessageSid", "SM00000000000000000000000000000009"),
        ("MessageStatus", "undelivered"),
        ("To", "+819012345678"),
    ];
    let signature = twilio_signature(TWILIO_CALLBACK_URL, &failed);
    assert_eq!(
        post_twilio(&b, "", &failed, Some(signature)).await.status(),
        204
    );
    let Some(on_b) = metrics(&b).await else {
        return Ok(());
    };
    let labels = [
        ("provider", "twilio"),
        ("country", "JP"),
        ("result", "undelivered"),
    ];
    assert_eq!(
        value(&on_b, "phone_otp_delivery_reports_total", &labels),
        1.0
    );
    Ok(())
}
