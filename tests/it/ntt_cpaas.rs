//! The NTT CPaaS adapter against a loopback server that answers as the Infobip platform does.

use std::time::Duration;

use phone_otp::{
    ConfigError, HttpConfig, Locale, Message, NttCpaasConfig, NttCpaasProvider, PhoneProvider,
    ProviderError, ProviderErrorKind,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TestResult, jp_mobile};

fn config(base_url: &str) -> NttCpaasConfig {
    NttCpaasConfig {
        base_url: base_url.to_owned(),
        api_key: SecretString::from("003026bbc133714df1834b8638bb496e-8f4b3d9a"),
        sender: "ACME".into(),
        voice_from: Some("+81312345678".into()),
        voice_gender: None,
        http: HttpConfig {
            connect_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
        },
    }
}

pub(crate) fn adapter(server: &MockServer) -> NttCpaasProvider {
    NttCpaasProvider::new(config("https://xyz.api.example.com"))
        .unwrap()
        .danger_base_url(&server.uri())
        .unwrap()
}

fn otp_sms() -> Message {
    Message::sms(jp_mobile(), "認証コード: 123456")
        .with_code("123456")
        .with_validity(Duration::from_secs(300))
        .with_reference("c0ffee-1")
}

fn accepted(group: &str, group_id: u32, id: u32, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "bulkId": "2034072219640523072",
        "messages": [{
            "messageId": "c0ffee-1",
            "status": {"groupId": group_id, "groupName": group, "id": id, "name": name, "description": "…"},
            "destination": "819012345678",
            "details": {"messageCount": 1}
        }]
    }))
}

#[tokio::test]
async fn sms_request_is_exactly_what_the_platform_expects() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/3/messages"))
        .and(header(
            "authorization",
            "App 003026bbc133714df1834b8638bb496e-8f4b3d9a",
        ))
        .and(header("content-type", "application/json"))
        .respond_with(accepted("PENDING", 1, 26, "PENDING_ACCEPTED"))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = adapter(&server).send(&otp_sms()).await?;
    assert_eq!(
        (receipt.provider.as_str(), receipt.message_id.as_str()),
        ("ntt-cpaas", "c0ffee-1")
    );
    let body: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body)?;
    assert_eq!(
        body,
        json!({"messages": [{
            "sender": "ACME",
            "destinations": [{"to": "819012345678", "messageId": "c0ffee-1"}],
            "content": {"text": "認証コード: 123456"},
            "options": {"validityPeriod": {"amount": 300, "timeUnit": "SECONDS"}}
        }]})
    );
    Ok(())
}

#[tokio::test]
async fn voice_request_spaces_the_code_with_commas() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tts/3/advanced"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "bulkId": "b1",
            "messages": [{"to": "819012345678", "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED"}, "messageId": "v-1"}]
        })))
        .mount(&server)
        .await;
    let call = Message::voice(jp_mobile(), "unused")
        .with_code("4815")
        .with_locale(Locale::Ja)
        .with_reference("v-1");
    assert_eq!(adapter(&server).send(&call).await?.message_id, "v-1");
    let body: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body)?;
    let message = &body["messages"][0];
    assert_eq!(message["from"], "81312345678");
    assert_eq!(message["language"], "ja");
    assert_eq!(message["voice"]["gender"], "female");
    assert_eq!(message["destinations"][0]["to"], "819012345678");
    let text = message["text"].as_str().unwrap();
    assert_eq!(text.matches("4,, 8,, 1,, 5").count(), 2, "{text}");
    Ok(())
}

async fn failure(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    adapter(&server).send(&otp_sms()).await.unwrap_err()
}

fn v3_error(status: u16, code: &str, violations: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errorCode": code, "description": "Request cannot be processed.",
        "action": "Check the syntax, violations and adjust the request.",
        "violations": violations, "resources": []
    }))
}

fn legacy_error(status: u16, id: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "requestError": {"serviceException": {"messageId": id, "text": "…"}}
    }))
}

