//! The Twilio adapter against a loopback server that answers as Twilio does.

use std::time::Duration;

use phone_otp::provider::twilio::{self, TwilioConfig, TwilioProvider};
use phone_otp::{ConfigError, HttpConfig, Locale, Message, PhoneProvider, ProviderErrorKind};
use secrecy::SecretString;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{TestResult, jp_mobile};

const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
const CALLS: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json";

pub(crate) fn config() -> TwilioConfig {
    TwilioConfig {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: Some(SecretString::from("token-secret-123")),
        api_key_sid: None,
        api_key_secret: None,
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        voice_en: None,
        voice_ja: None,
        status_callback: None,
        http: HttpConfig {
            connect_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
        },
    }
}

pub(crate) fn adapter(server: &MockServer, config: TwilioConfig) -> TwilioProvider {
    TwilioProvider::new(config)
        .unwrap()
        .danger_base_url(&server.uri())
        .unwrap()
}

fn otp_sms() -> Message {
    Message::sms(jp_mobile(), "123456 is your Acme code")
        .with_code("123456")
        .with_validity(Duration::from_secs(300))
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

const CREATED: &str = r#"{"sid":"SM0123456789abcdef0123456789abcdef","account_sid":"AC0123456789abcdef0123456789abcdef","status":"queued","to":"+819012345678","from":"+15005550006","body":"…","num_segments":"1","direction":"outbound-api","error_code":null,"error_message":null,"price":null,"price_unit":null,"messaging_service_sid":null,"api_version":"2010-04-01","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","date_updated":"Thu, 24 Aug 2023 05:01:45 +0000","date_sent":null,"num_media":"0","uri":"/2010-04-01/Accounts/AC.../Messages/SM....json","subresource_uris":{"media":"/Media.json"}}"#;

#[tokio::test]
async fn sms_request_is_exactly_what_twilio_expects() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        // base64("AC0123456789abcdef0123456789abcdef:token-secret-123")
        .and(header(
            "authorization",
            "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2tlbi1zZWNyZXQtMTIz",
        ))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(201).set_body_string(CREATED))
        .expect(1)
        .mount(&server)
        .await;
    let receipt = adapter(&server, config()).send(&otp_sms()).await?;
    assert_eq!(
        (receipt.provider.as_str(), receipt.message_id.as_str()),
        ("twilio", "SM0123456789abcdef0123456789abcdef")
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        form(&requests[0]),
        [
            ("To".to_owned(), "+819012345678".to_owned()),
            ("Body".to_owned(), "123456 is your Acme code".to_owned()),
            ("From".to_owned(), "+15005550006".to_owned()),
            ("ValidityPeriod".to_owned(), "300".to_owned()),
        ]
    );
    let agent = requests[0].headers.get("user-agent").unwrap().to_str()?;
    assert!(agent.starts_with("phone-otp/"), "{agent}");
    Ok(())
}

