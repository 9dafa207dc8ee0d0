//! `examples/axum_mfa.rs` over real HTTP on loopback: the sign-in page, a start that sets
//! a signed cookie, a wrong and a right code, resends (refused during the cooldown, by
//! voice after it), a tampered cookie, a bad number, and the client IP reaching the limits.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{
    Channel, HmacKey, KeyRing, Limits, ManualClock, OtpService, PhoneNumber, Quota, StubProvider,
};
use reqwest::redirect::Policy;
use secrecy::ExposeSecret;

use crate::support::TestResult;

#[path = "../../examples/axum_mfa.rs"]
#[allow(dead_code)]
mod example;

struct Site {
    url: String,
    client: reqwest::Client,
    stub: StubProvider,
    clock: ManualClock,
}

async fn site(limits: Limits) -> Site {
    let (stub, clock) = (StubProvider::new(), ManualClock::new());
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(HmacKey::generate(1).unwrap()))
        .provider(stub.clone())
        .clock(clock.clone())
        .limits(limits)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = example::app(otp, [5u8; 32]).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Site {
        url,
        client,
        stub,
        clock,
    }
}

impl Site {
    async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let mut request = self.client.post(format!("{}{path}", self.url)).form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned());
        (status, set_cookie, response.text().await.unwrap())
    }

    fn last_code(&self, to: &str) -> String {
        let to = PhoneNumber::parse(to).unwrap();
        self.stub
            .last_code_for(&to)
            .map(|c| c.expose_secret().to_owned())
            .unwrap_or_default()
    }
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

#[tokio::test]
async fn sign_in_with_a_code_over_http() -> TestResult {
    let site = site(Limits::default()).await;
    let page = reqwest::get(format!("{}/", site.url)).await?;
    assert_eq!(page.status(), 200);
    assert!(page.text().await?.contains("name=\"phone\""));

    // Start: a redirect to the code form, and the challenge in a signed cookie.
    let (status, cookie, _) = site
        .post("/start", None, &[("phone", "090-1234-5678")])
        .await;
    assert_eq!(status, 303);
    let cookie = cookie.ok_or("no session cookie")?;
    assert!(
        cookie.starts_with("mfa=") && cookie.contains('.'),
        "{cookie}"
    );
    let code = site.last_code("+819012345678");
    assert_eq!(code.len(), 6);

    // A wrong code says how many attempts are left.
    let (status, _, body) = site
        .post("/verify", Some(&cookie), &[("code", wrong(&code))])
        .await;
    assert_eq!(status, 422);
    assert!(body.contains("4 attempts left"), "{body}");

    // A resend within the cooldown is refused in words; after it, a call.
    let (status, _, body) = site
        .post("/resend", Some(&cookie), &[("channel", "sms")])
        .await;
    assert_eq!(status, 429);
    assert!(body.contains("Please wait"), "{body}");
    site.clock.advance(Duration::from_secs(30));
    let (status, _, _) = site
        .post("/resend", Some(&cookie), &[("channel", "voice")])
        .await;
    assert_eq!(status, 303);
    let delivered = site.stub.delivered();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1].channel(), Channel::Voice);

    // The newest code signs in, clears the cookie, and cannot be used again.
    let code = site.last_code("+819012345678");
    let (status, cleared, body) = site
        .post("/verify", Some(&cookie), &[("code", &code)])
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("Signed in"), "{body}");
    assert_eq!(cleared.as_deref(), Some("mfa="));
    let (status, _, body) = site
        .post("/verify", Some(&cookie), &[("code", &code)])
        .await;
    assert_eq!(status, 409);
    assert!(body.contains("already used"), "{body}");
    Ok(())
}

#[tokio::test]
async fn tampered_cookies_and_bad_numbers_are_refused_in_words() -> TestResult {
    let site = site(Limits::default()).await;
    let (_, cookie, _) = site
        .post("/start", None, &[("phone", "+819012345678")])
        .await;
    let cookie = cookie.ok_or("no session cookie")?;
    let code = site.last_code("+819012345678");

    // Another id under the same signature, and a missing cookie: no verify at all.
    let first = if cookie.as_bytes()[4] == b'A' {
        'B'
    } else {
        'A'
    };
    let forged = format!("mfa={first}{}", &cookie[5..]);
    for cookie in [Some(forged.as_str()), None] {
        let (status, _, body) = site.post("/verify", cookie, &[("code", &code)]).await;
        assert_eq!(status, 400);
        assert!(body.contains("session expired"), "{body}");
    }
    // The real cookie still works: the forged attempts spent nothing.
    let (status, _, _) = site
        .post("/verify", Some(&cookie), &[("code", &code)])
        .await;
    assert_eq!(status, 200);

    // A number that is not one: the parser's reason, escaped, and nothing sent.
    let before = site.stub.delivered().len();
    let (status, cookie, body) = site
        .post("/start", None, &[("phone", "<script>1</script>")])
        .await;
    assert_eq!(status, 422);
    assert!(cookie.is_none());
    assert!(body.contains("not a digit"), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert_eq!(site.stub.delivered().len(), before);
    Ok(())
}

#[tokio::test]
async fn the_client_ip_reaches_the_limits() -> TestResult {
    // One send per client IP an hour: the second number from the same client is refused.
    let limits = Limits {
        per_client_ip: Some(Quota::per_hour(NonZeroU32::MIN)),
        ..Limits::default()
    };
    let site = site(limits).await;
    let (status, _, _) = site
        .post("/start", None, &[("phone", "+819012345678")])
        .await;
    assert_eq!(status, 303);
    let (status, cookie, body) = site
        .post("/start", None, &[("phone", "+819087654321")])
        .await;
    assert_eq!(status, 429);
    assert!(cookie.is_none());
    assert!(body.contains("Too many codes"), "{body}");
    assert_eq!(site.stub.delivered().len(), 1);
    Ok(())
}
