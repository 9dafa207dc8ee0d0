//! M2M access tokens (RFC 9068 JWTs) on real HTTP, against a JWKS served on loopback with
//! keys made here (RSA by `openssl`, ECDSA by `ring`): each accepted or refused as it
//! should be, nothing sent when refused, the issuer's keys refetched on rotation and no
//! more often than allowed.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use phone_otp::{Limits, Quota};
use phone_otp_gateway::OktaHook;
use phone_otp_gateway::auth::jwt::JwtIssuer;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::support::{OKTA_SECRET, Setup, TestGateway, TestResult, fixture, skip_loudly, unique};

const ISSUER: &str = "https://idp.example.com/oauth2/default";
const AUDIENCE: &str = "api://phone-otp";
/// The test gateways' clock start, in Unix seconds.
const NOW_S: i64 = 1_643_406_220;

/// A 2048-bit RSA key made once per run by `openssl` (ring cannot generate RSA keys).
fn rsa_key() -> Option<&'static RsaKeyPair> {
    static KEY: OnceLock<Option<RsaKeyPair>> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("potp-jwt-{}.der", unique()));
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .args(["-outform", "DER", "-out"])
            .arg(&path)
            .output()
            .is_ok_and(|out| out.status.success());
        if !made {
            skip_loudly("openssl is not installed (./scripts/test.sh installs it)");
            return None;
        }
        let der = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(PathBuf::from(&path));
        // `genpkey -outform DER` writes PKCS#1 (RSAPrivateKey).
        Some(RsaKeyPair::from_der(&der).unwrap())
    })
    .as_ref()
}

fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": b64(&public.n), "e": b64(&public.e)})
}

fn ec_jwk(key: &EcdsaKeyPair, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

/// `header.claims.signature` with `sign` over the first two parts.
fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn rs256(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
    compact(&header, claims, |input| {
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input,
            &mut signature,
        )
        .unwrap();
        signature
    })
}

fn es256_with(key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    compact(header, claims, |input| {
        key.sign(&SystemRandom::new(), input)
            .unwrap()
            .as_ref()
            .to_vec()
    })
}

fn es256(key: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
    es256_with(
        key,
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": kid}),
        claims,
    )
}

/// RFC 9068 claims for client `client` with `scope`, valid for five minutes from now.
fn claims(client: &str, scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": client, "client_id": client,
        "iat": NOW_S, "exp": NOW_S + 300, "jti": unique(), "scope": scope})
}

fn with(mut claims: Value, patch: Value) -> Value {
    for (name, value) in patch.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims
}

