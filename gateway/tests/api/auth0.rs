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

/// Runs the shipped custom-phone-provider Action with `event`.
async fn run_custom(gw: &TestGateway, event: &Value) -> Option<ActionCalls> {
    run_action(
        gw,
        "custom-phone-provider.js",
        "onExecuteCustomPhoneProvider",
        event,
    )
    .await
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
    let Some(calls) = run_custom(&gw, &event).await else {
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
    let Some(calls) = run_custom(&gw, &event).await else {
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
    let calls = run_custom(&gw, &event).await.unwrap();
    let retried = calls.retry.unwrap_or_default();
    assert!(retried.contains("502 delivery_failed"), "{retried}");
    assert!(calls.drop.is_none());

    // A send limit: 429, retried later by Auth0.
    gw.primary.recover();
    let Some(event) = custom_event("+14155550125") else {
        return Ok(());
    };
    let first = run_custom(&gw, &event).await.unwrap();
    assert!(first.retry.is_none() && first.drop.is_none(), "{first:?}");
    let again = run_custom(&gw, &event).await.unwrap();
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

/// Auth0's own sample Action sends JSON without a Content-Type (Node's fetch then says
/// `text/plain;charset=UTF-8`) and only logs the answer: the code must still go out.
#[tokio::test]
async fn auth0s_sample_action_without_a_content_type_delivers() -> TestResult {
    let Some(event) = custom_event("+14155550131") else {
        return Ok(());
    };
    let gw = TestGateway::start().await;
    let Some(calls) = run_action(
        &gw,
        "../../tests/api/auth0_sample_action.js",
        "onExecuteCustomPhoneProvider",
        &event,
    )
    .await
    else {
        return Ok(());
    };
    assert!(calls.threw.is_none(), "{calls:?}");
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), 1, "the sample's code was delivered");
    assert_eq!(
        delivered[0].text().expose_secret(),
        "123456 is your verification code for Example App."
    );
    // What the sample sends, byte for byte, as text/plain: accepted; not JSON: 400.
    let sample = fixture("auth0-action-forward-body.json").unwrap_or_default();
    let mut body = sample.clone();
    body["recipient"] = json!("+14155550132");
    let plain = |text: String| {
        gw.client
            .post(format!("{}{PATH}", gw.url))
            .bearer_auth(AUTH0_TOKEN)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(text)
            .send()
    };
    assert_eq!(plain(body.to_string()).await?.status(), 200);
    assert_eq!(plain("recipient=+1415".to_owned()).await?.status(), 400);
    Ok(())
}

/// Auth0's security notices carry no code: they are delivered in the gateway's own
/// words (never Auth0's `as_text`), under the same limits, unless switched off.
#[tokio::test]
async fn security_notices_are_delivered_in_the_gateways_words() -> TestResult {
    let gw = TestGateway::start().await;
    for (n, notice, expected) in [
        (1, "blocked_account", "your account was blocked"),
        (2, "change_password", "your password was changed"),
        (3, "password_breach", "appeared in a data breach"),
    ] {
        let Some(mut event) = custom_event(&format!("+1415555014{n}")) else {
            return Ok(());
        };
        event["notification"]["message_type"] = json!(notice);
        event["notification"]
            .as_object_mut()
            .map(|o| o.remove("code"));
        event["notification"]["as_text"] =
            json!("Your account is locked. Unlock it at https://evil.example/login");
        let calls = run_custom(&gw, &event).await.unwrap();
        assert!(
            calls.retry.is_none() && calls.drop.is_none() && calls.threw.is_none(),
            "{notice}: {calls:?}"
        );
        let sent = gw.primary.delivered();
        let text = sent.last().unwrap().text().expose_secret().to_owned();
        assert!(text.contains(expected) && !text.contains("evil"), "{text}");
        assert!(sent.last().unwrap().code().is_none());
    }
    // Japanese for a Japanese locale.
    let ja = json!({"recipient": "+819012345640", "delivery_method": "text",
        "message_type": "change_password", "locale": "ja_JP", "user_id": "auth0|ja"});
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &ja).await.status(), 200);
    let text = gw
        .primary
        .delivered()
        .last()
        .unwrap()
        .text()
        .expose_secret()
        .to_owned();
    assert!(text.contains("パスワードが変更されました"), "{text}");
    // A notice never carries a code or an unknown type.
    let mut coded = ja.clone();
    coded["code"] = json!("123456");
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &coded).await.status(), 422);
    let mut unknown = ja.clone();
    unknown["message_type"] = json!("password_reset");
    assert_eq!(gw.post(PATH, AUTH0_TOKEN, &unknown).await.status(), 422);
    assert_eq!(gw.delivered().len(), 4);

    // Switched off: refused (the Action drops it), nothing sent.
    let off = TestGateway::with(crate::support::Setup {
        configure: Box::new(|builder| builder.auth0_notices(false)),
        ..crate::support::Setup::default()
    })
    .await;
    let response = off.post(PATH, AUTH0_TOKEN, &ja).await;
    assert_eq!(response.status(), 422);
    assert!(off.delivered().is_empty());
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
    // A code-bearing type without its code.
    let mut no_code = ok.clone();
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
