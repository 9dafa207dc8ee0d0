//! API keys and personal tokens on real HTTP: scopes, expiry, revocation (seen by a second
//! instance on the same database), checksums, IP allow-lists, and the database failing.

use std::num::NonZeroU32;
use std::time::Duration;

use phone_otp::{Limits, Quota};
use phone_otp_gateway::auth::api_key::KeyKind;
use phone_otp_gateway::auth::key_admin::{KeySpec, create_key, rotate_key};
use phone_otp_gateway::auth::scope::{Scope, Scopes};
use phone_otp_gateway::db::Db;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::db::{postgres, sqlite};
use crate::support::{Setup, TestGateway, TestResult};

pub const NOW: i64 = 1_643_406_220_000; // the test gateways' clock start

pub fn spec(owner: &str, scopes: &[Scope]) -> KeySpec {
    KeySpec {
        kind: KeyKind::System,
        owner: owner.to_owned(),
        scopes: scopes
            .iter()
            .fold(Scopes::default(), |s, scope| s.with(*scope)),
        allowed: Vec::new(),
        lifetime: None,
    }
}

async fn key(db: &Db, spec: &KeySpec) -> String {
    create_key(db, spec, NOW)
        .await
        .unwrap()
        .0
        .expose_secret()
        .to_owned()
}

fn message(to: &str) -> Value {
    json!({"to": to, "code": "482913"})
}

async fn gateway(db: &Db, limits: Limits) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits,
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn each_system_sends_under_its_own_key_and_tenant() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    // One send per tenant per hour: the key's owner must be the tenant.
    let limits = Limits {
        per_tenant: Some(Quota::per_hour(NonZeroU32::MIN)),
        ..Limits::danger_none()
    };
    let gw = gateway(&db, limits).await;
    let billing = key(&db, &spec("billing", &[Scope::MessagesSend])).await;
    let crm = key(&db, &spec("crm", &[Scope::MessagesSend])).await;
    assert_eq!(
        gw.post("/v1/messages", &billing, &message("+819012345670"))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.post("/v1/messages", &crm, &message("+819012345671"))
            .await
            .status(),
        200
    );
    let second = gw
        .post("/v1/messages", &billing, &message("+819012345672"))
        .await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await?;
    assert!(body["detail"].as_str().unwrap_or("").starts_with("tenant"));
    assert_eq!(gw.delivered().len(), 2);
    // Last use is recorded.
    let keys = db.keys().await?;
    assert!(keys.iter().all(|k| k.last_used_at == Some(NOW)), "{keys:?}");
    Ok(())
}

#[tokio::test]
async fn scopes_expiry_and_checksums_are_enforced_and_send_nothing() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = gateway(&db, Limits::danger_none()).await;
    // A usage reader cannot send.
    let reader = key(&db, &spec("bi", &[Scope::UsageRead])).await;
    let response = gw
        .post("/v1/messages", &reader, &message("+819012345670"))
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await?["code"],
        "insufficient_scope"
    );
    // A sender cannot verify challenges.
    let sender = key(
        &db,
        &spec("crm", &[Scope::MessagesSend, Scope::ChallengesStart]),
    )
    .await;
    let started: Value = gw
        .post("/v1/challenges", &sender, &json!({"to": "+819012345679"}))
        .await
        .json()
        .await?;
    let id = started["challenge_id"].as_str().unwrap_or_default();
    let verify = gw
        .post(
            &format!("/v1/challenges/{id}/verify"),
            &sender,
            &json!({"code": "000000"}),
        )
        .await;
    assert_eq!(verify.status(), 403);

    // A personal token expires.
    let mut personal = spec("alice@example.com", &[Scope::MessagesSend]);
    personal.kind = KeyKind::Personal;
    personal.lifetime = Some(Duration::from_secs(3600));
    let token = key(&db, &personal).await;
    assert!(token.starts_with("potp_pat_"));
    assert_eq!(
        gw.post("/v1/messages", &token, &message("+819012345671"))
            .await
            .status(),
        200
    );
    gw.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        gw.post("/v1/messages", &token, &message("+819012345672"))
            .await
            .status(),
        401
    );
    // ...and must expire.
    personal.lifetime = None;
    assert!(create_key(&db, &personal, NOW).await.is_err());

    // One character changed: refused on the checksum.
    let mut typo = sender.clone().into_bytes();
    let last = typo.len() - 8;
    typo[last] = if typo[last] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo)?;
    assert_eq!(
        gw.post("/v1/messages", &typo, &message("+819012345673"))
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.delivered().len(),
        2,
        "the challenge's code and alice's one message"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_checksum_is_refused_without_a_lookup_and_a_database_outage_fails_closed()
-> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = gateway(&db, Limits::danger_none()).await;
    let good = key(&db, &spec("crm", &[Scope::MessagesSend])).await;
    let mut typo = good.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo)?;
    db.close().await;
    // With the database gone, a lookup could only fail: the typo is still a plain 401.
    assert_eq!(
        gw.post("/v1/messages", &typo, &message("+819012345670"))
            .await
            .status(),
        401
    );
    // A well-formed key cannot be checked: refused, nothing sent.
    let response = gw
        .post("/v1/messages", &good, &message("+819012345670"))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<Value>().await?["code"], "auth_unavailable");
    assert!(gw.delivered().is_empty());
    Ok(())
}

