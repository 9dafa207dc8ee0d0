//! Delivery receipts settle the audit trail: the reference the gateway gives providers is
//! the audit record's id, so a receipt finds its row (Twilio's `?ref=`, NTT CPaaS's
//! `messageId`), even one whose instance died before completing it. The rules on SQLite
//! and PostgreSQL, and end to end over HTTP.

use std::sync::Arc;

use phone_otp::Limits;
use phone_otp_gateway::audit::reconcile;
use phone_otp_gateway::db::{AuditRecord, AuditWrite, Db, Dimension, Settled};
use serde_json::json;

use crate::callbacks::{post_twilio, twilio_signature};
use crate::db::{postgres, sqlite};
use crate::support::{NTT_CALLBACK_TOKEN, Setup, TWILIO_CALLBACK_URL, TestGateway, TestResult};

fn id(n: u8) -> String {
    format!("{n:032x}")
}

fn row(n: u8, outcome: &str, at: i64) -> AuditRecord {
    AuditRecord {
        id: id(n),
        at,
        endpoint: "messages".to_owned(),
        system: Some("billing".to_owned()),
        outcome: outcome.to_owned(),
        ..AuditRecord::default()
    }
}

async fn by_id(db: &Db, n: u8) -> AuditRecord {
    db.audit_records(0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id(n))
        .expect("the row")
}

async fn receipts_settle_rows_on(db: &Db) -> TestResult {
    let timeout = std::time::Duration::from_secs(10);
    let now = 1_700_000_000_000;
    let old = now - i64::try_from(reconcile::grace(timeout).as_millis())? - 1;
    for record in [
        row(1, "pending", old), // its instance died; the receipt arrives before the pass
        row(2, "pending", old), // died; no receipt
        row(3, "unknown", old), // a provider did not answer in time
        row(4, "pending", now), // live: its completion is still to come
    ] {
        db.write_audit_batch(&[AuditWrite::Insert(record)]).await?;
    }
    assert!(db.record_receipt(&id(1), "twilio", true).await?);
    assert!(db.record_receipt(&id(3), "ntt-cpaas", false).await?);
    assert!(db.record_receipt(&id(4), "twilio", true).await?);
    assert!(
        !db.record_receipt(&id(9), "twilio", true).await?,
        "no such row"
    );

    let settled = reconcile::pass(db, now, timeout, false).await?;
    assert_eq!(
        settled,
        Settled {
            confirmed: 1,
            unknown: 1
        }
    );
    let one = by_id(db, 1).await;
    assert_eq!(
        (
            one.outcome.as_str(),
            one.provider.as_deref(),
            one.receipt.as_deref()
        ),
        ("confirmed", Some("twilio"), Some("delivered"))
    );
    assert_eq!(by_id(db, 2).await.outcome, "unknown");
    let three = by_id(db, 3).await;
    assert_eq!(
        (
            three.outcome.as_str(),
            three.provider.as_deref(),
            three.receipt.as_deref()
        ),
        ("confirmed", Some("ntt-cpaas"), Some("undelivered"))
    );
    // A receipt for a row already `unknown` confirms it later too.
    assert!(db.record_receipt(&id(2), "twilio", true).await?);
    assert_eq!(by_id(db, 2).await.outcome, "confirmed");
    // `delivered` is final: an `undelivered` arriving after it does not replace it.
    assert!(db.record_receipt(&id(1), "twilio", false).await?);
    assert_eq!(by_id(db, 1).await.receipt.as_deref(), Some("delivered"));

    // The live row's completion keeps the receipt; an outcome it thought unknown is
    // confirmed by it, and the provider stays recorded.
    let mut done = row(4, "unknown", now);
    done.providers = Some("twilio:timeout".to_owned());
    db.write_audit_batch(&[AuditWrite::Complete(done)]).await?;
    let four = by_id(db, 4).await;
    assert_eq!(
        (
            four.outcome.as_str(),
            four.provider.as_deref(),
            four.receipt.as_deref()
        ),
        ("confirmed", Some("twilio"), Some("delivered"))
    );

    // The ledger: every row with a receipt is a send; receipts counted apart.
    let report = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    let totals = &report.rows[0];
    assert_eq!(
        (
            totals.requests,
            totals.sends,
            totals.unknown,
            totals.delivered,
            totals.undelivered
        ),
        (4, 4, 0, 3, 1)
    );
    Ok(())
}

#[tokio::test]
async fn receipts_settle_rows_on_sqlite() -> TestResult {
    receipts_settle_rows_on(&sqlite().await.unwrap()).await
}

#[tokio::test]
async fn receipts_settle_rows_on_postgres() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    receipts_settle_rows_on(&db).await
}

async fn gateway(db: &Db) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await
}

