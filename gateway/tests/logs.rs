//! Logs never carry a code, a message text, a secret or a whole number, through every
//! endpoint, at the most verbose level of our crates (INFO for the others, the binary's
//! default). A binary of its own: the capturing subscriber is process-global.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "api/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::{API_TOKEN, AUTH0_TOKEN, OKTA_SECRET, TestGateway, TestResult};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_code_text_secret_or_number_in_any_log_line() -> TestResult {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter("info,phone_otp=trace,phone_otp_gateway=trace,tower_http=trace")
        .with_writer(move || writer.clone())
        .init();

    let gw = TestGateway::start().await;
    let code = "73914862";
    // Okta: its sample shape with a distinctive code, number and text.
    let okta = json!({
        "eventId": "evt-logs-1",
        "requestType": "com.okta.user.telephony.mfa-verification",
        "data": {
            "context": {"request": {"ipAddress": "203.0.113.77"}},
            "userProfile": {"userId": "00ulogs"},
            "messageProfile": {
                "msgTemplate": format!("(HOOK)Secret words {code}"),
                "phoneNumber": "+14155550199",
                "deliveryChannel": "SMS",
                "otpCode": code,
                "locale": "en"
            }
        }
    });
    assert_eq!(gw.okta(&okta).await.status(), 200);
    // Refused ones too: a wrong secret, a premium number, a repeat.
    let wrong = gw
        .client
        .post(format!("{}/hooks/okta/telephony", gw.url))
        .header("authorization", "Basic d3Jvbmctc2VjcmV0LWd1ZXNz")
        .json(&okta)
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    gw.okta(&okta).await;
    let mut premium = okta.clone();
    premium["eventId"] = json!("evt-logs-2");
    premium["data"]["messageProfile"]["phoneNumber"] = json!("+81990123456");
    gw.okta(&premium).await;

    // Auth0, /v1/messages, and a challenge with a wrong and a right code.
    let auth0 = json!({"recipient": "+14155550198", "delivery_method": "text", "message_type": "otp_verify",
        "code": code, "as_text": format!("Secret words {code}")});
    assert_eq!(
        gw.post("/hooks/auth0/phone-message", AUTH0_TOKEN, &auth0)
            .await
            .status(),
        200
    );
    let message = json!({"to": "+14155550197", "code": code});
    assert_eq!(
        gw.post("/v1/messages", API_TOKEN, &message).await.status(),
        200
    );
    let started: serde_json::Value = gw
        .post("/v1/challenges", API_TOKEN, &json!({"to": "+14155550196"}))
        .await
        .json()
        .await?;
    let id = started["challenge_id"].as_str().unwrap().to_owned();
    let sent = gw
        .primary
        .last_code_for(&phone_otp::PhoneNumber::parse("+14155550196")?)
        .unwrap();
    let challenge_code = secrecy::ExposeSecret::expose_secret(&sent).to_owned();
    let verify = format!("/v1/challenges/{id}/verify");
    gw.post(&verify, API_TOKEN, &json!({"code": "00000000"}))
        .await;
    gw.post(&verify, API_TOKEN, &json!({"code": challenge_code}))
        .await;
    // Authenticator codes: enrollment (a secret, its URI, recovery codes), a wrong and a
    // right code, a recovery code.
    let enrolled: serde_json::Value = gw
        .post(
            "/v1/totp/enroll",
            API_TOKEN,
            &json!({"subject": "logs-user"}),
        )
        .await
        .json()
        .await?;
    let totp_secret = enrolled["secret"].as_str().unwrap().to_owned();
    let recovery = enrolled["recovery_codes"][0].as_str().unwrap().to_owned();
    let key = phone_otp::totp::base32_decode(&totp_secret).unwrap();
    let now = phone_otp::Clock::now(&gw.clock).as_millis() / 1000;
    let totp_code = phone_otp::totp::TotpSettings::new("x").code_at(&key, now);
    let body = |code: &str| json!({"subject": "logs-user", "code": code});
    let wrong_totp = if totp_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    gw.post("/v1/totp/confirm", API_TOKEN, &body(wrong_totp))
        .await;
    assert_eq!(
        gw.post("/v1/totp/confirm", API_TOKEN, &body(&totp_code))
            .await
            .status(),
        200
    );
    let recovery_body = json!({"subject": "logs-user", "recovery_code": recovery});
    assert_eq!(
        gw.post("/v1/totp/verify", API_TOKEN, &recovery_body)
            .await
            .status(),
        200
    );
    // Every provider failing, to log the failure paths.
    gw.primary
        .fail_always(phone_otp::ProviderErrorKind::Unavailable);
    gw.secondary
        .fail_always(phone_otp::ProviderErrorKind::Network);
    let failing = json!({"to": "+14155550195", "code": code});
    assert_eq!(
        gw.post("/v1/messages", API_TOKEN, &failing).await.status(),
        502
    );

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone())?;
    assert!(
        logs.contains("relayed code sent"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("request_id"), "spans carry the request id");
    for secret in [
        code,
        challenge_code.as_str(),
        "Secret words",
        "(HOOK)",
        OKTA_SECRET,
        "b2t0YTpz",
        AUTH0_TOKEN,
        API_TOKEN,
        "d3Jvbmctc2VjcmV0",
        &id,
        &totp_secret,
        &totp_code,
        &recovery,
        &recovery.replace('-', ""),
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs");
    }
    for number in [
        "4155550199",
        "4155550198",
        "4155550197",
        "4155550196",
        "4155550195",
        "81990123456",
    ] {
        assert!(
            !logs.contains(number),
            "number {number} leaked into the logs"
        );
    }
    Ok(())
}