#[tokio::test]
async fn both_error_envelopes_are_classified() -> TestResult {
    use ProviderErrorKind as K;
    let to_violation = json!([{"property": "messages[0].destinations[0].to", "violation": "must be a valid number"}]);
    let text_violation =
        json!([{"property": "messages[0].content.text", "violation": "must not be blank"}]);
    let cases = [
        (v3_error(401, "E401", json!([])), K::Auth, "E401"),
        (legacy_error(401, "UNAUTHORIZED"), K::Auth, "UNAUTHORIZED"),
        (v3_error(403, "E403", json!([])), K::NotPermitted, "E403"),
        (
            v3_error(400, "E400", to_violation),
            K::InvalidRecipient,
            "E400",
        ),
        (v3_error(400, "E400", text_violation), K::BadRequest, "E400"),
        (
            legacy_error(500, "GENERAL_ERROR"),
            K::Unavailable,
            "GENERAL_ERROR",
        ),
        (v3_error(500, "E500", json!([])), K::Unavailable, "E500"),
    ];
    for (response, kind, code) in cases {
        let error = failure(response).await;
        assert_eq!((error.kind(), error.code()), (kind, Some(code)), "{error}");
    }
    let legacy_to = ResponseTemplate::new(400).set_body_json(json!({
        "requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request",
            "validationErrors": {"messages[0].destinations[0].to": ["invalid destination address"]}}}
    }));
    assert_eq!(failure(legacy_to).await.kind(), K::InvalidRecipient);
    Ok(())
}

#[tokio::test]
async fn rejections_inside_a_200_are_errors() -> TestResult {
    use ProviderErrorKind as K;
    let cases = [
        (
            accepted("REJECTED", 5, 10, "REJECTED_DND"),
            K::RecipientBlocked,
            "REJECTED_DND",
        ),
        (
            accepted("REJECTED", 5, 14, "REJECTED_DESTINATION_BLOCKLISTED"),
            K::RecipientBlocked,
            "REJECTED_DESTINATION_BLOCKLISTED",
        ),
        (
            accepted("REJECTED", 5, 52, "REJECTED_DESTINATION"),
            K::InvalidRecipient,
            "REJECTED_DESTINATION",
        ),
        (
            accepted("REJECTED", 5, 20, "REJECTED_FLOODING_FILTER"),
            K::RateLimited,
            "REJECTED_FLOODING_FILTER",
        ),
        (
            accepted("REJECTED", 5, 12, "REJECTED_NOT_ENOUGH_CREDITS"),
            K::NotPermitted,
            "REJECTED_NOT_ENOUGH_CREDITS",
        ),
        (
            accepted("UNDELIVERABLE", 2, 4, "UNDELIVERABLE_REJECTED_OPERATOR"),
            K::Unavailable,
            "UNDELIVERABLE_REJECTED_OPERATOR",
        ),
    ];
    for (response, kind, code) in cases {
        let error = failure(response).await;
        assert_eq!(
            (error.kind(), error.code(), error.status()),
            (kind, Some(code), Some(200)),
            "{error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn rate_limits_outages_and_garbage() -> TestResult {
    let error = failure(v3_error(429, "E429", json!([])).insert_header("Retry-After", "12")).await;
    assert_eq!(
        (error.kind(), error.retry_after()),
        (
            ProviderErrorKind::RateLimited,
            Some(Duration::from_secs(12))
        )
    );
    let error = failure(
        ResponseTemplate::new(503).set_body_string("<html><h1>503 Service Unavailable</h1></html>"),
    )
    .await;
    assert_eq!(
        (error.kind(), error.status()),
        (ProviderErrorKind::Unavailable, Some(503))
    );
    let error =
        failure(ResponseTemplate::new(200).set_body_string("{\"bulkId\": \"x\", \"messages\": ["))
            .await;
    assert_eq!(error.kind(), ProviderErrorKind::Protocol);
    let error =
        failure(accepted("PENDING", 1, 26, "PENDING_ACCEPTED").set_delay(Duration::from_secs(3)))
            .await;
    assert_eq!(error.kind(), ProviderErrorKind::Timeout);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let refused = NttCpaasProvider::new(config("https://x.example.com"))?
        .danger_base_url(&format!("http://127.0.0.1:{port}"))?;
    assert_eq!(
        refused.send(&otp_sms()).await.unwrap_err().kind(),
        ProviderErrorKind::Network
    );
    Ok(())
}

#[test]
fn configuration_is_checked() {
    assert!(matches!(
        NttCpaasProvider::new(config("http://api.example.com")).unwrap_err(),
        ConfigError::Invalid {
            field: "base_url",
            ..
        }
    ));
    let debug = format!(
        "{:?}",
        NttCpaasProvider::new(config("https://x.example.com")).unwrap()
    );
    assert!(!debug.contains("003026bbc1"), "{debug}");
    let no_voice = NttCpaasProvider::new(NttCpaasConfig {
        voice_from: None,
        ..config("https://x.example.com")
    })
    .unwrap();
    assert!(!no_voice.supports(phone_otp::Channel::Voice));
    let only_sender = |name: &str| (name == "NTT_CPAAS_SENDER").then(|| "s".to_owned());
    assert_eq!(
        NttCpaasConfig::from_lookup(&only_sender).unwrap_err(),
        ConfigError::MissingEnv(vec!["NTT_CPAAS_BASE_URL", "NTT_CPAAS_API_KEY"])
    );
}