async fn ntt_report(gw: &TestGateway, message_id: &str, group: &str) -> u16 {
    gw.client
        .post(format!("{}/callbacks/ntt-cpaas/delivery", gw.url))
        .header("x-callback-token", NTT_CALLBACK_TOKEN)
        .json(&json!({"results": [{
            "messageId": message_id,
            "to": "819012345678",
            "status": {"groupId": 3, "groupName": group, "id": 5, "name": "X"}
        }]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn twilio_receipt(gw: &TestGateway, reference: &str, status: &str) -> u16 {
    let params = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", status),
        ("To", "+819012345678"),
    ];
    let query = format!("?ref={reference}");
    let signature = twilio_signature(&format!("{TWILIO_CALLBACK_URL}{query}"), &params);
    post_twilio(gw, &query, &params, Some(signature))
        .await
        .status()
        .as_u16()
}

/// Each send's provider reference is its audit record's id; Twilio's and NTT CPaaS's
/// receipts land on that record and in the ledger.
#[tokio::test]
async fn a_sends_receipt_lands_on_its_audit_record() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let token = crate::tenancy::key(&db, "billing").await;
    for (to, path, body) in [
        (
            "+819012345678",
            "/v1/challenges",
            json!({"to": "+819012345678"}),
        ),
        (
            "+819012345679",
            "/v1/challenges",
            json!({"to": "+819012345679"}),
        ),
    ] {
        let answer = gw.post(path, &token, &body).await;
        assert_eq!(answer.status(), 201, "{to}");
    }
    let rows = db.audit_records(0, i64::MAX).await?;
    let sent: Vec<&AuditRecord> = rows.iter().filter(|r| r.provider.is_some()).collect();
    assert_eq!(sent.len(), 2);
    let mut references: Vec<String> = gw
        .delivered()
        .iter()
        .map(|m| m.reference().to_owned())
        .collect();
    references.sort();
    assert_eq!(
        references,
        sent.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "each send's reference is its record's id"
    );

    assert_eq!(twilio_receipt(&gw, &sent[0].id, "delivered").await, 204);
    assert_eq!(ntt_report(&gw, &sent[1].id, "UNDELIVERABLE").await, 204);
    // A reference that is not one of ours, or names no row, changes nothing.
    assert_eq!(twilio_receipt(&gw, "not-ours", "delivered").await, 204);
    assert_eq!(
        ntt_report(&gw, &format!("{:032x}", 7), "DELIVERED").await,
        204
    );
    let receipts: Vec<Option<String>> = db
        .audit_records(0, i64::MAX)
        .await?
        .into_iter()
        .filter(|r| r.provider.is_some())
        .map(|r| r.receipt)
        .collect();
    assert_eq!(
        receipts,
        [Some("delivered".to_owned()), Some("undelivered".to_owned())]
    );
    let report = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    assert_eq!(
        (report.rows[0].delivered, report.rows[0].undelivered),
        (1, 1)
    );
    Ok(())
}

/// A send whose provider did not answer in time is `unknown` in the ledger until the
/// provider's receipt says it went out: then it is `confirmed`, a send.
#[tokio::test]
async fn a_receipt_confirms_an_unknown_outcome() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        primary: Arc::new(crate::support::Hung),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    let token = crate::tenancy::key(&db, "billing").await;
    let answer = gw
        .post("/v1/challenges", &token, &json!({"to": "+819012345678"}))
        .await;
    assert_eq!(answer.status(), 202);
    let record = db.audit_records(0, i64::MAX).await?.pop().unwrap();
    assert_eq!(record.outcome, "unknown");
    assert_eq!(ntt_report(&gw, &record.id, "DELIVERED").await, 204);
    let record = db.audit_records(0, i64::MAX).await?.pop().unwrap();
    assert_eq!(
        (record.outcome.as_str(), record.receipt.as_deref()),
        ("confirmed", Some("delivered"))
    );
    let report = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    let row = &report.rows[0];
    assert_eq!(
        (row.sends, row.unknown, row.possible_duplicates),
        (1, 0, 0),
        "one send, confirmed: not a duplicate of its own timed-out attempt"
    );
    Ok(())
}

/// With the database down a receipt is refused (503: the provider retries) and not
/// counted, so it is not marked seen and its retry is recorded and counted.
#[tokio::test]
async fn a_receipt_is_not_lost_while_the_database_is_down() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = gateway(&db).await;
    let reference = format!("{:032x}", 5);
    db.close().await;
    assert_eq!(twilio_receipt(&gw, &reference, "delivered").await, 503);
    let metrics = gw
        .client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !metrics.contains("phone_otp_delivery_reports_total{provider=\"twilio\""),
        "not counted"
    );
    Ok(())
}