/// An issuer's JWKS endpoint on loopback: the keys it serves can change, it counts its
/// fetches, and it can fail.
#[derive(Clone)]
struct Jwks {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl Jwks {
    async fn serve(keys: Vec<Value>) -> Self {
        let jwks = Self {
            url: String::new(),
            keys: Arc::new(Mutex::new(keys)),
            fetches: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
        };
        let state = jwks.clone();
        let app = axum::Router::new().route(
            "/keys",
            get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    if state.failing.load(Ordering::SeqCst) {
                        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
                    }
                    let keys = state.keys.lock().unwrap().clone();
                    (StatusCode::OK, json!({ "keys": keys }).to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, ..jwks }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn gateway(jwks: &Jwks, limits: Limits) -> TestGateway {
    let issuer = JwtIssuer::new(ISSUER, AUDIENCE, &jwks.url).min_refetch(Duration::from_secs(30));
    TestGateway::with(Setup {
        limits,
        // Failed tokens here test the JWKS, not the per-network failure limit.
        configure: Box::new(move |builder| {
            builder
                .jwt(issuer)
                .auth_failures_per_minute(std::num::NonZeroU32::new(10_000).unwrap())
        }),
        ..Setup::default()
    })
    .await
}

fn message(to: &str) -> Value {
    json!({"to": to, "code": "482913"})
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn rs256_and_es256_tokens_send_as_their_client() -> TestResult {
    let Some(rsa) = rsa_key() else {
        return Ok(());
    };
    let ec = ec_key();
    let jwks = Jwks::serve(vec![rsa_jwk(rsa, "rsa-1"), ec_jwk(&ec, "ec-1")]).await;
    // One send per tenant per hour: the token's client must be the tenant.
    let limits = Limits {
        per_tenant: Some(Quota::per_hour(NonZeroU32::MIN)),
        ..Limits::danger_none()
    };
    let gw = gateway(&jwks, limits).await;
    let billing = rs256(rsa, "rsa-1", &claims("billing", "messages:send"));
    let crm = es256(&ec, "ec-1", &claims("crm", "openid messages:send"));
    let sent = gw
        .post("/v1/messages", &billing, &message("+819012345670"))
        .await;
    assert_eq!(sent.status(), 200);
    let sent = gw
        .post("/v1/messages", &crm, &message("+819012345671"))
        .await;
    assert_eq!(sent.status(), 200);
    // billing's second send is over billing's tenant quota; crm's was not counted there.
    let again = rs256(rsa, "rsa-1", &claims("billing", "messages:send"));
    let refused = gw
        .post("/v1/messages", &again, &message("+819012345672"))
        .await;
    assert_eq!(error_code(refused).await, (429, "rate_limited".to_owned()));
    assert_eq!(gw.delivered().len(), 2);
    // Both tokens' keys came from one fetch.
    assert_eq!(jwks.fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn bad_tokens_are_refused_and_send_nothing() -> TestResult {
    let Some(rsa) = rsa_key() else {
        return Ok(());
    };
    let ec = ec_key();
    let jwks = Jwks::serve(vec![rsa_jwk(rsa, "rsa-1"), ec_jwk(&ec, "ec-1")]).await;
    let gw = gateway(&jwks, Limits::danger_none()).await;
    let good = claims("billing", "messages:send");
    let public_der = rsa.public().as_ref().to_vec();
    let hs256_with_public_key = compact(
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}),
        &good,
        |input| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&public_der).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        },
    );
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(good.to_string().as_bytes())
    );
    let tampered = {
        let token = rs256(rsa, "rsa-1", &good);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = with(good.clone(), json!({"client_id": "admin"}));
        format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases = [
        (
            "expired",
            rs256(
                rsa,
                "rsa-1",
                &with(good.clone(), json!({"exp": NOW_S - 31})),
            ),
            401,
            "invalid_token",
        ),
        (
            "not yet valid",
            rs256(
                rsa,
                "rsa-1",
                &with(good.clone(), json!({"nbf": NOW_S + 60})),
            ),
            401,
            "invalid_token",
        ),
        (
            "wrong aud",
            rs256(
                rsa,
                "rsa-1",
                &with(good.clone(), json!({"aud": "api://other"})),
            ),
            401,
            "invalid_token",
        ),
        (
            "wrong iss",
            rs256(
                rsa,
                "rsa-1",
                &with(good.clone(), json!({"iss": "https://evil.example.com/"})),
            ),
            401,
            "invalid_token",
        ),
        (
            "no exp",
            rs256(rsa, "rsa-1", &with(good.clone(), json!({"exp": null}))),
            401,
            "invalid_token",
        ),
        ("alg none", unsigned, 401, "invalid_token"),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            401,
            "invalid_token",
        ),
        ("tampered claims", tampered, 401, "invalid_token"),
        (
            "ES256 key named for RS256",
            es256_with(
                &ec,
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "rsa-1"}),
                &good,
            ),
            401,
            "invalid_token",
        ),
        (
            "untyped (an ID token's typ)",
            es256_with(
                &ec,
                &json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}),
                &good,
            ),
            401,
            "invalid_token",
        ),
        (
            "scope lacking",
            es256(&ec, "ec-1", &claims("billing", "usage:read")),
            403,
            "insufficient_scope",
        ),
    ];
    for (case, token, status, code) in cases {
        let response = gw
            .post("/v1/messages", &token, &message("+819012345670"))
            .await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{case}"
        );
    }
    assert!(gw.delivered().is_empty());
    // A valid token still passes, so the refusals above were the token's fault.
    let valid = es256(&ec, "ec-1", &good);
    assert_eq!(
        gw.post("/v1/messages", &valid, &message("+819012345670"))
            .await
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_kid_at_most_once_per_interval() -> TestResult {
    let (old, new, forged) = (ec_key(), ec_key(), ec_key());
    let jwks = Jwks::serve(vec![ec_jwk(&old, "2026-10")]).await;
    let gw = gateway(&jwks, Limits::danger_none()).await;
    let send = |token: String| {
        let gw = &gw;
        async move {
            gw.post("/v1/messages", &token, &message("+819012345670"))
                .await
                .status()
        }
    };
    assert_eq!(
        send(es256(&old, "2026-10", &claims("billing", "messages:send"))).await,
        200
    );
    assert_eq!(jwks.fetches(), 1);

    // The issuer rotates; a minute later a token under the new key arrives.
    jwks.keys.lock().unwrap().push(ec_jwk(&new, "2026-11"));
    gw.clock.advance(Duration::from_secs(60));
    let later = |client| {
        with(
            claims(client, "messages:send"),
            json!({"iat": NOW_S + 60, "exp": NOW_S + 360}),
        )
    };
    assert_eq!(send(es256(&new, "2026-11", &later("billing"))).await, 200);
    assert_eq!(jwks.fetches(), 2);

    // Forged kids, 32 at once: refused, and no fetch within the interval.
    let forged_token = es256(&forged, "forged", &later("billing"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, url, token) = (gw.client.clone(), gw.url.clone(), forged_token.clone());
        tasks.spawn(async move {
            let response = client
                .post(format!("{url}/v1/messages"))
                .bearer_auth(token)
                .json(&message("+819012345670"))
                .send()
                .await
                .unwrap();
            response.status()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status?, 401);
    }
    assert_eq!(jwks.fetches(), 2);
    // After the interval, one more fetch, and the forged kid is still unknown.
    gw.clock.advance(Duration::from_secs(31));
    assert_eq!(send(forged_token.clone()).await, 401);
    assert_eq!(jwks.fetches(), 3);
    // Known keys never needed a fetch.
    assert_eq!(send(es256(&old, "2026-10", &later("crm"))).await, 200);
    assert_eq!(jwks.fetches(), 3);
    assert_eq!(gw.delivered().len(), 3);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_jwks_fails_closed() -> TestResult {
    let ec = ec_key();
    let jwks = Jwks::serve(vec![ec_jwk(&ec, "k")]).await;
    jwks.failing.store(true, Ordering::SeqCst);
    let gw = gateway(&jwks, Limits::danger_none()).await;
    let token = es256(&ec, "k", &claims("billing", "messages:send"));
    let response = gw
        .post("/v1/messages", &token, &message("+819012345670"))
        .await;
    assert_eq!(
        error_code(response).await,
        (503, "auth_unavailable".to_owned())
    );
    assert!(gw.delivered().is_empty());
    assert_eq!(jwks.fetches(), 1);
    // The issuer recovers; after the refetch interval the same token passes.
    jwks.failing.store(false, Ordering::SeqCst);
    gw.clock.advance(Duration::from_secs(30));
    let token = es256(
        &ec,
        "k",
        &with(
            claims("billing", "messages:send"),
            json!({"iat": NOW_S + 30}),
        ),
    );
    assert_eq!(
        gw.post("/v1/messages", &token, &message("+819012345670"))
            .await
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn okta_hook_takes_an_oauth_token_with_its_scope() -> TestResult {
    let Some(request) = fixture("okta-telephony-request.json") else {
        return Ok(());
    };
    let ec = ec_key();
    let jwks = Jwks::serve(vec![ec_jwk(&ec, "okta-1")]).await;
    // Okta's custom authorization servers issue untyped tokens with an `scp` array.
    let issuer = JwtIssuer::new(ISSUER, AUDIENCE, &jwks.url).danger_accept_untyped();
    let gw = TestGateway::with(Setup {
        configure: Box::new(move |builder| builder.okta(OktaHook::oauth()).jwt(issuer)),
        ..Setup::default()
    })
    .await;
    let okta_token = |scp: Value| {
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "0oa-okta-hook",
            "cid": "0oa-okta-hook", "iat": NOW_S, "exp": NOW_S + 3600, "scp": scp});
        es256_with(&ec, &json!({"alg": "ES256", "kid": "okta-1"}), &claims)
    };
    let post = |authorization: String| {
        let gw = &gw;
        let request = &request;
        async move {
            gw.client
                .post(format!("{}/hooks/okta/telephony", gw.url))
                .header("authorization", authorization)
                .json(request)
                .send()
                .await
                .unwrap()
        }
    };
    // The header secret no longer works, nor a token without the hook's scope.
    assert_eq!(post(OKTA_SECRET.to_owned()).await.status(), 401);
    let wrong_scope = okta_token(json!(["messages:send"]));
    assert_eq!(post(format!("Bearer {wrong_scope}")).await.status(), 401);
    assert!(gw.delivered().is_empty());
    let good = okta_token(json!(["hooks:okta"]));
    let answer = post(format!("Bearer {good}")).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await?;
    assert_eq!(body["commands"][0]["type"], "com.okta.telephony.action");
    assert_eq!(gw.delivered().len(), 1);
    Ok(())
}

const SECOND_ISSUER: &str = "https://idp.example.com/oauth2/second";

#[tokio::test]
async fn a_token_is_never_the_key_owner_of_the_same_name() -> TestResult {
    use phone_otp_gateway::auth::key_admin::create_key;
    use phone_otp_gateway::auth::scope::Scope;
    use secrecy::ExposeSecret;

    let ec = ec_key();
    let jwks = Jwks::serve(vec![ec_jwk(&ec, "ec-1")]).await;
    let db = crate::db::sqlite().await.unwrap();
    let (first, second) = (
        JwtIssuer::new(ISSUER, AUDIENCE, &jwks.url),
        JwtIssuer::new(SECOND_ISSUER, AUDIENCE, &jwks.url),
    );
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        configure: Box::new(move |builder| builder.jwt(first).jwt(second)),
        ..Setup::default()
    })
    .await;
    // Key owner `sysa` enrolls and confirms alice's authenticator.
    let scopes = [Scope::TotpEnroll, Scope::TotpVerify];
    let (key, _) = create_key(&db, &crate::keys::spec("sysa", &scopes), crate::keys::NOW).await?;
    let key = key.expose_secret().to_owned();
    let enrolled: Value = gw
        .post("/v1/totp/enroll", &key, &json!({"subject": "alice"}))
        .await
        .json()
        .await?;
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let code = crate::totp::app_code(&gw, &secret);
    let confirmed = gw
        .post(
            "/v1/totp/confirm",
            &key,
            &json!({"subject": "alice", "code": code}),
        )
        .await;
    assert_eq!(confirmed.status(), 200);

    // A token from the second issuer whose client is also called `sysa`: another system.
    gw.clock.advance(Duration::from_secs(30));
    let code = crate::totp::app_code(&gw, &secret);
    let token = es256(
        &ec,
        "ec-1",
        &with(
            claims("sysa", "totp:enroll totp:verify"),
            json!({"iss": SECOND_ISSUER}),
        ),
    );
    let verify = gw
        .post(
            "/v1/totp/verify",
            &token,
            &json!({"subject": "alice", "code": code}),
        )
        .await;
    assert_eq!(verify.status(), 404, "not sysa's factor");
    let disable = gw
        .post("/v1/totp/disable", &token, &json!({"subject": "alice"}))
        .await;
    assert!(disable.status().is_success());
    // The key owner's factor is untouched, and the code is still unspent.
    let verify = gw
        .post(
            "/v1/totp/verify",
            &key,
            &json!({"subject": "alice", "code": code}),
        )
        .await;
    assert_eq!(verify.status(), 200);
    // The audit trail names the token's system by its issuer.
    let systems: Vec<Option<String>> = db
        .audit_records(0, i64::MAX)
        .await?
        .into_iter()
        .map(|r| r.system)
        .collect();
    assert!(systems.contains(&Some("idp.example.com/oauth2/second:sysa".to_owned())));
    Ok(())
}

#[tokio::test]
async fn a_mapped_system_cannot_also_be_a_key_owner() -> TestResult {
    use phone_otp_gateway::auth::key_admin::{KeyAdminError, check_owner_is_free, create_key};
    use phone_otp_gateway::auth::scope::Scope;

    let path = std::env::temp_dir().join(format!("potp-gw-{}.db", unique()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = phone_otp_gateway::db::Db::connect(&url).await?;
    let spec = crate::keys::spec("billing", &[Scope::MessagesSend]);
    create_key(&db, &spec, crate::keys::NOW).await?;
    let toml = format!(
        "[database]\nurl = \"{url}\"\n[[jwt]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         jwks_url = \"https://idp.example.com/keys\"\nclients = {{ \"0oa-billing\" = \"billing\" }}\n"
    );
    let config = phone_otp_gateway::config::Config::from_toml(&toml)?;
    let refused = config.build(&|_| None).await.err().map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("\"billing\"") && e.contains("one tenant")),
        "{refused:?}"
    );
    // And at key creation: a configured system, or an owner shaped like a token's system.
    assert_eq!(config.reserved_systems(), ["billing"]);
    assert!(matches!(
        check_owner_is_free("billing", &config.reserved_systems()),
        Err(KeyAdminError::Invalid(_))
    ));
    assert!(check_owner_is_free("crm", &config.reserved_systems()).is_ok());
    let colon = crate::keys::spec("idp.example.com:sysa", &[Scope::MessagesSend]);
    assert!(matches!(
        create_key(&db, &colon, crate::keys::NOW).await,
        Err(KeyAdminError::Invalid(_))
    ));
    Ok(())
}
