//! `POST /v1/messages`: a code an internal system generated, delivered end to end.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{API_TOKEN, TestGateway, TestResult};

const PATH: &str = "/v1/messages";

fn message(to: &str) -> Value {
    json!({"to": to, "code": "482913", "channel": "sms", "purpose": "sign_in", "locale": "ja-JP", "subject": "emp-7"})
}

#[tokio::test]
async fn delivers_through_the_template_and_answers_what_was_sent() -> TestResult {
    let gw = TestGateway::start().await;
    let response = gw.post(PATH, API_TOKEN, &message("+819012345678")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["provider"], "primary");
    assert_eq!(body["message_id"], "primary-1");
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["to"], "+8190****5678");
    assert_eq!(body["encoding"], "ucs2", "the Japanese template");
    assert!(body["segments"].as_u64() >= Some(1));
    let sent = gw.primary.delivered();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].text().expose_secret().contains("482913"));

    // Voice, national number in the default region (IN here).
    let voice = json!({"to": "9876543210", "code": "482913", "channel": "voice"});
    let body: Value = gw.post(PATH, API_TOKEN, &voice).await.json().await?;
    assert_eq!(body["channel"], "voice");
    assert_eq!(body["segments"], Value::Null);
    assert_eq!(gw.primary.delivered()[1].to().e164(), "+919876543210");
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_sends_nothing() -> TestResult {
    let gw = TestGateway::start().await;
    let url = format!("{}{PATH}", gw.url);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"to": "+819012345678"}), 422, "invalid_field"),
        (
            json!({"to": "+819012345678", "code": "482913", "channel": "fax"}),
            422,
            "invalid_field",
        ),
        (
            json!({"to": "+819012345678", "code": 482913}),
            422,
            "invalid_field",
        ),
        (
            json!({"to": "+819012345678", "code": "482913", "extra": 1}),
            422,
            "invalid_field",
        ),
        (
            json!({"to": "not a number", "code": "482913"}),
            422,
            "invalid_number",
        ),
        (
            json!({"to": "+819012345678", "code": "48"}),
            422,
            "invalid_request",
        ),
        (
            json!({"to": "+81990123456", "code": "482913"}),
            422,
            "destination_refused",
        ),
    ];
    for (body, status, code) in cases {
        let response = gw.post(PATH, API_TOKEN, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let answer: Value = response.json().await?;
        assert_eq!(answer["code"], code, "{body}");
        assert!(answer["detail"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let raw = |body: &'static [u8], content_type: &'static str| {
        gw.client
            .post(&url)
            .bearer_auth(API_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(raw(b"{\"to\":", "application/json").await?.status(), 400);
    assert_eq!(raw(b"{}", "text/plain").await?.status(), 415);
    let huge = gw
        .client
        .post(&url)
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 20_000])
        .send()
        .await?;
    assert_eq!(huge.status(), 413);
    let answer: Value = huge.json().await?;
    assert_eq!(answer["code"], "body_too_large");
    assert_eq!(
        gw.post(PATH, "not-the-token-at-all", &message("+819012345678"))
            .await
            .status(),
        401
    );
    assert!(gw.delivered().is_empty());
    // Nothing was spent on the number.
    assert_eq!(
        gw.post(PATH, API_TOKEN, &message("+819012345678"))
            .await
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_request_ids_send_once() -> TestResult {
    let gw = TestGateway::start().await;
    assert_eq!(
        gw.post(PATH, API_TOKEN, &message("+819012345678"))
            .await
            .status(),
        200
    );
    let response = gw.post(PATH, API_TOKEN, &message("+819012345678")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    let body: Value = response.json().await?;
    assert_eq!(body["retry_after"], 30);
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("resend_cooldown")
    );

    let mut once = message("+819012345679");
    once["request_id"] = json!("job-17");
    assert_eq!(gw.post(PATH, API_TOKEN, &once).await.status(), 200);
    let again = gw.post(PATH, API_TOKEN, &once).await;
    assert_eq!(again.status(), 409);
    assert_eq!(gw.delivered().len(), 2);
    Ok(())
}

/// A provider that accepts and never answers: the send's outcome is unknown (202, not an
/// error that invites a retry), no second provider is called (no second code), the
/// `Idempotency-Key` stays spent so the client's retry sends nothing, and the audit trail
/// and ledger count it as `unknown`. (Real time, not paused: the database's bounded waits
/// would fire while SQLite works on its own thread. The one wait is the 1.5 s attempt.)
#[tokio::test]
async fn a_stalled_provider_is_an_unknown_outcome_and_a_retry_sends_nothing() -> TestResult {
    use std::sync::Arc;

    use phone_otp_gateway::db::Dimension;

    let db = crate::db::sqlite().await.unwrap();
    let gw = TestGateway::with(crate::support::Setup {
        keys: Some(db.clone()),
        primary: Arc::new(crate::support::Hung),
        ..crate::support::Setup::default()
    })
    .await;
    let send = |key: &str| {
        gw.client
            .post(format!("{}{PATH}", gw.url))
            .bearer_auth(API_TOKEN)
            .header("Idempotency-Key", key)
            .json(&message("+819012345678"))
            .send()
    };
    let response = send("order-7781-otp").await?;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await?;
    assert_eq!(body["outcome"], "unknown", "{body}");
    assert_eq!(body["attempts"][0], "hung:timeout", "{body}");
    assert_eq!(gw.secondary.attempts(), 0, "no second code");

    // The client retries the same request: nothing is sent, and it is told why.
    let retry = send("order-7781-otp").await?;
    assert_eq!(retry.status(), 409);
    let body: Value = retry.json().await?;
    assert_eq!(body["code"], "duplicate_request", "{body}");
    assert_eq!(gw.secondary.attempts(), 0);

    // A key that is not a header token, or that disagrees with the body's request_id, is
    // refused before anything is spent.
    let bad = send("has space").await?;
    assert_eq!(bad.status(), 422);
    let mut both = message("+819012345679");
    both["request_id"] = json!("another-key");
    let differ = gw
        .client
        .post(format!("{}{PATH}", gw.url))
        .bearer_auth(API_TOKEN)
        .header("Idempotency-Key", "one-key")
        .json(&both)
        .send()
        .await?;
    assert_eq!(differ.status(), 422);
    assert_eq!(gw.secondary.attempts(), 0);

    let records = db.audit_records(0, i64::MAX).await?;
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "unknown").count(),
        1,
        "{outcomes:?}"
    );
    let report = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    assert_eq!((report.rows[0].sends, report.rows[0].unknown), (0, 1));
    Ok(())
}

/// `/v1` errors are RFC 9457 problem details: `application/problem+json` with `type`,
/// `title`, `status`, `detail`, the stable `code`, and `retry_after` beside `Retry-After`
/// when waiting helps. The Auth0 hook keeps the envelope its Actions read.
#[tokio::test]
async fn v1_errors_are_problem_details_and_auth0_keeps_its_envelope() -> TestResult {
    let gw = TestGateway::start().await;
    let refused = gw
        .post(
            PATH,
            API_TOKEN,
            &json!({"to": "not a number", "code": "482913"}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = refused.json().await?;
    assert_eq!(body["type"], "urn:phone-otp:problem:invalid_number");
    assert_eq!(body["title"], "Invalid number");
    assert_eq!(body["status"], 422);
    assert_eq!(body["code"], "invalid_number");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body.get("error").is_none(), "{body}");

    // A limit: 429 with both forms of the wait.
    gw.post(PATH, API_TOKEN, &message("+819012345601")).await;
    let limited = gw.post(PATH, API_TOKEN, &message("+819012345601")).await;
    assert_eq!(limited.status(), 429);
    let wait = limited.headers()["retry-after"].to_str()?.to_owned();
    let body: Value = limited.json().await?;
    assert_eq!(body["retry_after"].to_string(), wait);
    assert_eq!(body["type"], "urn:phone-otp:problem:rate_limited");

    // An extractor's refusal (no credential) has the same shape.
    let anonymous = gw.post(PATH, "", &message("+819012345602")).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );

    let auth0 = gw
        .post(
            "/hooks/auth0/phone-message",
            crate::support::AUTH0_TOKEN,
            &json!({"recipient": "not a number", "delivery_method": "text", "message_type": "otp_verify", "code": "123456"}),
        )
        .await;
    assert_eq!(auth0.status(), 422);
    assert_eq!(auth0.headers()["content-type"], "application/json");
    let body: Value = auth0.json().await?;
    assert_eq!(body["error"]["code"], "invalid_number", "{body}");
    assert!(body.get("type").is_none(), "{body}");
    Ok(())
}
