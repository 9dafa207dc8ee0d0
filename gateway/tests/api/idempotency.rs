//! `Idempotency-Key` on the challenge endpoints: a retry gets the first answer (the same
//! challenge id) and no second code; the key is its system's own; a refusal gives it back.
//! The stored claims themselves on SQLite and on PostgreSQL.

use std::sync::Arc;

use phone_otp::{Limits, PhoneNumber, ProviderErrorKind};
use phone_otp_gateway::db::{Claim, Db};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::db::{postgres, sqlite};
use crate::support::{Setup, TestGateway, TestResult};

async fn key(db: &Db, owner: &str) -> String {
    crate::tenancy::key(db, owner).await
}

async fn gateway(db: &Db) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await
}

/// POSTs `body` to `path` with `token` and `Idempotency-Key: idempotency`.
async fn post(
    gw: &TestGateway,
    path: &str,
    token: &str,
    idempotency: &str,
    body: &Value,
) -> reqwest::Response {
    gw.client
        .post(format!("{}{path}", gw.url))
        .bearer_auth(token)
        .header("Idempotency-Key", idempotency)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, response.json().await.unwrap())
}

#[tokio::test]
async fn a_retried_start_gets_the_first_answer_and_no_second_code() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let billing = key(&db, "billing").await;
    let body = json!({"to": "+819012345678", "subject": "user-1"});

    let (status, replayed, first) =
        answer(post(&gw, "/v1/challenges", &billing, "signup-1", &body).await).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, again) =
        answer(post(&gw, "/v1/challenges", &billing, "signup-1", &body).await).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first, "the first answer, challenge id included");
    assert_eq!(gw.delivered().len(), 1, "one code");

    // The replayed id is the live challenge: the one code sent verifies against it.
    let code = gw
        .primary
        .last_code_for(&PhoneNumber::parse("+819012345678")?)
        .unwrap();
    let id = again["challenge_id"].as_str().unwrap();
    let verified = gw
        .post(
            &format!("/v1/challenges/{id}/verify"),
            &billing,
            &json!({"code": code.expose_secret()}),
        )
        .await;
    assert_eq!(verified.status(), 200);

    // The same key on another request (another number) is refused, nothing sent.
    let other = json!({"to": "+819012345679", "subject": "user-1"});
    let (status, _, refused) =
        answer(post(&gw, "/v1/challenges", &billing, "signup-1", &other).await).await;
    assert_eq!(status, 422);
    assert_eq!(refused["code"], "idempotency_key_reused");
    assert_eq!(gw.delivered().len(), 1);

    // A resend keyed the same way sends once, and its key is apart from the start's.
    let resend = format!(
        "/v1/challenges/{}/resend",
        first["challenge_id"].as_str().unwrap()
    );
    let start_again = json!({"to": "+819012345670"});
    let (status, _, started) =
        answer(post(&gw, "/v1/challenges", &billing, "signup-2", &start_again).await).await;
    assert_eq!(status, 201);
    let resend_live = format!(
        "/v1/challenges/{}/resend",
        started["challenge_id"].as_str().unwrap()
    );
    gw.clock.advance(std::time::Duration::from_secs(60));
    let (status, _, resent) =
        answer(post(&gw, &resend_live, &billing, "resend-1", &json!({})).await).await;
    assert_eq!(status, 200, "{resent}");
    let (status, replayed, resent_again) =
        answer(post(&gw, &resend_live, &billing, "resend-1", &json!({})).await).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(resent_again, resent);
    assert_eq!(gw.delivered().len(), 3, "start, start, one resend");
    // The resend's key on another challenge is another request.
    let (status, _, _) = answer(post(&gw, &resend, &billing, "resend-1", &json!({})).await).await;
    assert_eq!(status, 422);
    Ok(())
}

