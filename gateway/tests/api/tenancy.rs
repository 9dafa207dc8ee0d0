//! Calling systems kept apart: one system cannot resend, verify or spend for another
//! system's challenge, on one instance and across two instances on one Redis.

use std::sync::Arc;

use phone_otp::{Budget, BudgetCap, BudgetScope, Budgets, Limits, PhoneNumber};
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::db::Db;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::db::sqlite;
use crate::keys::{NOW, spec};
use crate::support::{Setup, TestGateway, TestResult, skip_loudly, unique};

/// Three messages per system per day.
fn limits() -> Limits {
    Limits {
        budgets: Some(Budgets {
            prices: crate::usage::prices(),
            caps: vec![Budget {
                scope: BudgetScope::EachTenant,
                per_day: BudgetCap::Messages(3),
            }],
        }),
        ..Limits::danger_none()
    }
}

async fn instance(db: &Db, store: Option<Arc<dyn phone_otp::OtpStore>>) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        store,
        limits: limits(),
        ..Setup::default()
    })
    .await
}

pub async fn key(db: &Db, owner: &str) -> String {
    let scopes = [Scope::ChallengesStart, Scope::ChallengesVerify];
    let (token, _) = phone_otp_gateway::auth::key_admin::create_key(db, &spec(owner, &scopes), NOW)
        .await
        .unwrap();
    token.expose_secret().to_owned()
}

/// `a` serves system A, `b` serves system B (the same gateway, or a second instance on the
/// same store and database).
async fn another_system_cannot_touch_a_challenge(
    db: &Db,
    a: &TestGateway,
    b: &TestGateway,
) -> TestResult {
    let (billing, crm) = (key(db, "billing").await, key(db, "crm").await);
    let to = "+819012340001";
    let started = a
        .post(
            "/v1/challenges",
            &billing,
            &json!({"to": to, "subject": "alice"}),
        )
        .await;
    assert_eq!(started.status(), 201);
    let id = started.json::<Value>().await?["challenge_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let number = PhoneNumber::parse(to)?;
    let code = a
        .primary
        .last_code_for(&number)
        .expect("sent")
        .expose_secret()
        .to_owned();
    let sent = a.delivered().len() + b.delivered().len();

    // System B, with its own valid key and the id: the same 404 as for an unknown id.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let unknown_resend = b
        .post(
            &format!("/v1/challenges/{unknown}/resend"),
            &crm,
            &json!({}),
        )
        .await;
    assert_eq!(unknown_resend.status(), 404);
    let unknown_body: Value = unknown_resend.json().await?;
    for _ in 0..2 {
        let resend = b
            .post(&format!("/v1/challenges/{id}/resend"), &crm, &json!({}))
            .await;
        assert_eq!(resend.status(), 404);
        assert_eq!(resend.json::<Value>().await?, unknown_body);
    }
    for _ in 0..6 {
        let verify = b
            .post(
                &format!("/v1/challenges/{id}/verify"),
                &crm,
                &json!({"code": code}),
            )
            .await;
        assert_eq!(verify.status(), 404);
        assert_eq!(
            verify.json::<Value>().await?,
            json!({"outcome": "not_found"})
        );
    }
    assert_eq!(
        a.delivered().len() + b.delivered().len(),
        sent,
        "nothing was sent for B"
    );

    // A's challenge kept all five attempts, and A's budget is untouched: a resend and one
    // more start fit in A's three messages.
    let wrong: String = code
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let mismatch = a
        .post(
            &format!("/v1/challenges/{id}/verify"),
            &billing,
            &json!({"code": wrong}),
        )
        .await;
    assert_eq!(mismatch.status(), 422);
    assert_eq!(mismatch.json::<Value>().await?["attempts_left"], 4);
    let resend = a
        .post(&format!("/v1/challenges/{id}/resend"), &billing, &json!({}))
        .await;
    assert_eq!(resend.status(), 200);
    let second = a
        .post("/v1/challenges", &billing, &json!({"to": "+819012340002"}))
        .await;
    assert_eq!(second.status(), 201);
    let over = a
        .post("/v1/challenges", &billing, &json!({"to": "+819012340003"}))
        .await;
    assert_eq!(over.status(), 429, "A's fourth message is over its budget");
    // The code A's user received still verifies, for A.
    let code = a
        .primary
        .last_code_for(&number)
        .expect("resent")
        .expose_secret()
        .to_owned();
    let verified = a
        .post(
            &format!("/v1/challenges/{id}/verify"),
            &billing,
            &json!({"code": code}),
        )
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.json::<Value>().await?["subject"], "alice");

    // B's attempts are audited as refusals under B, none of them a send.
    let records = db.audit_records(0, i64::MAX).await?;
    let of_crm: Vec<_> = records
        .iter()
        .filter(|r| r.system.as_deref() == Some("crm"))
        .collect();
    assert_eq!(of_crm.len(), 9);
    for record in of_crm {
        assert_eq!(record.status, 404);
        assert_eq!(record.outcome, "not_found");
        assert_eq!(record.provider, None);
        assert_eq!(record.segments, None);
    }
    Ok(())
}

