//! The challenge endpoints end to end: start, verify (each typed outcome), resend.

use std::time::Duration;

use base64::Engine as _;
use phone_otp::PhoneNumber;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{API_TOKEN, TestGateway, TestResult};

fn code_for(gw: &TestGateway, to: &str) -> String {
    let to = PhoneNumber::parse(to).unwrap();
    gw.primary
        .last_code_for(&to)
        .expect("a code was sent")
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn start_verify_and_every_outcome() -> TestResult {
    let gw = TestGateway::start().await;
    let started = gw
        .post(
            "/v1/challenges",
            API_TOKEN,
            &json!({"to": "+819012345678", "subject": "user-42", "client_ip": "203.0.113.9"}),
        )
        .await;
    assert_eq!(started.status(), 201);
    let started: Value = started.json().await?;
    let id = started["challenge_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 44);
    assert_eq!(started["to"], "+8190****5678");
    assert_eq!(started["channel"], "sms");
    assert_eq!(started["expires_at"], "2022-01-28T21:48:40Z");
    let code = code_for(&gw, "+819012345678");

    let verify = format!("/v1/challenges/{id}/verify");
    let wrong: String = code
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let response = gw.post(&verify, API_TOKEN, &json!({"code": wrong})).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body, json!({"outcome": "mismatch", "attempts_left": 4}));
    let right = gw.post(&verify, API_TOKEN, &json!({"code": code})).await;
    assert_eq!(right.status(), 200);
    let body: Value = right.json().await?;
    assert_eq!(
        body,
        json!({"outcome": "verified", "purpose": "sign_in", "subject": "user-42"})
    );
    let again = gw.post(&verify, API_TOKEN, &json!({"code": code})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await?["outcome"], "already_used");

    // An id that parses but names nothing, and one that does not parse: both 404.
    let mut forged = id.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged)?;
    let response = gw
        .post(
            &format!("/v1/challenges/{forged}/verify"),
            API_TOKEN,
            &json!({"code": "123456"}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let response = gw
        .post(
            "/v1/challenges/nonsense/verify",
            API_TOKEN,
            &json!({"code": "123456"}),
        )
        .await;
    assert_eq!(response.status(), 404);

    // Expired.
    let started: Value = gw
        .post(
            "/v1/challenges",
            API_TOKEN,
            &json!({"to": "+819012345679", "channel": "voice"}),
        )
        .await
        .json()
        .await?;
    assert_eq!(started["channel"], "voice");
    let id = started["challenge_id"].as_str().unwrap();
    gw.clock.advance(Duration::from_secs(301));
    let response = gw
        .post(
            &format!("/v1/challenges/{id}/verify"),
            API_TOKEN,
            &json!({"code": "123456"}),
        )
        .await;
    assert_eq!(response.status(), 410);
    Ok(())
}

#[tokio::test]
async fn resend_obeys_the_cooldown_and_context_binds() -> TestResult {
    let gw = TestGateway::start().await;
    let context = base64::engine::general_purpose::STANDARD.encode(b"amount=120.00 EUR;payee=ACME");
    let started: Value = gw
        .post(
            "/v1/challenges",
            API_TOKEN,
            &json!({"to": "+819012345678", "purpose": "transaction_approval", "context": context}),
        )
        .await
        .json()
        .await?;
    let id = started["challenge_id"].as_str().unwrap().to_owned();
    let resend = format!("/v1/challenges/{id}/resend");
    // Within 30 s: the cooldown, with Retry-After.
    let response = gw
        .post(&resend, API_TOKEN, &json!({"context": context}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    // A context-bound challenge refuses a plain resend.
    gw.clock.advance(Duration::from_secs(30));
    let response = gw.post(&resend, API_TOKEN, &json!({})).await;
    assert_eq!(response.status(), 422);
    let response = gw
        .post(&resend, API_TOKEN, &json!({"context": context}))
        .await;
    assert_eq!(response.status(), 200);
    let code = code_for(&gw, "+819012345678");
    // The code only verifies with the same context.
    let verify = format!("/v1/challenges/{id}/verify");
    let other = base64::engine::general_purpose::STANDARD.encode(b"amount=9999.00 EUR;payee=EVIL");
    let response = gw
        .post(&verify, API_TOKEN, &json!({"code": code, "context": other}))
        .await;
    assert_eq!(response.status(), 422);
    let response = gw
        .post(
            &verify,
            API_TOKEN,
            &json!({"code": code, "context": context}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(gw.primary.delivered().len(), 2);
    Ok(())
}

#[tokio::test]
async fn challenge_endpoints_need_the_token() -> TestResult {
    let gw = TestGateway::start().await;
    let response = gw
        .post(
            "/v1/challenges",
            "not-the-api-token-at-all",
            &json!({"to": "+819012345678"}),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(gw.delivered().is_empty());
    Ok(())
}

/// A provider that accepts and never answers: the start answers 202 with the kept
/// challenge's id and the outcome unknown (the code may arrive), no second provider is
/// called, and the challenge is live (a wrong code is a mismatch, not "not found").
#[tokio::test(start_paused = true)]
async fn a_stalled_provider_keeps_the_challenge_and_says_the_outcome_is_unknown() -> TestResult {
    let gw = TestGateway::with(crate::support::Setup {
        primary: std::sync::Arc::new(crate::support::Hung),
        ..crate::support::Setup::default()
    })
    .await;
    let started = gw
        .post("/v1/challenges", API_TOKEN, &json!({"to": "+819012345678"}))
        .await;
    assert_eq!(started.status(), 202);
    let body: Value = started.json().await?;
    assert_eq!(body["outcome"], "unknown", "{body}");
    assert_eq!(body["attempts"][0], "hung:timeout", "{body}");
    assert_eq!(gw.secondary.attempts(), 0, "no second code");
    let id = body["challenge_id"].as_str().unwrap().to_owned();
    let wrong = gw
        .post(
            &format!("/v1/challenges/{id}/verify"),
            API_TOKEN,
            &json!({"code": "000000"}),
        )
        .await;
    assert_eq!(wrong.status(), 422);
    let wrong: Value = wrong.json().await?;
    assert_eq!(wrong["outcome"], "mismatch", "{wrong}");
    Ok(())
}