/// Two systems using the same key each get their own challenge; neither replay shows the
/// other's id.
#[tokio::test]
async fn an_idempotency_key_is_its_systems_own() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let (billing, crm) = (key(&db, "billing").await, key(&db, "crm").await);
    let body = json!({"to": "+819012345678"});
    let (_, _, for_billing) =
        answer(post(&gw, "/v1/challenges", &billing, "k-1", &body).await).await;
    let (status, replayed, for_crm) =
        answer(post(&gw, "/v1/challenges", &crm, "k-1", &body).await).await;
    assert_eq!((status, replayed), (201, None), "crm's own request");
    assert_ne!(for_crm["challenge_id"], for_billing["challenge_id"]);
    let (_, _, crm_again) = answer(post(&gw, "/v1/challenges", &crm, "k-1", &body).await).await;
    assert_eq!(crm_again["challenge_id"], for_crm["challenge_id"]);
    let (_, _, billing_again) =
        answer(post(&gw, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert_eq!(billing_again["challenge_id"], for_billing["challenge_id"]);
    assert_eq!(gw.delivered().len(), 2);
    Ok(())
}

/// A start that sent nothing (every provider refused) gives its key back: the retry runs
/// again and, the provider back, sends its one code.
#[tokio::test]
async fn a_refused_start_gives_its_key_back() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let billing = key(&db, "billing").await;
    gw.primary.fail_always(ProviderErrorKind::Unavailable);
    gw.secondary.fail_always(ProviderErrorKind::Unavailable);
    let body = json!({"to": "+819012345678"});
    let (status, _, refused) =
        answer(post(&gw, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert!(status >= 400, "{refused}");
    assert!(gw.delivered().is_empty());
    gw.primary.recover();
    let (status, replayed, _) =
        answer(post(&gw, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert_eq!((status, replayed), (201, None), "run again, not replayed");
    assert_eq!(gw.delivered().len(), 1);
    Ok(())
}

/// Concurrent starts with one key: one challenge, one code; every other answer is the
/// first answer replayed or 409 while it runs.
#[tokio::test]
async fn concurrent_retries_send_one_code() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let billing = key(&db, "billing").await;
    let body = json!({"to": "+819012345678"});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let request = gw
            .client
            .post(format!("{}/v1/challenges", gw.url))
            .bearer_auth(&billing)
            .header("Idempotency-Key", "burst")
            .json(&body);
        tasks.spawn(async move { answer(request.send().await.unwrap()).await });
    }
    let mut ids = Vec::new();
    let mut in_progress = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, _, body) = done?;
        match status {
            201 => ids.push(body["challenge_id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(body["code"], "request_in_progress");
                in_progress += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == ids[0]), "one challenge: {ids:?}");
    assert_eq!(ids.len() + in_progress, 12);
    assert_eq!(gw.delivered().len(), 1, "one code");
    Ok(())
}

/// While the first request waits on a provider that stalls (1.5 s, the attempt timeout), a
/// concurrent retry is 409; once the first
/// answered `unknown` (202, the code may arrive), the retry gets that answer, not a second
/// challenge.
#[tokio::test]
async fn a_retry_during_a_stalled_start_waits_and_then_gets_the_unknown_answer() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        primary: Arc::new(crate::support::Hung),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    let billing = key(&db, "billing").await;
    let body = json!({"to": "+819012345678"});
    let mut both = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let request = gw
            .client
            .post(format!("{}/v1/challenges", gw.url))
            .bearer_auth(&billing)
            .header("Idempotency-Key", "k-1")
            .json(&body);
        both.spawn(async move { answer(request.send().await.unwrap()).await });
    }
    let mut answers = Vec::new();
    while let Some(done) = both.join_next().await {
        answers.push(done?);
    }
    answers.sort_by_key(|(status, _, _)| *status);
    let [(first_status, _, first), (retry_status, _, retry)] = &answers[..] else {
        panic!("two answers");
    };
    assert_eq!(*first_status, 202, "{first}");
    assert_eq!(first["outcome"], "unknown");
    assert_eq!(*retry_status, 409, "{retry}");
    assert_eq!(retry["code"], "request_in_progress");
    let (status, replayed, again) =
        answer(post(&gw, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert_eq!((status, replayed.as_deref()), (202, Some("true")));
    assert_eq!(again["challenge_id"], first["challenge_id"]);
    assert_eq!(
        gw.secondary.attempts(),
        0,
        "no second provider, no second code"
    );
    Ok(())
}

#[tokio::test]
async fn a_malformed_key_is_refused_before_anything_is_sent() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let billing = key(&db, "billing").await;
    let long = "k".repeat(257);
    for bad in ["", "two words", long.as_str()] {
        let (status, _, body) = answer(
            post(
                &gw,
                "/v1/challenges",
                &billing,
                bad,
                &json!({"to": "+819012345678"}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{bad:?}");
        assert_eq!(body["code"], "invalid_request", "{body}");
    }
    assert!(gw.delivered().is_empty());
    Ok(())
}

/// Without a database there is nowhere to keep the answer: the key is refused, not
/// silently ignored.
#[tokio::test]
async fn without_a_database_the_key_is_refused() -> TestResult {
    let gw = TestGateway::start().await;
    let (status, _, body) = answer(
        post(
            &gw,
            "/v1/challenges",
            crate::support::API_TOKEN,
            "k-1",
            &json!({"to": "+819012345678"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "idempotency_unsupported");
    assert!(gw.delivered().is_empty());
    Ok(())
}

async fn claims_contract(db: &Db) {
    let claim = |system: &'static str, key: &'static str, print: &'static str, now: i64| {
        let db = db.clone();
        async move {
            db.claim_idempotency_key(system, key, print, now, now - 60_000)
                .await
                .unwrap()
        }
    };
    let t = 1_000_000_000;
    assert_eq!(claim("a", "k", "p1", t).await, Claim::Fresh);
    assert_eq!(claim("a", "k", "p1", t + 1).await, Claim::InProgress);
    assert_eq!(claim("a", "k", "p2", t + 1).await, Claim::Mismatch);
    assert_eq!(claim("b", "k", "p1", t + 1).await, Claim::Fresh, "b's own");
    db.settle_idempotency_key("a", "k", 201, "{\"x\":1}")
        .await
        .unwrap();
    assert_eq!(
        claim("a", "k", "p1", t + 2).await,
        Claim::Answered {
            status: 201,
            body: "{\"x\":1}".to_owned()
        }
    );
    // Released: claimed anew.
    db.release_idempotency_key("b", "k").await.unwrap();
    assert_eq!(claim("b", "k", "p1", t + 3).await, Claim::Fresh);
    // Never settled nor released (the instance stopped): stale after a minute, taken over
    // once.
    assert_eq!(claim("b", "k", "p1", t + 59_000).await, Claim::InProgress);
    assert_eq!(claim("b", "k", "p1", t + 61_000).await, Claim::Fresh);
    assert_eq!(claim("b", "k", "p1", t + 61_001).await, Claim::InProgress);
    // A settled answer is never released by a late release.
    db.release_idempotency_key("a", "k").await.unwrap();
    assert!(matches!(
        claim("a", "k", "p1", t + 4).await,
        Claim::Answered { .. }
    ));
    // Purged after its day.
    assert_eq!(db.purge_idempotency_keys(t + 10).await.unwrap(), 1, "a's");
    assert_eq!(claim("a", "k", "p1", t + 11).await, Claim::Fresh);
}

#[tokio::test]
async fn claims_on_sqlite() {
    claims_contract(&sqlite().await.unwrap()).await;
}

#[tokio::test]
async fn claims_on_postgres() {
    if let Some(db) = postgres().await {
        claims_contract(&db).await;
    }
}

/// Two instances on one PostgreSQL: a key claimed on one is in progress, then answered,
/// on the other.
#[tokio::test]
async fn one_key_across_two_instances() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    let store: Arc<dyn phone_otp::OtpStore> = Arc::new(phone_otp::MemoryStore::new());
    let instance = || {
        TestGateway::with(Setup {
            keys: Some(db.clone()),
            store: Some(store.clone()),
            limits: Limits::danger_none(),
            ..Setup::default()
        })
    };
    let (a, b) = (instance().await, instance().await);
    let billing = key(&db, "billing").await;
    let body = json!({"to": "+819012345678"});
    let (status, _, first) = answer(post(&a, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert_eq!(status, 201);
    let (status, replayed, again) =
        answer(post(&b, "/v1/challenges", &billing, "k-1", &body).await).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first);
    assert_eq!(a.delivered().len() + b.delivered().len(), 1);
    Ok(())
}