/// With a status callback configured, every message and call asks Twilio to post its
/// status there, carrying the send's reference (so a receipt finds its record); a
/// non-https URL is refused when the adapter is made.
#[tokio::test]
async fn status_callbacks_carry_the_send_reference() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string(CREATED))
        .mount(&server)
        .await;
    let provider = adapter(&server, config())
        .status_callback("https://otp.example.com/callbacks/twilio/status")
        .unwrap();
    provider
        .send(&otp_sms().with_reference("a1b2c3-d4"))
        .await?;
    provider.send(&otp_sms()).await?;
    let voice = Message::voice(jp_mobile(), "123456")
        .with_code("123456")
        .with_reference("a1b2c3-voice");
    provider.send(&voice).await?;
    let with_query = adapter(&server, config())
        .status_callback("https://otp.example.com/status?tenant=x")
        .unwrap();
    with_query.send(&otp_sms().with_reference("r-1")).await?;
    let callbacks: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            form(request)
                .into_iter()
                .find(|(name, _)| name == "StatusCallback")
                .map(|(_, url)| url)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        callbacks,
        [
            "https://otp.example.com/callbacks/twilio/status?ref=a1b2c3-d4",
            "https://otp.example.com/callbacks/twilio/status",
            "https://otp.example.com/callbacks/twilio/status?ref=a1b2c3-voice",
            "https://otp.example.com/status?tenant=x&ref=r-1",
        ]
    );
    // Without one configured, no StatusCallback is sent (the account's own applies).
    let plain = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string(CREATED))
        .mount(&plain)
        .await;
    adapter(&plain, config())
        .send(&otp_sms().with_reference("a1"))
        .await?;
    let sent = form(&plain.received_requests().await.unwrap()[0]);
    assert!(sent.iter().all(|(name, _)| name != "StatusCallback"));
    for bad in ["http://otp.example.com/status", "not a url", "ftp://x/"] {
        let refused = TwilioProvider::new(config()).unwrap().status_callback(bad);
        assert!(
            matches!(
                refused,
                Err(ConfigError::Invalid {
                    field: "status_callback",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(
        TwilioProvider::new(config())
            .unwrap()
            .status_callback("http://127.0.0.1:8080/callbacks/twilio/status")
            .is_ok(),
        "plain http on loopback, for tests"
    );
    Ok(())
}

#[tokio::test]
async fn api_keys_and_messaging_services_are_used_when_configured() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        // base64("SKkey:key-secret")
        .and(header("authorization", "Basic U0trZXk6a2V5LXNlY3JldA=="))
        .respond_with(ResponseTemplate::new(201).set_body_string(CREATED))
        .expect(1)
        .mount(&server)
        .await;
    let config = TwilioConfig {
        auth_token: None,
        api_key_sid: Some("SKkey".into()),
        api_key_secret: Some(SecretString::from("key-secret")),
        messaging_service_sid: Some("MG0123456789abcdef0123456789abcdef".into()),
        ..config()
    };
    adapter(&server, config).send(&otp_sms()).await?;
    let fields = form(&server.received_requests().await.unwrap()[0]);
    assert!(fields.contains(&(
        "MessagingServiceSid".into(),
        "MG0123456789abcdef0123456789abcdef".into()
    )));
    assert!(!fields.iter().any(|(name, _)| name == "From"));
    Ok(())
}

#[tokio::test]
async fn voice_calls_carry_escaped_twiml_reading_each_digit_twice() -> TestResult {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALLS))
        .respond_with(
            ResponseTemplate::new(201).set_body_string(
                r#"{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued"}"#,
            ),
        )
        .mount(&server)
        .await;
    let call = Message::voice(jp_mobile(), "ignored when a code is attached")
        .with_code("482916")
        .with_locale(Locale::Ja);
    let receipt = adapter(&server, config()).send(&call).await?;
    assert_eq!(receipt.message_id, "CA0123456789abcdef0123456789abcdef");
    let fields = form(&server.received_requests().await.unwrap()[0]);
    let twiml = &fields.iter().find(|(name, _)| name == "Twiml").unwrap().1;
    assert!(fields.contains(&("From".into(), "+15005550006".into())));
    assert!(twiml.starts_with("<Response>") && twiml.ends_with("</Response>"));
    assert!(
        twiml.contains(
            r#"<Say language="ja-JP" voice="Polly.Mizuki">認証コードをお知らせします。</Say>"#
        ),
        "{twiml}"
    );
    for digit in ["4", "8", "2", "9", "1", "6"] {
        let said = format!(r#"voice="Polly.Mizuki">{digit}</Say>"#);
        assert!(
            twiml.matches(&said).count() >= 2,
            "digit {digit} twice: {twiml}"
        );
    }
    assert!(!twiml.contains("482916"), "never the whole number at once");

    // Dynamic text is XML-escaped.
    let text_only = Message::voice(jp_mobile(), "Code <1> & \"2\"");
    let twiml = twilio::twiml(&text_only, "Polly.Joanna");
    assert!(
        twiml.contains("Code &lt;1&gt; &amp; &quot;2&quot;"),
        "{twiml}"
    );
    Ok(())
}

#[tokio::test]
async fn oversized_twiml_and_missing_sender_are_refused_before_any_request() -> TestResult {
    let server = MockServer::start().await;
    let provider = adapter(&server, config());
    let long = Message::voice(jp_mobile(), "a".repeat(2100));
    let error = provider.send(&long).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.code()),
        (ProviderErrorKind::BadRequest, Some("twiml_too_long"))
    );

    let no_from = adapter(
        &server,
        TwilioConfig {
            from: None,
            messaging_service_sid: Some("MGx".into()),
            ..config()
        },
    );
    assert!(!no_from.supports(phone_otp::Channel::Voice));
    let error = no_from
        .send(&Message::voice(jp_mobile(), "hi"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::ChannelUnsupported);
    assert!(server.received_requests().await.unwrap().is_empty());
    Ok(())
}

async fn failure(response: ResponseTemplate) -> phone_otp::ProviderError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    adapter(&server, config())
        .send(&otp_sms())
        .await
        .unwrap_err()
}

fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_string(format!(
        r#"{{"code": {code}, "message": "{message}", "more_info": "https://www.twilio.com/docs/errors/{code}", "status": {status}}}"#
    ))
}

#[tokio::test]
async fn every_failure_gets_its_kind() -> TestResult {
    use ProviderErrorKind as K;
    let cases = [
        (
            twilio_error(401, 20003, "Authenticate"),
            K::Auth,
            Some("20003"),
        ),
        (
            twilio_error(400, 21211, "The 'To' number is not a valid phone number."),
            K::InvalidRecipient,
            Some("21211"),
        ),
        (
            twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
            K::RecipientBlocked,
            Some("21610"),
        ),
        (
            twilio_error(400, 21614, "'To' number is not a valid mobile number"),
            K::RecipientCannotReceive,
            Some("21614"),
        ),
        (
            twilio_error(400, 21408, "Permission to send an SMS has not been enabled"),
            K::NotPermitted,
            Some("21408"),
        ),
        (
            twilio_error(
                400,
                21617,
                "The concatenated message body exceeds the 1600 character limit",
            ),
            K::BadRequest,
            Some("21617"),
        ),
        (
            twilio_error(500, 20500, "Internal Server Error"),
            K::Unavailable,
            Some("20500"),
        ),
        (
            twilio_error(418, 99999, "Unknown"),
            K::BadRequest,
            Some("99999"),
        ),
    ];
    for (response, kind, code) in cases {
        let error = failure(response).await;
        assert_eq!((error.kind(), error.code()), (kind, code), "{error}");
    }
    Ok(())
}

#[tokio::test]
async fn rate_limits_carry_retry_after() -> TestResult {
    let error =
        failure(twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "7"))
            .await;
    assert_eq!(error.kind(), ProviderErrorKind::RateLimited);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(error.status(), Some(429));
    assert_eq!(
        error.to_string(),
        "twilio: rate limited (http 429, code 20429)"
    );
    Ok(())
}

#[tokio::test]
async fn html_pages_and_malformed_json_are_handled() -> TestResult {
    let html = "<html><body><h1>503 Service Temporarily Unavailable</h1>".to_owned()
        + &"x".repeat(2000)
        + "</body></html>";
    let error = failure(
        ResponseTemplate::new(503)
            .set_body_string(html)
            .insert_header("content-type", "text/html"),
    )
    .await;
    assert_eq!(
        (error.kind(), error.status(), error.code()),
        (ProviderErrorKind::Unavailable, Some(503), None)
    );
    assert!(error.body().unwrap().chars().count() <= phone_otp::provider::MAX_BODY_CHARS + 1);

    let error = failure(ResponseTemplate::new(201).set_body_string("{\"sid\": ")).await;
    assert_eq!(error.kind(), ProviderErrorKind::Protocol);
    Ok(())
}

#[tokio::test]
async fn slow_responses_time_out_and_refused_connections_are_network_errors() -> TestResult {
    let error = failure(
        ResponseTemplate::new(201)
            .set_body_string(CREATED)
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    assert_eq!(error.kind(), ProviderErrorKind::Timeout);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port(); // closed on drop
    let provider =
        TwilioProvider::new(config())?.danger_base_url(&format!("http://127.0.0.1:{port}"))?;
    let error = provider.send(&otp_sms()).await.unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::Network);
    Ok(())
}

