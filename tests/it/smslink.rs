//! The SMSLINK adapter against a loopback server that answers as SMSLINK does.

use std::time::Duration;

use phone_otp::{
    HttpConfig, Message, PhoneNumber, PhoneProvider, ProviderError, ProviderErrorKind,
    SmslinkConfig, SmslinkProvider,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TestResult, jp_mobile};

fn config() -> SmslinkConfig {
    SmslinkConfig {
        api_token: SecretString::from("6f1c2a0e-token-uuid"),
        base_url: None,
        http: HttpConfig {
            connect_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
        },
    }
}

pub(crate) fn adapter(server: &MockServer) -> SmslinkProvider {
    SmslinkProvider::new(config())
        .unwrap()
        .danger_base_url(&server.uri())
        .unwrap()
}

fn accepted(result_code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "delivery_id": "fd75dc2503c20bb62902fabbbddf98e3",
        "accepted_at": "2018-06-19T16:11:56+09:00",
        "reserved_at": "2018-06-19T16:11:56+09:00",
        "contacts": [{"contact_id": 1, "phone_number": "09012345678", "result_code": result_code, "result_message": "…"}],
        "click_count_urls": []
    }))
}

fn sms(to: PhoneNumber, text: &str) -> Message {
    Message::sms(to, text).with_code("123456")
}

#[tokio::test]
async fn request_uses_the_token_header_and_domestic_numbers() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/delivery"))
        .and(header("token", "6f1c2a0e-token-uuid"))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .respond_with(accepted("RST200001"))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = adapter(&server)
        .send(&sms(jp_mobile(), "認証コード: 123456"))
        .await?;
    assert_eq!(receipt.message_id, "fd75dc2503c20bb62902fabbbddf98e3");
    let request = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&request.body)?;
    assert_eq!(
        body,
        json!({"contacts": [{"phone_number": "09012345678"}], "text_message": "認証コード: 123456"})
    );
    assert!(request.headers.get("authorization").is_none());
    Ok(())
}

#[tokio::test]
async fn what_smslink_cannot_take_is_refused_before_any_request() -> TestResult {
    use ProviderErrorKind as K;
    let server = MockServer::start().await;
    let provider = adapter(&server);
    let cases = [
        (
            sms(PhoneNumber::parse("+14155550123")?, "code"),
            K::ChannelUnsupported,
            "japan_only",
        ),
        (
            sms(PhoneNumber::parse("+81312345678")?, "code"),
            K::RecipientCannotReceive,
            "not_sms_capable",
        ),
        (
            sms(PhoneNumber::parse("+81120123456")?, "code"),
            K::InvalidRecipient,
            "not_sms_capable",
        ),
        (
            sms(jp_mobile(), &"あ".repeat(661)),
            K::BadRequest,
            "text_too_long",
        ),
        (
            sms(jp_mobile(), &format!("{}\n", "あ".repeat(659))),
            K::BadRequest,
            "text_too_long",
        ),
        (
            sms(jp_mobile(), "コード 123456 🙂"),
            K::BadRequest,
            "four_byte_character",
        ),
        (
            Message::voice(jp_mobile(), "1, 2, 3"),
            K::ChannelUnsupported,
            "sms_only",
        ),
    ];
    for (message, kind, code) in cases {
        let error = provider.send(&message).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.code()),
            (kind, Some(code)),
            "{message:?}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(!provider.supports(phone_otp::Channel::Voice));
    // 660 characters exactly is fine.
    assert!(SmslinkProvider::delivery_body(&sms(jp_mobile(), &"あ".repeat(660))).is_ok());
    Ok(())
}

async fn failure(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    adapter(&server)
        .send(&sms(jp_mobile(), "code 123456"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn per_contact_rejections_inside_a_200_are_errors() -> TestResult {
    use ProviderErrorKind as K;
    for (code, kind) in [
        ("RST200003", K::InvalidRecipient),
        ("RST200005", K::InvalidRecipient),
        ("RST200008", K::BadRequest),
    ] {
        let error = failure(accepted(code)).await;
        assert_eq!(
            (error.kind(), error.code(), error.status()),
            (kind, Some(code), Some(200))
        );
    }
    Ok(())
}

#[tokio::test]
async fn http_failures_get_their_kinds() -> TestResult {
    use ProviderErrorKind as K;
    let cases = [
        (
            ResponseTemplate::new(401).set_body_json(json!({"message": "invalid token"})),
            K::Auth,
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({"error": "forbidden"})),
            K::NotPermitted,
        ),
        (
            ResponseTemplate::new(422).set_body_json(json!({"message": "phone_number is invalid"})),
            K::BadRequest,
        ),
        (
            ResponseTemplate::new(500).set_body_string("Internal Server Error"),
            K::Unavailable,
        ),
        (
            ResponseTemplate::new(503)
                .set_body_string("<html><body>メンテナンス中です</body></html>"),
            K::Unavailable,
        ),
    ];
    for (response, kind) in cases {
        assert_eq!(failure(response).await.kind(), kind);
    }
    let error = failure(ResponseTemplate::new(429).insert_header("Retry-After", "30")).await;
    assert_eq!(
        (error.kind(), error.retry_after()),
        (K::RateLimited, Some(Duration::from_secs(30)))
    );
    assert_eq!(
        failure(ResponseTemplate::new(200).set_body_string("not json"))
            .await
            .kind(),
        K::Protocol
    );
    let slow = failure(accepted("RST200001").set_delay(Duration::from_secs(3))).await;
    assert_eq!(slow.kind(), K::Timeout);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let refused =
        SmslinkProvider::new(config())?.danger_base_url(&format!("http://127.0.0.1:{port}"))?;
    assert_eq!(
        refused
            .send(&sms(jp_mobile(), "code"))
            .await
            .unwrap_err()
            .kind(),
        K::Network
    );
    Ok(())
}

#[test]
fn debug_hides_the_token_and_from_env_names_the_variable() {
    let debug = format!("{:?}", SmslinkProvider::new(config()).unwrap());
    assert!(!debug.contains("6f1c2a0e"), "{debug}");
    assert_eq!(
        SmslinkConfig::from_lookup(&|_| None).unwrap_err(),
        phone_otp::ConfigError::MissingEnv(vec!["SMSLINK_API_TOKEN"])
    );
}
