//! `POST /hooks/auth0/phone-message`, driven by the shipped Actions under Node.

use std::path::PathBuf;

use phone_otp::{Channel, ProviderErrorKind};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::{AUTH0_TOKEN, TestGateway, TestResult, fixture, skip_loudly, temp_file};

const PATH: &str = "/hooks/auth0/phone-message";

/// What the Action did: `retry`/`drop` reasons or the error it threw.
#[derive(Debug, serde::Deserialize)]
struct ActionCalls {
    retry: Option<String>,
    drop: Option<String>,
    threw: Option<String>,
}

/// Runs `action` (a file in examples/auth0) with `event` against the gateway under Node,
/// as Auth0 would; `None` when Node is missing (said loudly; a failure under CI).
async fn run_action(
    gw: &TestGateway,
    action: &str,
    handler: &str,
    event: &Value,
) -> Option<ActionCalls> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let event_file = temp_file("event.json", &event.to_string());
    let output = tokio::process::Command::new("node")
        .arg(dir.join("tests/api/run_action.js"))
        .arg(dir.join("examples/auth0").join(action))
        .arg(handler)
        .arg(&event_file)
        .arg(&gw.url)
        .arg(AUTH0_TOKEN)
        .output()
        .await;
    let _ = std::fs::remove_file(&event_file);
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            skip_loudly(&format!("node is not runnable: {e}"));
            return None;
        }
    };
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

fn custom_event(recipient: &str) -> Option<Value> {
    let mut event = fixture("auth0-custom-phone-provider-event.json")?;
    event["notification"]["recipient"] = json!(recipient);
    Some(event)
}

#[tokio::test]
async fn the_custom_phone_provider_action_delivers_through_the_gateway() -> TestResult {
    let Some(event) = custom_event("+14155550123") else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let Some(calls) = run_action(
        &gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    else {
        return Ok(());
    };
    assert!(
        calls.retry.is_none() && calls.drop.is_none() && calls.threw.is_none(),
        "{calls:?}"
    );
    let sent = gw.primary.delivered();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to().e164(), "+14155550123");
    assert_eq!(sent[0].channel(), Channel::Sms);
    assert_eq!(
        sent[0].text().expose_secret(),
        "123456 is your verification code for Example App."
    );
    Ok(())
}