/// A connection that never opens within the connect timeout was not reached: nothing was
/// sent, so it is a network failure (a router moves on), not a timeout (which may have
/// delivered, so a router stops). A listener with a backlog of one whose queue is full
/// drops further handshakes, so the connect hangs.
#[tokio::test]
async fn a_connect_timeout_is_a_network_failure_not_a_timeout() -> TestResult {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let address = socket.local_addr()?;
    let _listener = socket.listen(1)?;
    // Fill the accept queue (never accepted); later handshakes get no answer.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(stream) =
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
        {
            fillers.push(stream);
        }
    }
    let provider = TwilioProvider::new(TwilioConfig {
        http: phone_otp::HttpConfig {
            connect_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_secs(5),
        },
        ..config()
    })?
    .danger_base_url(&format!("http://{address}"))?;
    let error = provider.send(&otp_sms()).await.unwrap_err();
    assert_eq!(error.kind(), ProviderErrorKind::Network, "{error}");
    assert!(!error.may_have_delivered());
    Ok(())
}

#[test]
fn configuration_errors_are_clear_and_debug_hides_secrets() {
    let missing = TwilioProvider::new(TwilioConfig {
        auth_token: None,
        ..config()
    })
    .unwrap_err();
    assert!(matches!(
        missing,
        ConfigError::Invalid {
            field: "credentials",
            ..
        }
    ));
    let plain_http = TwilioProvider::new(config())
        .unwrap()
        .danger_base_url("http://api.example.com")
        .unwrap_err();
    assert!(plain_http.to_string().contains("loopback"), "{plain_http}");
    let debug = format!("{:?}", TwilioProvider::new(config()).unwrap());
    assert!(!debug.contains("token-secret-123"), "{debug}");
    // Every missing variable at once, by its environment name.
    let missing = TwilioConfig::from_lookup(&|_| None).unwrap_err();
    assert_eq!(
        missing,
        ConfigError::MissingEnv(vec![
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
        ])
    );
    assert_eq!(
        missing.to_string(),
        "environment variables not set: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, \
         TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"
    );
    let api_key = |name: &str| match name {
        "TWILIO_API_KEY_SID" => Some("SK1".to_owned()),
        "TWILIO_MESSAGING_SERVICE_SID" => Some("MG1".to_owned()),
        "TWILIO_ACCOUNT_SID" => Some(String::new()), // empty counts as unset
        _ => None,
    };
    assert_eq!(
        TwilioConfig::from_lookup(&api_key).unwrap_err(),
        ConfigError::MissingEnv(vec!["TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SECRET"])
    );
    let complete = |name: &str| match name {
        "TWILIO_ACCOUNT_SID" => Some("AC1".to_owned()),
        "TWILIO_AUTH_TOKEN" => Some("t".to_owned()),
        "TWILIO_FROM" => Some("+15005550006".to_owned()),
        _ => None,
    };
    let read = TwilioConfig::from_lookup(&complete).unwrap();
    assert_eq!(
        (read.account_sid.as_str(), read.from.as_deref()),
        ("AC1", Some("+15005550006"))
    );
    let parsed: TwilioConfig = serde_json::from_str(
        r#"{"account_sid":"AC1","auth_token":"t","from":"+15005550006","http":{"connect_timeout":500,"request_timeout":900}}"#,
    )
    .unwrap();
    assert_eq!(parsed.http.request_timeout, Duration::from_millis(900));
}

#[test]
fn signature_matches_twilios_published_example() {
    let token = SecretString::from("12345");
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let signature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    assert!(twilio::validate_signature(&token, url, &params, signature));
    // Twilio may sign with the default port; both forms validate.
    assert!(twilio::validate_signature(
        &token,
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        &params,
        signature
    ));
    assert!(!twilio::validate_signature(
        &token,
        url,
        &params,
        "1/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    let mut tampered = params.clone();
    tampered[2].1 = "9999".into();
    assert!(!twilio::validate_signature(
        &token, url, &tampered, signature
    ));
    assert!(!twilio::validate_signature(
        &SecretString::from("54321"),
        url,
        &params,
        signature
    ));
    assert!(!twilio::validate_signature(
        &token,
        url,
        &params,
        "not base64!"
    ));
}