#[tokio::test]
async fn another_system_cannot_resend_verify_or_spend_for_a_challenge() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = instance(&db, None).await;
    another_system_cannot_touch_a_challenge(&db, &gw, &gw).await
}

#[tokio::test]
async fn systems_stay_apart_across_two_instances_on_redis() -> TestResult {
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    let db = sqlite().await.unwrap();
    let prefix = format!("tenancy-test:{}:", unique());
    let store: Arc<dyn phone_otp::OtpStore> =
        Arc::new(phone_otp::RedisStore::connect(&redis_url, &prefix).await?);
    let a = instance(&db, Some(Arc::clone(&store))).await;
    let b = instance(&db, Some(store)).await;
    another_system_cannot_touch_a_challenge(&db, &a, &b).await
}

/// An `Idempotency-Key` is the calling system's own: another system using the same key
/// is not refused as its duplicate (and learns nothing of it), and each system's repeat
/// is refused for itself only, nothing sent for it.
#[tokio::test]
async fn an_idempotency_key_belongs_to_its_system() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = instance(&db, None).await;
    let key = |owner: &'static str| {
        let db = db.clone();
        async move {
            let (token, _) = phone_otp_gateway::auth::key_admin::create_key(
                &db,
                &spec(owner, &[Scope::MessagesSend]),
                NOW,
            )
            .await
            .unwrap();
            token.expose_secret().to_owned()
        }
    };
    let (billing, crm) = (key("billing").await, key("crm").await);
    let send = |token: &str, to: &str| {
        gw.client
            .post(format!("{}/v1/messages", gw.url))
            .bearer_auth(token.to_owned())
            .header("Idempotency-Key", "order-1")
            .json(&json!({"to": to, "code": "482913"}))
            .send()
    };
    assert_eq!(send(&billing, "+819012340101").await?.status(), 200);
    assert_eq!(
        send(&crm, "+819012340102").await?.status(),
        200,
        "crm's own key"
    );
    assert_eq!(send(&billing, "+819012340101").await?.status(), 409);
    assert_eq!(send(&crm, "+819012340102").await?.status(), 409);
    assert_eq!(gw.delivered().len(), 2);
    Ok(())
}

/// A challenge kept because its delivery outcome is unknown belongs to the system that
/// started it, like any other: another system's verify is the 404 of an unknown id and
/// spends none of its attempts.
#[tokio::test]
async fn a_kept_challenge_answers_only_its_system() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        primary: Arc::new(crate::support::Hung),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    let (billing, crm) = (key(&db, "billing").await, key(&db, "crm").await);
    let started = gw
        .post("/v1/challenges", &billing, &json!({"to": "+819012340201"}))
        .await;
    assert_eq!(started.status(), 202);
    let id = started.json::<Value>().await?["challenge_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = format!("/v1/challenges/{id}/verify");
    let other = gw.post(&verify, &crm, &json!({"code": "000000"})).await;
    assert_eq!(other.status(), 404);
    // The owner's wrong code still has every attempt but one left: crm spent none.
    let own: Value = gw
        .post(&verify, &billing, &json!({"code": "000000"}))
        .await
        .json()
        .await?;
    assert_eq!(own["outcome"], "mismatch", "{own}");
    assert_eq!(own["attempts_left"], 4, "{own}");
    Ok(())
}
