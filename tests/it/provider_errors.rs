//! No adapter error path lets a code or a whole number into an error's `Debug`, `Display`
//! or source chain, and no adapter reads more than 64 KiB of a response.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use phone_otp::{Message, PhoneProvider, ProviderError, ProviderErrorKind};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::redaction::assert_clean;
use crate::support::{TestResult, jp_mobile};

const CODE: &str = "480135";

fn otp_sms() -> Message {
    Message::sms(jp_mobile(), format!("{CODE} is your Acme code"))
        .with_code(CODE)
        .with_validity(Duration::from_secs(300))
}

/// Everything an error can show: `Debug`, `Display`, and each source's `Display`.
fn everything_shown(error: &ProviderError) -> String {
    let mut shown = format!("{error:?}\n{error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        shown.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    shown
}

/// Bodies a provider (or something posing as one) could send, each echoing the number and
/// the code the way real error and success bodies can.
fn hostile_responses() -> Vec<ResponseTemplate> {
    let echo = format!(
        r#"{{"code":21211,"message":"The 'To' number +819012345678 is not a valid phone number. Body: {CODE} is your Acme code","more_info":"https://www.twilio.com/docs/errors/21211","status":400,"requestError":{{"serviceException":{{"messageId":"BAD_REQUEST","text":"to +819012345678: {CODE}"}}}}}}"#
    );
    let mut responses: Vec<ResponseTemplate> = [400, 401, 403, 404, 429, 500, 503]
        .into_iter()
        .map(|status| ResponseTemplate::new(status).set_body_string(echo.clone()))
        .collect();
    for status in [200, 201] {
        // Unreadable, and readable JSON of the wrong shape whose parser error would quote
        // the values.
        responses.push(
            ResponseTemplate::new(status)
                .set_body_string(format!("not json: {CODE} to +819012345678")),
        );
        responses.push(ResponseTemplate::new(status).set_body_string(format!(
            r#"{{"sid":["+819012345678 {CODE}"],"messages":"{CODE} +819012345678","contacts":"{CODE}","delivery_id":{CODE}}}"#
        )));
        responses.push(ResponseTemplate::new(status).set_body_string(format!(
            r#"{{"sid":{CODE},"messages":[{{"to":"+819012345678","status":{{"groupId":5,"groupName":"REJECTED","id":12,"name":"REJECTED_NOT_ENOUGH_CREDITS","description":"{CODE}"}},"messageId":null}}],"contacts":[{{"phone_number":"09012345678","result_code":"{CODE}"}}]}}"#
        )));
    }
    responses
}

async fn every_error_path_is_clean(name: &str, provider: &dyn PhoneProvider, server: &MockServer) {
    for (i, response) in hostile_responses().into_iter().enumerate() {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(server)
            .await;
        let error = provider
            .send(&otp_sms())
            .await
            .expect_err("every hostile response is an error");
        let shown = everything_shown(&error);
        assert_clean(&shown, CODE);
        assert!(!shown.contains("9012345678"), "{name} case {i}: {shown}");
    }
}

#[tokio::test]
async fn no_adapter_error_shows_a_code_or_a_whole_number() -> TestResult {
    let server = MockServer::start().await;
    every_error_path_is_clean(
        "twilio",
        &crate::twilio::adapter(&server, crate::twilio::config()),
        &server,
    )
    .await;
    every_error_path_is_clean("ntt-cpaas", &crate::ntt_cpaas::adapter(&server), &server).await;
    every_error_path_is_clean("smslink", &crate::smslink::adapter(&server), &server).await;
    Ok(())
}

/// A loopback server that answers one request with a chunked 200 body of `total` bytes
/// and no `Content-Length`, so the client cannot know the size up front.
fn chunked_server(total: usize) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 8192];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            let chunk = vec![b' '; 16 * 1024];
            let mut sent = 0;
            while sent < total {
                let head = format!("{:x}\r\n", chunk.len());
                if stream.write_all(head.as_bytes()).is_err()
                    || stream.write_all(&chunk).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return; // the client stopped reading: what we want
                }
                sent += chunk.len();
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
    });
    Ok(port)
}

/// A response over 64 KiB is refused as `Protocol`, whether its size is announced or not.
#[tokio::test]
async fn responses_over_64_kib_are_refused() -> TestResult {
    use phone_otp::TwilioProvider;
    let announced = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_string(" ".repeat(65 * 1024)))
        .mount(&announced)
        .await;
    let port = chunked_server(8 * 1024 * 1024)?;
    let streamed = TwilioProvider::new(crate::twilio::config())?
        .danger_base_url(&format!("http://127.0.0.1:{port}"))?;
    for provider in [
        crate::twilio::adapter(&announced, crate::twilio::config()),
        streamed,
    ] {
        let error = provider.send(&otp_sms()).await.expect_err("refused");
        assert_eq!(error.kind(), ProviderErrorKind::Protocol);
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("response body is larger than 65536 bytes")
        );
    }
    // Just under the bound is read (and then parsed as usual).
    let port = chunked_server(48 * 1024)?;
    let small = TwilioProvider::new(crate::twilio::config())?
        .danger_base_url(&format!("http://127.0.0.1:{port}"))?;
    let error = small.send(&otp_sms()).await.expect_err("blank body");
    assert_eq!(
        std::error::Error::source(&error)
            .map(ToString::to_string)
            .as_deref(),
        Some("response body is not the expected JSON (eof error at line 1, column 49152)")
    );
    Ok(())
}
