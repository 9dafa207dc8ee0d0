//! `/metrics`, `/healthz`, `/readyz`, and what every endpoint shares (request ids, 404s).

use phone_otp::ProviderErrorKind;
use serde_json::{Value, json};

use crate::support::{TestGateway, TestResult, fixture, parse_prometheus, sample_value as value};

#[tokio::test]
async fn metrics_count_requests_outcomes_providers_and_countries() -> TestResult {
    let Some(request) = fixture("okta-telephony-request.json") else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    // delivered by primary
    gw.okta(&request).await;
    // failover: primary fails, secondary delivers (another number and event)
    gw.primary.fail_next(ProviderErrorKind::Unavailable);
    let mut second = request.clone();
    second["eventId"] = json!("second");
    second["data"]["userProfile"]["userId"] = json!("00u2");
    second["data"]["messageProfile"]["phoneNumber"] = json!("9876543201");
    gw.okta(&second).await;
    // unauthorized
    gw.client
        .post(format!("{}/hooks/okta/telephony", gw.url))
        .json(&request)
        .send()
        .await?;

    let response = gw.client.get(format!("{}/metrics", gw.url)).send().await?;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await?;
    let Some(samples) = parse_prometheus(&text) else {
        return Ok(());
    };
    let okta = [("endpoint", "okta_telephony")];
    let requests = "phone_otp_gateway_requests_total";
    // The library's refusals per limit are exposed, each kind with its own series.
    let refusals = "phone_otp_refusals_total";
    assert_eq!(value(&samples, refusals, &[("limit", "conversion")]), 0.0);
    assert!(text.contains("phone_otp_refusals_total{limit=\"conversion\"} 0"));
    assert!(text.contains("phone_otp_refusals_total{limit=\"budget\"} 0"));
    assert_eq!(
        value(&samples, requests, &[okta[0], ("outcome", "delivered")]),
        2.0
    );
    assert_eq!(
        value(&samples, requests, &[okta[0], ("outcome", "unauthorized")]),
        1.0
    );
    assert_eq!(
        gw.gateway.metrics().requests("okta_telephony", "delivered"),
        2
    );
    // Okta's "total" and "mean duration": the histogram's count and sum.
    let duration = "phone_otp_gateway_request_duration_seconds";
    assert_eq!(value(&samples, &format!("{duration}_count"), &okta), 3.0);
    assert!(value(&samples, &format!("{duration}_sum"), &okta) > 0.0);
    assert_eq!(
        value(
            &samples,
            &format!("{duration}_bucket"),
            &[okta[0], ("le", "+Inf")]
        ),
        3.0
    );

    let primary = [("provider", "primary")];
    let secondary = [("provider", "secondary")];
    assert_eq!(
        value(&samples, "phone_otp_provider_attempts_total", &primary),
        2.0
    );
    assert_eq!(
        value(&samples, "phone_otp_provider_successes_total", &primary),
        1.0
    );
    assert_eq!(
        value(&samples, "phone_otp_provider_successes_total", &secondary),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "phone_otp_provider_failures_total",
            &[primary[0], ("kind", "unavailable")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "phone_otp_provider_latency_seconds_count",
            &primary
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "phone_otp_provider_latency_seconds_bucket",
            &[primary[0], ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "phone_otp_country_sends_total",
            &[("country", "IN"), ("result", "accepted")]
        ),
        2.0
    );
    // No number, code or text in the metrics.
    assert!(!text.contains("9876543"));
    assert!(!text.contains("11111"));
    Ok(())
}

#[tokio::test]
async fn refusals_are_counted_per_limit() -> TestResult {
    let gw = TestGateway::start().await;
    let body = json!({"to": "+819012345678", "code": "482913"});
    assert_eq!(
        gw.post("/v1/messages", crate::support::API_TOKEN, &body)
            .await
            .status(),
        200
    );
    // Within the 30-second cooldown of that number.
    assert_eq!(
        gw.post("/v1/messages", crate::support::API_TOKEN, &body)
            .await
            .status(),
        429
    );
    let text = gw
        .client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await?
        .text()
        .await?;
    let Some(samples) = parse_prometheus(&text) else {
        return Ok(());
    };
    let refusals = "phone_otp_refusals_total";
    assert_eq!(
        value(&samples, refusals, &[("limit", "resend_cooldown")]),
        1.0
    );
    assert_eq!(value(&samples, refusals, &[("limit", "destination")]), 0.0);
    Ok(())
}

#[tokio::test]
async fn health_and_readiness() -> TestResult {
    let gw = TestGateway::start().await;
    let health = gw.client.get(format!("{}/healthz", gw.url)).send().await?;
    assert_eq!(health.status(), 200);
    let ready = gw.client.get(format!("{}/readyz", gw.url)).send().await?;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await?;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"]["state"], "up");
    assert!(
        body["checks"].get("database").is_none(),
        "no database configured: {body}"
    );
    // With a database, it is checked too.
    let db = crate::db::sqlite().await.unwrap();
    let with_db = TestGateway::with(crate::support::Setup {
        keys: Some(db),
        ..crate::support::Setup::default()
    })
    .await;
    let body: Value = with_db
        .client
        .get(format!("{}/readyz", with_db.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["checks"]["database"]["state"], "up", "{body}");
    Ok(())
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn not_ready_while_redis_is_down() -> TestResult {
    // Nothing listens on port 1: the store is configured but unreachable.
    let store = match phone_otp::RedisStore::connect("redis://127.0.0.1:1/0", "t:").await {
        Ok(store) => store,
        // Refused at connect time is just as unready; nothing to serve then.
        Err(_) => return Ok(()),
    };
    let key = phone_otp::HmacKey::new(1, &secrecy::SecretSlice::from(vec![3u8; 32]))?;
    let otp = phone_otp::OtpService::builder()
        .key_ring(phone_otp::KeyRing::new(key))
        .provider(phone_otp::StubProvider::new())
        .store(store)
        .build()?;
    let gateway = phone_otp_gateway::Gateway::builder(otp).build()?;
    let url = crate::support::spawn_gateway(&gateway).await;
    let ready = reqwest::get(format!("{url}/readyz")).await?;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await?;
    assert_eq!(body["error"]["code"], "store_unavailable");
    Ok(())
}

#[tokio::test]
async fn unknown_paths_are_json_404s_and_every_answer_has_a_request_id() -> TestResult {
    let gw = TestGateway::start().await;
    let response = gw.client.get(format!("{}/nope", gw.url)).send().await?;
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"].to_str()?.to_owned();
    assert!(!id.is_empty());
    let body: Value = response.json().await?;
    assert_eq!(body["code"], "not_found");
    // A caller's own request id is kept.
    let response = gw
        .client
        .get(format!("{}/healthz", gw.url))
        .header("x-request-id", "caller-123")
        .send()
        .await?;
    assert_eq!(response.headers()["x-request-id"], "caller-123");
    Ok(())
}

/// The published contract is the one the gateway serves, and the committed copy is what
/// the code generates (regenerate with
/// `cargo run -p phone-otp-gateway -- openapi > gateway/openapi.json`). It names every `/v1`
/// operation the router serves.
#[tokio::test]
async fn the_committed_contract_is_the_served_one() -> TestResult {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))?;
    let generated = phone_otp_gateway::openapi::document();
    assert!(
        committed == generated,
        "gateway/openapi.json is stale: run `cargo run -p phone-otp-gateway -- openapi > gateway/openapi.json`"
    );
    let gw = TestGateway::start().await;
    let served = gw
        .client
        .get(format!("{}/openapi.json", gw.url))
        .send()
        .await?;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.text().await?, generated);
    let document: Value = serde_json::from_str(generated)?;
    assert_eq!(document["openapi"], "3.1.0");
    let mut paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/v1/challenges",
            "/v1/challenges/{id}/resend",
            "/v1/challenges/{id}/verify",
            "/v1/messages",
            "/v1/totp/confirm",
            "/v1/totp/disable",
            "/v1/totp/enroll",
            "/v1/totp/verify",
            "/v1/usage",
        ]
    );
    // Every operation names its scope for both credentials, and answers problems as
    // problem details.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation["security"].as_array().unwrap();
            assert_eq!(security.len(), 2, "{method} {path}");
            assert!(
                operation["responses"]["401"]["content"]["application/problem+json"].is_object(),
                "{method} {path}"
            );
        }
    }
    Ok(())
}
