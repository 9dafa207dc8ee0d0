//! `/v1/totp` on real HTTP: enrollment shown once and never cached, confirmation by a first
//! code, a time step accepted once, recovery codes, the attempt limit, disabling, scopes,
//! one factor per calling system, bad input refused with nothing stored, and the `[totp]`
//! configuration.

use std::time::Duration;

use phone_otp::Clock as _;
use phone_otp::totp::{TotpSettings, base32_decode};
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::config::Config;
use serde_json::{Value, json};

use crate::db::sqlite;
use crate::keys::{NOW, spec};
use crate::support::{API_TOKEN, Setup, TOTP_ISSUER, TestGateway, TestResult, spawn_gateway};

/// The code an authenticator app shows now for `secret` (base32).
pub fn app_code(gw: &TestGateway, secret: &str) -> String {
    let key = base32_decode(secret).unwrap();
    TotpSettings::new(TOTP_ISSUER).code_at(&key, gw.clock.now().as_millis() / 1000)
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

async fn outcome(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["outcome"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn enroll_confirm_verify_recover_and_disable() -> TestResult {
    let gw = TestGateway::start().await;
    let subject = |extra: Value| {
        let mut body = json!({"subject": "user-1"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let response = gw
        .post(
            "/v1/totp/enroll",
            API_TOKEN,
            &subject(json!({"label": "alice@example.com"})),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let enrolled: Value = response.json().await?;
    let secret = enrolled["secret"].as_str().unwrap_or_default().to_owned();
    assert_eq!(base32_decode(&secret).map(|k| k.len()), Some(20));
    // The Key URI apps read, parsed by a real parser.
    let uri = reqwest::Url::parse(enrolled["uri"].as_str().unwrap_or_default())?;
    assert_eq!((uri.scheme(), uri.host_str()), ("otpauth", Some("totp")));
    // The label, percent-encoded: `Issuer:account`.
    assert_eq!(uri.path(), "/Gateway%20Tests:alice%40example.com");
    let query: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
    for (name, value) in [
        ("secret", secret.as_str()),
        ("issuer", TOTP_ISSUER),
        ("algorithm", "SHA1"),
        ("digits", "6"),
        ("period", "30"),
    ] {
        assert!(
            query.iter().any(|(n, v)| n == name && v == value),
            "{name} in {query:?}"
        );
    }
    let recovery: Vec<String> = enrolled["recovery_codes"]
        .as_array()
        .map(|codes| codes.iter().filter_map(|c| c.as_str()).map(str::to_owned))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(recovery.len(), 10);
    let qr = enrolled["qr_svg"].as_str().unwrap_or_default();
    assert!(qr.contains("<svg") && qr.contains("<path"), "{qr:.80}");

    // Not usable before a first code confirms it; a wrong first code confirms nothing.
    let code = app_code(&gw, &secret);
    let verify = |code: &str| subject(json!({"code": code}));
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &verify(&code)).await).await,
        (404, "not_enrolled".to_owned())
    );
    assert_eq!(
        outcome(
            gw.post("/v1/totp/confirm", API_TOKEN, &verify(wrong(&code)))
                .await
        )
        .await,
        (422, "mismatch".to_owned())
    );
    assert_eq!(
        outcome(gw.post("/v1/totp/confirm", API_TOKEN, &verify(&code)).await).await,
        (200, "verified".to_owned())
    );
    // Confirmed: a second enrollment is refused; the confirming code is spent.
    let again = gw
        .post("/v1/totp/enroll", API_TOKEN, &subject(json!({})))
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().await?["code"], "already_enrolled");
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &verify(&code)).await).await,
        (409, "already_used".to_owned())
    );
    // The next step's code works once.
    gw.clock.advance(Duration::from_secs(30));
    let next = app_code(&gw, &secret);
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &verify(&next)).await).await,
        (200, "verified".to_owned())
    );
    // A recovery code works once, typed loosely.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    let recover = subject(json!({"recovery_code": typed}));
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &recover).await).await,
        (200, "verified".to_owned())
    );
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &recover).await).await,
        (422, "mismatch".to_owned())
    );
    // Five attempts a minute: the next wrong guesses are limited, with Retry-After.
    gw.clock.advance(Duration::from_secs(60));
    for _ in 0..5 {
        gw.post("/v1/totp/verify", API_TOKEN, &verify(wrong(&next)))
            .await;
    }
    let limited = gw
        .post("/v1/totp/verify", API_TOKEN, &verify(wrong(&next)))
        .await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(limited.json::<Value>().await?["outcome"], "limited");
    // Disabled: gone, and enrollment starts afresh.
    gw.clock.advance(Duration::from_secs(60));
    let disabled = gw
        .post("/v1/totp/disable", API_TOKEN, &subject(json!({})))
        .await;
    assert_eq!(disabled.status(), 204);
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", API_TOKEN, &verify(&next)).await).await,
        (404, "not_enrolled".to_owned())
    );
    let fresh = gw
        .post("/v1/totp/enroll", API_TOKEN, &subject(json!({})))
        .await;
    assert_eq!(fresh.status(), 201);
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() -> TestResult {
    let gw = TestGateway::start().await;
    for (path, body) in [
        ("/v1/totp/enroll", json!({"subject": ""})),
        ("/v1/totp/enroll", json!({"subject": "u", "label": "a:b"})),
        ("/v1/totp/enroll", json!({"subject": "x".repeat(257)})),
        (
            "/v1/totp/confirm",
            json!({"subject": "u", "recovery_code": "abcde-fghjk"}),
        ),
        ("/v1/totp/verify", json!({"subject": "u"})),
        (
            "/v1/totp/verify",
            json!({"subject": "u", "code": "123456", "recovery_code": "x"}),
        ),
    ] {
        let response = gw.post(path, API_TOKEN, &body).await;
        assert_eq!(response.status(), 422, "{path} {body}");
        assert_eq!(response.json::<Value>().await?["code"], "invalid_field");
    }
    let unknown = gw
        .post(
            "/v1/totp/enroll",
            API_TOKEN,
            &json!({"subject": "u", "secret": "AAAA"}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let anonymous = gw
        .client
        .post(format!("{}/v1/totp/enroll", gw.url))
        .json(&json!({"subject": "u"}))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    // None of it enrolled anybody: "u" can still enroll afresh, and has no factor.
    assert_eq!(
        outcome(
            gw.post(
                "/v1/totp/verify",
                API_TOKEN,
                &json!({"subject": "u", "code": "123456"})
            )
            .await
        )
        .await,
        (404, "not_enrolled".to_owned())
    );
    assert_eq!(
        gw.post("/v1/totp/enroll", API_TOKEN, &json!({"subject": "u"}))
            .await
            .status(),
        201
    );
    Ok(())
}

#[tokio::test]
async fn scopes_and_one_factor_per_system() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        ..Setup::default()
    })
    .await;
    let key = |owner: &'static str, scopes: &'static [Scope]| {
        let db = db.clone();
        async move {
            let created =
                phone_otp_gateway::auth::key_admin::create_key(&db, &spec(owner, scopes), NOW)
                    .await
                    .unwrap();
            secrecy::ExposeSecret::expose_secret(&created.0).to_owned()
        }
    };
    let shop = key("shop", &[Scope::TotpEnroll, Scope::TotpVerify]).await;
    let verify_only = key("shop", &[Scope::TotpVerify]).await;
    let billing = key("billing", &[Scope::TotpEnroll, Scope::TotpVerify]).await;
    let sms_only = key("shop", &[Scope::ChallengesStart, Scope::ChallengesVerify]).await;

    let user = json!({"subject": "user-7"});
    for token in [&verify_only, &sms_only] {
        let refused = gw.post("/v1/totp/enroll", token, &user).await;
        assert_eq!(refused.status(), 403);
        assert_eq!(refused.json::<Value>().await?["code"], "insufficient_scope");
    }
    let enrolled: Value = gw
        .post("/v1/totp/enroll", &shop, &user)
        .await
        .json()
        .await?;
    let secret = enrolled["secret"].as_str().unwrap_or_default().to_owned();
    let code = app_code(&gw, &secret);
    let body = json!({"subject": "user-7", "code": code});
    assert_eq!(
        gw.post("/v1/totp/confirm", &verify_only, &body)
            .await
            .status(),
        403
    );
    assert_eq!(
        outcome(gw.post("/v1/totp/confirm", &shop, &body).await).await,
        (200, "verified".to_owned())
    );
    // Another system's "user-7" is another user: no factor there.
    gw.clock.advance(Duration::from_secs(30));
    let next = json!({"subject": "user-7", "code": app_code(&gw, &secret)});
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", &billing, &next).await).await,
        (404, "not_enrolled".to_owned())
    );
    assert_eq!(
        outcome(gw.post("/v1/totp/verify", &verify_only, &next).await).await,
        (200, "verified".to_owned())
    );
    Ok(())
}