#[tokio::test]
async fn the_action_drops_what_cannot_be_delivered_and_retries_what_may_be() -> TestResult {
    // The fixture as it is: Auth0's fictional +1 555-555-0123 is not a valid number.
    let Some(event) = fixture("auth0-custom-phone-provider-event.json") else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let Some(calls) = run_action(
        &gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    else {
        return Ok(());
    };
    let dropped = calls.drop.unwrap_or_default();
    assert!(dropped.contains("422 invalid_number"), "{dropped}");
    assert!(calls.retry.is_none());

    // Every provider down: worth retrying.
    gw.primary.fail_always(ProviderErrorKind::Unavailable);
    gw.secondary.fail_always(ProviderErrorKind::Unavailable);
    let Some(event) = custom_event("+14155550124") else {
        return Ok(());
    };
    let calls = run_action(
        &gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    .unwrap();
    let retried = calls.retry.unwrap_or_default();
    assert!(retried.contains("502 delivery_failed"), "{retried}");
    assert!(calls.drop.is_none());

    // A send limit: 429, retried later by Auth0.
    gw.primary.recover();
    let Some(event) = custom_event("+14155550125") else {
        return Ok(());
    };
    let first = run_action(
        &gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    .unwrap();
    assert!(first.retry.is_none() && first.drop.is_none(), "{first:?}");
    let again = run_action(
        &gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    .unwrap();
    let retried = again.retry.unwrap_or_default();
    assert!(retried.contains("429 rate_limited"), "{retried}");
    assert_eq!(gw.delivered().len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_send_phone_message_action_delivers_and_throws_on_failure() -> TestResult {
    let Some(mut event) = fixture("auth0-send-phone-message-event.json") else {
        return Ok(());
    };
    event["message_options"]["recipient"] = json!("+14155550126");
    let gw = TestGateway::start().await;
    let Some(calls) = run_action(
        &gw,
        "send-phone-message.js",
        "onExecuteSendPhoneMessage",
        &event,
    )
    .await
    else {
        return Ok(());
    };
    assert!(calls.threw.is_none(), "{calls:?}");
    let sent = gw.primary.delivered();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].text().expose_secret(),
        "123456 is your verification code for Example App."
    );

    // Voice, with the text Auth0 rendered for it.
    event["message_options"]["recipient"] = json!("+14155550127");
    event["message_options"]["message_type"] = json!("voice");
    event["message_options"]["text"] = json!("Your code is 1. 2. 3. 4. 5. 6.");
    let calls = run_action(
        &gw,
        "send-phone-message.js",
        "onExecuteSendPhoneMessage",
        &event,
    )
    .await
    .unwrap();
    assert!(calls.threw.is_none(), "{calls:?}");
    assert_eq!(gw.primary.delivered()[1].channel(), Channel::Voice);

    let Some(invalid) = fixture("auth0-send-phone-message-event.json") else {
        return Ok(());
    };
    let calls = run_action(
        &gw,
        "send-phone-message.js",
        "onExecuteSendPhoneMessage",
        &invalid,
    )
    .await
    .unwrap();
    assert_eq!(
        calls.threw.as_deref(),
        Some("phone-otp-gateway answered 422 invalid_number")
    );
    assert_eq!(gw.primary.delivered().len(), 2);
    Ok(())
}

#[tokio::test]
async fn auth0s_own_sample_body_works_unchanged() -> TestResult {
    let Some(sample) = fixture("auth0-action-forward-body.json") else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    // As it is, its fictional number is refused as a number, not as a shape.
    let response = gw.post(PATH, AUTH0_TOKEN, &sample).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "invalid_number");

    let mut real = sample.clone();
    real["recipient"] = json!("+14155550128");
    let response = gw.post(PATH, AUTH0_TOKEN, &real).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["provider"], "primary");
    assert_eq!(body["to"], "+141****0128");
    assert_eq!(body["segments"], 1);
    assert_eq!(
        gw.primary.delivered()[0].text().expose_secret(),
        "123456 is your verification code for Example App."
    );
    Ok(())
}

#[tokio::test]
async fn refusals_send_nothing() -> TestResult {
    let gw = TestGateway::start().await;
    let ok = json!({
        "recipient": "+14155550129", "delivery_method": "text", "message_type": "otp_verify",
        "code": "123456", "as_text": "123456 is your code", "user_id": "auth0|1",
    });
    // No or wrong token.
    let response = gw
        .client
        .post(format!("{}{PATH}", gw.url))
        .json(&ok)
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    assert_eq!(
        gw.post(PATH, "wrong-token-wrong-token", &ok).await.status(),
        401
    );
    // A premium-rate number.
    let mut premium = ok.clone();
    premium["recipient"] = json!("+81990123456");
    let response = gw.post(PATH, AUTH0_TOKEN, &premium).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "destination_refused");
    // A notification that carries no code: never relayed as free text.
    let mut no_code = ok.clone();
    no_code["message_type"] = json!("change_password");
    no_code.as_object_mut().map(|o| o.remove("code"));
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &no_code).await.status(), 422);
    // A text without the code.
    let mut spam = ok.clone();
    spam["as_text"] = json!("Win a prize at http://evil.example");
    let response = gw.post(PATH, AUTH0_TOKEN, &spam).await;
    assert_eq!(response.status(), 422);
    // Phishing with a code of the caller's choosing: a word as the code, or a link.
    let mut word = ok.clone();
    word["code"] = json!("Click");
    word["as_text"] =
        json!("Your bank account is locked. Click https://evil.example/login to unlock it");
    let response = gw.post(PATH, AUTH0_TOKEN, &word).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("digits"),
        "{body}"
    );
    let mut link = ok.clone();
    link["as_text"] = json!("Your account is locked. Unlock at evil.example/login with 123456");
    let response = gw.post(PATH, AUTH0_TOKEN, &link).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "text_refused");
    // An unknown field or channel.
    let mut unknown = ok.clone();
    unknown["delivery_method"] = json!("fax");
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &unknown).await.status(), 422);
    assert!(gw.delivered().is_empty());
    // Nothing was spent: the real one goes through.
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &ok).await.status(), 200);
    Ok(())
}