#[tokio::test]
async fn ip_allow_lists_and_trusted_proxies() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let proxies = vec!["127.0.0.1/32".parse()?];
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        configure: Box::new(move |builder| builder.trusted_proxies(proxies)),
        ..Setup::default()
    })
    .await;
    let mut office = spec("office", &[Scope::MessagesSend]);
    office.allowed = vec!["203.0.113.0/24".parse()?, "2001:db8::/32".parse()?];
    let office = key(&db, &office).await;
    // Straight from loopback (a trusted proxy, but no forwarded address): refused.
    let response = gw
        .post("/v1/messages", &office, &message("+819012345670"))
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await?["code"],
        "address_not_allowed"
    );
    // Through the proxy, from inside the block: allowed.
    let send = |forwarded: &'static str| {
        gw.client
            .post(format!("{}/v1/messages", gw.url))
            .bearer_auth(&office)
            .header("x-forwarded-for", forwarded)
            .json(&message("+819012345671"))
            .send()
    };
    assert_eq!(send("203.0.113.50").await?.status(), 200);
    // A client cannot prepend its way in: the last untrusted hop counts.
    gw.clock.advance(Duration::from_secs(60));
    assert_eq!(send("203.0.113.50, 198.51.100.9").await?.status(), 403);
    // Nor by writing an allowed address left of an entry the gateway cannot read: the
    // client is then unknown, and an allow-listed key is refused.
    for real in [
        "198.51.100.7:51234",
        "[2001:db9::7]:443",
        "[2001:db9::7]",
        "unknown",
        "_hidden",
    ] {
        let forwarded: &'static str = Box::leak(format!("203.0.113.5, {real}").into_boxed_str());
        let response = send(forwarded).await?;
        assert_eq!(response.status(), 403, "{forwarded}");
    }
    // A port or brackets on an allowed address are read as the address.
    gw.clock.advance(Duration::from_secs(60));
    assert_eq!(send("198.51.100.7, 203.0.113.9:443").await?.status(), 200);
    gw.clock.advance(Duration::from_secs(60));
    assert_eq!(send("[2001:db8::5]:8443").await?.status(), 200);
    assert_eq!(gw.delivered().len(), 3);
    Ok(())
}

#[tokio::test]
async fn revocation_and_rotation_hold_on_every_instance() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    let (a, b) = (
        gateway(&db, Limits::danger_none()).await,
        gateway(&db, Limits::danger_none()).await,
    );
    let first = key(&db, &spec("billing", &[Scope::MessagesSend])).await;
    assert_eq!(
        a.post("/v1/messages", &first, &message("+819012345670"))
            .await
            .status(),
        200
    );
    assert_eq!(
        b.post("/v1/messages", &first, &message("+819012345671"))
            .await
            .status(),
        200
    );

    // Rotate with a grace period: both work until it ends, then only the new one.
    let id = db.keys().await?[0].id.clone();
    let (second, _) = rotate_key(&db, &id, Duration::from_secs(600), NOW).await?;
    let second = second.expose_secret().to_owned();
    assert_eq!(
        b.post("/v1/messages", &first, &message("+819012345672"))
            .await
            .status(),
        200
    );
    assert_eq!(
        a.post("/v1/messages", &second, &message("+819012345673"))
            .await
            .status(),
        200
    );
    a.clock.advance(Duration::from_secs(600));
    b.clock.advance(Duration::from_secs(600));
    assert_eq!(
        b.post("/v1/messages", &first, &message("+819012345674"))
            .await
            .status(),
        401
    );

    // Revoked through one instance's database: refused by the other on the next request.
    let second_id = db
        .keys()
        .await?
        .into_iter()
        .find(|k| k.id != id)
        .unwrap()
        .id;
    assert!(db.revoke_key(&second_id, NOW + 600_000).await?);
    assert_eq!(
        b.post("/v1/messages", &second, &message("+819012345675"))
            .await
            .status(),
        401
    );
    assert_eq!(
        a.post("/v1/messages", &second, &message("+819012345676"))
            .await
            .status(),
        401
    );
    assert_eq!(a.delivered().len() + b.delivered().len(), 4);
    Ok(())
}
