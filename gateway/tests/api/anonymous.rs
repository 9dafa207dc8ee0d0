//! Unauthenticated traffic costs as little as possible: no database row, a per-network
//! limit on failed authentications before any credential check, client request ids only
//! in a strict short form, and reserved audit rows finished even when a request is cancelled.

use std::sync::Arc;
use std::time::Duration;

use phone_otp::Limits;
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::db::Db;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::db::sqlite;
use crate::keys::{NOW, spec};
use crate::support::{Hung, NTT_CALLBACK_TOKEN, Setup, TestGateway, TestResult, sample_value};

async fn gateway(db: &Db) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await
}

async fn key(db: &Db) -> String {
    let (token, _) = phone_otp_gateway::auth::key_admin::create_key(
        db,
        &spec("billing", &[Scope::MessagesSend]),
        NOW,
    )
    .await
    .unwrap();
    token.expose_secret().to_owned()
}

#[tokio::test]
async fn a_flood_of_bad_credentials_writes_nothing_and_is_throttled_per_network() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let good = key(&db).await;
    let body = json!({"to": "+819012345678", "code": "482913"});
    // A mix of what a flood brings: no token, a guess of our key format, a random one.
    let guesses = [
        "",
        "potp_sys_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB_00000000",
        "not-a-key-at-all-but-long",
    ];
    let mut statuses = Vec::new();
    for i in 0..120 {
        let mut request = gw
            .client
            .post(format!("{}/v1/messages", gw.url))
            .header("x-request-id", format!("flood-{i}"))
            .json(&body);
        let guess = guesses[i % guesses.len()];
        if !guess.is_empty() {
            request = request.bearer_auth(guess);
        }
        statuses.push(request.send().await?.status().as_u16());
    }
    // 30 failures a minute from one network, then refused unread.
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    // While throttled even the good key waits (its network guessed): nothing is looked up.
    let refused = gw.post("/v1/messages", &good, &body).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(gw.delivered().is_empty());
    // No row was written for any of them.
    assert!(db.audit_records(0, i64::MAX).await?.is_empty());
    if let Some(metrics) = gw.metrics().await {
        let count = |name| sample_value(&metrics, name, &[]);
        assert_eq!(count("phone_otp_gateway_auth_failures_total"), 30.0);
        assert_eq!(count("phone_otp_gateway_auth_throttled_total"), 91.0);
    }

    // Once the failures age out, the good key works, and only its request is recorded.
    gw.clock.advance(Duration::from_secs(3600));
    assert_eq!(gw.post("/v1/messages", &good, &body).await.status(), 200);
    let records = db.audit_records(0, i64::MAX).await?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].system.as_deref(), Some("billing"));
    Ok(())
}

#[tokio::test]
async fn the_delivery_report_token_cannot_be_guessed() -> TestResult {
    let gw = TestGateway::start().await;
    let report = json!({"results": [{"to": "819012345678", "status": {"groupName": "DELIVERED"}}]});
    let mut statuses = Vec::new();
    for guess in 0..300 {
        let response = gw
            .client
            .post(format!("{}/callbacks/ntt-cpaas/delivery", gw.url))
            .header("x-callback-token", format!("guess-{guess:04}-xxxxxxxxxxxx"))
            .json(&report)
            .send()
            .await?;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 30);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 270);
    // Even the right token waits now; later it is heard.
    let right = |gw: &TestGateway| {
        gw.client
            .post(format!("{}/callbacks/ntt-cpaas/delivery", gw.url))
            .header("x-callback-token", NTT_CALLBACK_TOKEN)
            .json(&report)
            .send()
    };
    assert_eq!(right(&gw).await?.status(), 429);
    gw.clock.advance(Duration::from_secs(3600));
    assert_eq!(right(&gw).await?.status(), 204);
    Ok(())
}

#[tokio::test]
async fn client_request_ids_are_kept_only_in_a_strict_short_form() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let good = key(&db).await;
    let body = json!({"to": "+819012345678", "code": "482913"});
    let long = "a".repeat(65);
    let mut answered = Vec::new();
    for id in [
        "req-7f3a9c2e_01.x:y",
        "has spaces",
        "<script>",
        long.as_str(),
        "ünïcode",
    ] {
        let response = gw
            .client
            .post(format!("{}/v1/messages", gw.url))
            .bearer_auth(&good)
            .header("x-request-id", id)
            .json(&body)
            .send()
            .await?;
        let echoed = response.headers()["x-request-id"].to_str()?.to_owned();
        gw.clock.advance(Duration::from_secs(60));
        answered.push((id.to_owned(), echoed));
    }
    assert_eq!(
        answered[0].1, "req-7f3a9c2e_01.x:y",
        "a well-formed id is kept"
    );
    for (sent, echoed) in &answered[1..] {
        assert_ne!(sent, echoed);
        assert!(echoed.len() <= 64 && !echoed.contains(' '), "{echoed}");
    }
    let mut stored: Vec<String> = db
        .audit_records(0, i64::MAX)
        .await?
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    stored.sort();
    let mut expected: Vec<String> = answered.into_iter().map(|(_, echoed)| echoed).collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "the audit trail holds the ids the client was told"
    );
    Ok(())
}

#[tokio::test]
async fn a_send_cancelled_mid_flight_leaves_no_pending_row() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        primary: Arc::new(Hung),
        configure: Box::new(|builder| builder.request_timeout(Duration::from_millis(200))),
        ..Setup::default()
    })
    .await;
    let good = key(&db).await;
    let body = json!({"to": "+819012345678", "code": "482913"});
    // The request times out while the provider holds it: the handler is dropped mid-send.
    assert_eq!(gw.post("/v1/messages", &good, &body).await.status(), 408);
    // The completion is written as the record is dropped; wait for it (bounded).
    let mut outcome = String::new();
    for _ in 0..2_000 {
        let records = db.audit_records(0, i64::MAX).await?;
        assert_eq!(records.len(), 1);
        outcome.clone_from(&records[0].outcome);
        if outcome != "pending" {
            assert_eq!(records[0].status, 499);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(outcome, "cancelled");
    Ok(())
}
