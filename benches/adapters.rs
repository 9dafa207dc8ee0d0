//! Adapter overhead: a send through each adapter to a loopback server that answers at once,
//! beside a bare `reqwest` POST of the same body to the same server with the same client
//! settings. The difference is what an adapter adds (building the body, auth, classifying
//! the response, tracing).
//!
//! Run with `cargo bench --bench adapters`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use phone_otp::{
    HttpConfig, Message, NttCpaasConfig, NttCpaasProvider, PhoneNumber, PhoneProvider,
    SmslinkConfig, SmslinkProvider, TwilioConfig, TwilioProvider,
};
use secrecy::SecretString;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TWILIO_PATH: &str = "/2010-04-01/Accounts/ACbench/Messages.json";

async fn server(status: u16, body: &str) -> MockServer {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json"),
        )
        .mount(&server)
        .await;
    server
}

fn bare_client() -> reqwest::Client {
    let config = HttpConfig::default();
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let to = PhoneNumber::parse("+819012345678").unwrap();
    let message = Message::sms(to.clone(), "123456 is your Acme code")
        .with_code("123456")
        .with_validity(std::time::Duration::from_secs(300))
        .with_reference("bench-1");
    let mut group = c.benchmark_group("adapters");

    // Twilio: form POST with Basic auth.
    let twilio_server = rt.block_on(server(201, r#"{"sid":"SMbench","status":"queued"}"#));
    let twilio = TwilioProvider::new(TwilioConfig {
        account_sid: "ACbench".into(),
        auth_token: Some(SecretString::from("token")),
        api_key_sid: None,
        api_key_secret: None,
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        voice_en: None,
        voice_ja: None,
        status_callback: None,
        http: HttpConfig::default(),
    })
    .unwrap()
    .danger_base_url(&twilio_server.uri())
    .unwrap();
    let form = twilio.sms_form(&message);
    let bare = bare_client();
    let url = format!("{}{TWILIO_PATH}", twilio_server.uri());
    group.bench_function("twilio/adapter", |b| {
        b.iter(|| rt.block_on(twilio.send(&message)).unwrap())
    });
    group.bench_function("twilio/bare_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = bare
                    .post(&url)
                    .basic_auth("ACbench", Some("token"))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                response.text().await.unwrap()
            })
        })
    });

    // NTT CPaaS: JSON POST with `App` auth.
    let ntt_server = rt.block_on(server(
        200,
        r#"{"bulkId":"b","messages":[{"messageId":"bench-1","status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED"},"destination":"819012345678"}]}"#,
    ));
    let ntt = NttCpaasProvider::new(NttCpaasConfig {
        base_url: "https://bench.example.com".into(),
        api_key: SecretString::from("key"),
        sender: "ACME".into(),
        voice_from: None,
        voice_gender: None,
        http: HttpConfig::default(),
    })
    .unwrap()
    .danger_base_url(&ntt_server.uri())
    .unwrap();
    let body = ntt.sms_body(&message);
    let url = format!("{}/sms/3/messages", ntt_server.uri());
    group.bench_function("ntt_cpaas/adapter", |b| {
        b.iter(|| rt.block_on(ntt.send(&message)).unwrap())
    });
    group.bench_function("ntt_cpaas/bare_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = bare
                    .post(&url)
                    .header("authorization", "App key")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                response.text().await.unwrap()
            })
        })
    });

    // SMSLINK: JSON POST with the `token` header, HTTP/1.1.
    let smslink_server = rt.block_on(server(
        200,
        r#"{"delivery_id":"d","contacts":[{"contact_id":1,"phone_number":"09012345678","result_code":"RST200001"}]}"#,
    ));
    let smslink = SmslinkProvider::new(SmslinkConfig {
        api_token: SecretString::from("token"),
        base_url: None,
        http: HttpConfig::default(),
    })
    .unwrap()
    .danger_base_url(&smslink_server.uri())
    .unwrap();
    let body = SmslinkProvider::delivery_body(&message).unwrap();
    let url = format!("{}/api/v1/delivery", smslink_server.uri());
    group.bench_function("smslink/adapter", |b| {
        b.iter(|| rt.block_on(smslink.send(&message)).unwrap())
    });
    group.bench_function("smslink/bare_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = bare
                    .post(&url)
                    .header("token", "token")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                response.text().await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(adapters, benches);
criterion_main!(adapters);