#[tokio::test]
async fn the_totp_section_configures_the_routes() -> TestResult {
    let key_1 = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="; // 32 bytes of '1'
    let key_2 = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=";
    let toml = "[api]\ntoken_env = \"API\"\nscopes = [\"totp:enroll\"]\n[totp]\nissuer = \"Config Co\"\ndigits = 8\n";
    let config = Config::from_toml(toml)?;
    let env = |keys: &'static str| {
        move |name: &str| match name {
            "API" => Some(API_TOKEN.to_owned()),
            "PHONE_OTP_TOTP_KEYS" => Some(keys.to_owned()),
            _ => None,
        }
    };
    // The keys variable is required, and named.
    let missing = config.build(&|name: &str| (name == "API").then(|| API_TOKEN.to_owned()));
    assert_eq!(
        missing.await.err().map(|e| e.to_string()).as_deref(),
        Some("environment variables not set: PHONE_OTP_TOTP_KEYS")
    );
    for (keys, reason) in [
        ("bm90IDMyIGJ5dGVz", "32 bytes"),
        ("x:abc", "not 0-255"),
        ("1:%%%", "not base64"),
    ] {
        let keys: &'static str = Box::leak(keys.to_owned().into_boxed_str());
        let error = config.build(&env(keys)).await.err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains(reason)),
            "{keys}: {error:?}"
        );
    }
    let bad = Config::from_toml(&toml.replace("digits = 8", "algorithm = \"MD5\""))?;
    let error = bad.build(&env(key_1)).await.err().map(|e| e.to_string());
    assert!(error.unwrap_or_default().contains("totp.algorithm"));

    // Two keys, the primary first: enrollment works and the URI says 8 digits.
    let both: &'static str = Box::leak(format!("2:{key_2}, 1:{key_1}").into_boxed_str());
    let built = config.build(&env(both)).await?;
    let url = spawn_gateway(&built.gateway).await;
    let client = reqwest::Client::new();
    let enrolled: Value = client
        .post(format!("{url}/v1/totp/enroll"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"subject": "u"}))
        .send()
        .await?
        .json()
        .await?;
    let uri = enrolled["uri"].as_str().unwrap_or_default();
    assert!(
        uri.contains("digits=8") && uri.contains("issuer=Config%20Co"),
        "{uri}"
    );

    // Without [totp] the routes are not there.
    let plain = Config::from_toml("[api]\ntoken_env = \"API\"\nscopes = [\"totp:enroll\"]\n")?
        .build(&env(key_1))
        .await?;
    let url = spawn_gateway(&plain.gateway).await;
    let absent = client
        .post(format!("{url}/v1/totp/enroll"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"subject": "u"}))
        .send()
        .await?;
    assert_eq!(absent.status(), 404);
    Ok(())
}
