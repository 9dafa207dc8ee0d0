//! The audit trail: a record per request (refused ones included), nothing secret in it,
//! fail closed when it cannot be written, exact under concurrency across two instances.

use std::num::NonZeroU32;
use std::sync::Arc;

use phone_otp::{Limits, Micros, PriceTable, ProviderErrorKind, Quota, Rate};
use phone_otp_gateway::auth::key_admin::create_key;
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::db::{AuditRecord, AuditWrite, ConversionBy, Db, Dimension};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::db::{postgres, sqlite};
use crate::keys::{NOW, spec};
use crate::support::{API_TOKEN, Setup, TestGateway, TestResult, fixture, skip_loudly};

async fn records(db: &Db) -> Vec<AuditRecord> {
    db.audit_records(0, i64::MAX).await.unwrap()
}

/// JP SMS through `primary` costs 0.062 USD a segment; nothing else is priced.
pub fn prices() -> PriceTable {
    PriceTable::new("USD").with(Rate {
        provider: "primary".into(),
        country: "JP".into(),
        sms: Micros::from_decimal(0.062),
        voice: None,
    })
}

async fn gateway(db: &Db) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        configure: Box::new(|builder| builder.prices(prices())),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn every_request_is_recorded_without_secrets() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = gateway(&db).await;
    let (token, key) = create_key(&db, &spec("billing", &[Scope::MessagesSend]), NOW).await?;
    let token = token.expose_secret().to_owned();
    let send = json!({"to": "+819012345678", "code": "739148", "purpose": "password_reset"});
    // A second between requests, so the records read back in order.
    let tick = || gw.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(gw.post("/v1/messages", &token, &send).await.status(), 200);
    tick();
    gw.primary.fail_next(ProviderErrorKind::Unavailable);
    let other = json!({"to": "+819012345679", "code": "739148"});
    assert_eq!(gw.post("/v1/messages", &token, &other).await.status(), 200);
    tick();
    // Refused: no token, a bad number.
    assert_eq!(
        gw.post("/v1/messages", "nope-nope-nope-nope", &send)
            .await
            .status(),
        401
    );
    tick();
    let bad = json!({"to": "12", "code": "739148"});
    assert_eq!(gw.post("/v1/messages", &token, &bad).await.status(), 422);

    // The unauthenticated request wrote no row (it is counted in /metrics instead).
    let all = records(&db).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    let sent = &all[0];
    assert_eq!(sent.endpoint, "messages");
    assert_eq!(sent.system.as_deref(), Some("billing"));
    assert_eq!(sent.key_id.as_deref(), Some(key.id.as_str()));
    assert_eq!(sent.purpose.as_deref(), Some("password_reset"));
    assert_eq!(sent.country.as_deref(), Some("JP"));
    assert_eq!(sent.masked_to.as_deref(), Some("+8190****5678"));
    assert_eq!(sent.channel.as_deref(), Some("sms"));
    assert_eq!(sent.providers.as_deref(), Some("primary:ok"));
    assert_eq!(sent.segments, Some(1));
    assert_eq!(sent.cost_micros, Some(62_000));
    assert_eq!(sent.currency.as_deref(), Some("USD"));
    assert_eq!((sent.status, sent.outcome.as_str()), (200, "ok"));
    assert!(!sent.request_id.is_empty());
    assert_eq!(
        all[1].providers.as_deref(),
        Some("primary:unavailable secondary:ok"),
        "failover is recorded"
    );
    // Sent by `secondary`, which has no rate: no cost rather than a wrong one.
    assert_eq!(
        (all[1].cost_micros, all[1].currency.as_deref()),
        (None, None)
    );
    assert_eq!(
        (all[2].status, all[2].outcome.as_str()),
        (422, "invalid_number")
    );
    for record in &all {
        let text = format!("{record:?}");
        for secret in ["739148", "9012345678", &token[22..]] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn when_the_audit_cannot_be_written_nothing_is_sent() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    // The static API token needs no database to authenticate, so only the audit fails.
    let gw = gateway(&db).await;
    db.close().await;
    let send = json!({"to": "+819012345678", "code": "739148"});
    let response = gw.post("/v1/messages", API_TOKEN, &send).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["code"], "audit_unavailable");
    let start = gw
        .post("/v1/challenges", API_TOKEN, &json!({"to": "+819012345678"}))
        .await;
    assert_eq!(start.status(), 503);
    // Okta's hook answers its error object (Okta then sends through its own provider).
    if let Some(request) = fixture("okta-telephony-request.json") {
        let body: serde_json::Value = gw.okta(&request).await.json().await?;
        assert!(
            body["error"]["errorSummary"]
                .as_str()
                .unwrap_or("")
                .contains("audit")
        );
    }
    assert!(gw.delivered().is_empty());
    Ok(())
}

#[tokio::test]
async fn two_instances_four_systems_exact_records_and_quotas() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    // One Redis for both instances: the per-system (tenant) quota is shared.
    let prefix = format!("audit-test:{}:", crate::support::unique());
    let store: Arc<dyn phone_otp::OtpStore> =
        Arc::new(phone_otp::RedisStore::connect(&redis_url, &prefix).await?);
    let limits = Limits {
        per_tenant: Some(Quota::per_hour(NonZeroU32::new(250).unwrap())),
        ..Limits::danger_none()
    };
    let instance = || {
        TestGateway::with(Setup {
            keys: Some(db.clone()),
            store: Some(Arc::clone(&store)),
            limits: limits.clone(),
            configure: Box::new(|builder| builder.prices(prices())),
            ..Setup::default()
        })
    };
    let (a, b) = (Arc::new(instance().await), Arc::new(instance().await));
    let systems = ["billing", "crm", "support", "hr"];
    let mut tokens = Vec::new();
    for system in systems {
        let (token, _) = create_key(&db, &spec(system, &[Scope::MessagesSend]), NOW).await?;
        tokens.push(token.expose_secret().to_owned());
    }
    // 1,200 sends, 300 per system, 64 at a time, alternating instances.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..1200usize {
        let gw = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        let token = tokens[i % 4].clone();
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let body = json!({"to": format!("+81901{i:07}"), "code": "739148"});
            let status = gw
                .post("/v1/messages", &token, &body)
                .await
                .status()
                .as_u16();
            drop(permit);
            status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await?);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1000);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 200);
    assert_eq!(a.delivered().len() + b.delivered().len(), 1000);

    let all = records(&db).await;
    assert_eq!(all.len(), 1200, "one record per request");
    for system in systems {
        let mine: Vec<&AuditRecord> = all
            .iter()
            .filter(|r| r.system.as_deref() == Some(system))
            .collect();
        assert_eq!(mine.len(), 300, "{system}");
        assert_eq!(
            mine.iter().filter(|r| r.outcome == "ok").count(),
            250,
            "{system}: quota exact"
        );
        assert_eq!(
            mine.iter().filter(|r| r.outcome == "rate_limited").count(),
            50,
            "{system}"
        );
        assert_eq!(
            mine.iter().filter_map(|r| r.segments).sum::<i64>(),
            250,
            "{system}"
        );
    }
    assert!(all.iter().all(|r| r.outcome != "pending"));
    // The ledger's sums per system are exact too: 250 JP segments at 0.062 USD each.
    let usage = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    let rows: Vec<(String, i64, i64, i64, i64)> = usage
        .rows
        .iter()
        .map(|r| {
            let system = r.key[0].clone().unwrap_or_default();
            (system, r.requests, r.sends, r.segments, r.cost_micros)
        })
        .collect();
    let mut expected: Vec<_> = systems
        .iter()
        .map(|s| ((*s).to_owned(), 300, 250, 250, 15_500_000))
        .collect();
    expected.sort();
    assert_eq!(rows, expected);
    Ok(())
}

#[tokio::test]
async fn refusals_of_a_known_key_are_recorded_under_its_system() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    let gw = gateway(&db).await;
    let (token, key) = create_key(&db, &spec("bi", &[Scope::UsageRead]), NOW).await?;
    let send = json!({"to": "+819012345678", "code": "739148"});
    let refused = gw.post("/v1/messages", token.expose_secret(), &send).await;
    assert_eq!(refused.status(), 403);
    let all = records(&db).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].system.as_deref(), Some("bi"));
    assert_eq!(all[0].key_id.as_deref(), Some(key.id.as_str()));
    assert_eq!(
        (all[0].status, all[0].outcome.as_str()),
        (403, "insufficient_scope")
    );
    assert!(gw.delivered().is_empty());
    Ok(())
}

/// Rows left `pending` become `unknown` once older than the request timeout and its grace
/// (on PostgreSQL, shared by live instances, only those; on SQLite, every one at startup);
/// a completion written later still wins. A send delivered after a timeout counts as a
/// possible duplicate.
async fn pending_rows_are_reconciled_on(db: &Db) -> TestResult {
    use phone_otp_gateway::audit::reconcile;
    use phone_otp_gateway::db::AuditWrite;
    let timeout = std::time::Duration::from_secs(10);
    let grace = i64::try_from(reconcile::grace(timeout).as_millis())?;
    let now = 1_700_000_000_000;
    let pending = |id: &str, at: i64| AuditRecord {
        id: id.to_owned(),
        at,
        endpoint: "messages".to_owned(),
        system: Some("billing".to_owned()),
        outcome: "pending".to_owned(),
        ..AuditRecord::default()
    };
    for record in [
        pending("old", now - grace - 1),
        pending("live", now - grace + 1),
    ] {
        db.write_audit_batch(&[AuditWrite::Insert(record)]).await?;
    }
    assert_eq!(reconcile::pass(db, now, timeout, false).await?.unknown, 1);
    let outcome = |records: &[AuditRecord], id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.outcome.clone())
    };
    let rows = records(db).await;
    assert_eq!(outcome(&rows, "old").as_deref(), Some("unknown"));
    assert_eq!(outcome(&rows, "live").as_deref(), Some("pending"));
    // At startup SQLite settles the live-looking row too; PostgreSQL leaves it to its owner.
    let at_startup = reconcile::pass(db, now, timeout, true).await?;
    assert_eq!(at_startup.unknown, u64::from(!db.is_postgres()));
    // The slow instance completes after all: its outcome replaces `unknown`.
    let mut done = pending("old", now - grace - 1);
    done.outcome = "ok".to_owned();
    done.provider = Some("primary".to_owned());
    db.write_audit_batch(&[AuditWrite::Complete(done)]).await?;
    // A send the second provider delivered after the first timed out: a possible duplicate.
    let mut after_timeout = pending("after-timeout", now);
    after_timeout.outcome = "ok".to_owned();
    after_timeout.providers = Some("primary:timeout secondary:ok".to_owned());
    after_timeout.provider = Some("secondary".to_owned());
    db.write_audit_batch(&[AuditWrite::Insert(after_timeout)])
        .await?;
    let report = db.usage(0, i64::MAX, None, &[Dimension::System]).await?;
    let row = &report.rows[0];
    assert_eq!(
        (
            row.requests,
            row.sends,
            row.unknown,
            row.possible_duplicates
        ),
        (3, 2, i64::from(!db.is_postgres()), 1)
    );
    Ok(())
}

#[tokio::test]
async fn pending_rows_are_reconciled_on_sqlite() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    pending_rows_are_reconciled_on(&db).await
}

#[tokio::test]
async fn pending_rows_are_reconciled_on_postgres() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    pending_rows_are_reconciled_on(&db).await
}

/// A refused send names its limit, every send its masked prefix, and a verification
/// finds its start, so conversion is counted per country and prefix.
async fn refusals_prefixes_and_conversion_on(db: &Db) -> TestResult {
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits {
            per_destination: Some(Quota::per_hour(NonZeroU32::new(1).unwrap())),
            ..Limits::danger_none()
        },
        ..Setup::default()
    })
    .await;
    let (token, _) = create_key(
        db,
        &spec(
            "billing",
            &[Scope::ChallengesStart, Scope::ChallengesVerify],
        ),
        NOW,
    )
    .await?;
    let token = token.expose_secret().to_owned();
    let (other, _) = create_key(
        db,
        &spec("crm", &[Scope::ChallengesStart, Scope::ChallengesVerify]),
        NOW,
    )
    .await?;
    let other = other.expose_secret().to_owned();
    let start = |to: &str| json!({"to": to});
    let mut ids = Vec::new();
    for to in ["+819012345670", "+819012345671", "+447400123456"] {
        let started = gw.post("/v1/challenges", &token, &start(to)).await;
        assert_eq!(started.status(), 201);
        let body: serde_json::Value = started.json().await?;
        ids.push((to, body["challenge_id"].as_str().unwrap_or("").to_owned()));
    }
    // The same number again: refused by its destination quota.
    let refused = gw
        .post("/v1/challenges", &token, &start("+819012345670"))
        .await;
    assert_eq!(refused.status(), 429);
    // Another system's start to the same country: not in billing's conversion.
    assert_eq!(
        gw.post("/v1/challenges", &other, &start("+819012345679"))
            .await
            .status(),
        201
    );
    // Another system, with the right code for billing's second JP challenge: not found,
    // and it counts for no one's conversion.
    let code = gw
        .primary
        .last_code_for(&ids[1].0.parse()?)
        .expect("a code was sent")
        .expose_secret()
        .to_owned();
    let foreign = gw
        .post(
            &format!("/v1/challenges/{}/verify", ids[1].1),
            &other,
            &json!({"code": code}),
        )
        .await;
    assert_eq!(foreign.status(), 404);
    // Two of billing's three are verified: one JP, the GB one.
    for (to, id) in [&ids[0], &ids[2]] {
        let code = gw
            .primary
            .last_code_for(&to.parse()?)
            .expect("a code was sent")
            .expose_secret()
            .to_owned();
        let verified = gw
            .post(
                &format!("/v1/challenges/{id}/verify"),
                &token,
                &json!({"code": code}),
            )
            .await;
        assert_eq!(verified.status(), 200);
    }

    let all = records(db).await;
    let refused: Vec<_> = all.iter().filter(|r| r.outcome == "rate_limited").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].refused_by.as_deref(), Some("destination"));
    assert_eq!(refused[0].prefix.as_deref(), Some("+8190"));
    assert!(
        all.iter()
            .filter(|r| r.outcome != "rate_limited")
            .all(|r| r.refused_by.is_none())
    );
    // A start and its verification carry one fingerprint, never the id itself.
    let fingerprints: Vec<_> = all.iter().filter_map(|r| r.challenge.clone()).collect();
    assert_eq!(
        fingerprints.len(),
        4 + 1 + 2,
        "four started, crm's refused try, two verified: {all:#?}"
    );
    for record in &all {
        for (_, id) in &ids {
            assert!(!format!("{record:?}").contains(id.as_str()));
        }
    }

    let by_country = db
        .conversion(0, i64::MAX, Some("billing"), ConversionBy::Country, 10)
        .await?;
    let rows: Vec<_> = by_country
        .iter()
        .map(|r| (r.key.as_deref(), r.started, r.verified))
        .collect();
    assert_eq!(rows, [(Some("JP"), 2, 1), (Some("GB"), 1, 1)]);
    let by_prefix = db
        .conversion(0, i64::MAX, None, ConversionBy::Prefix, 10)
        .await?;
    let rows: Vec<_> = by_prefix
        .iter()
        .map(|r| {
            (
                r.key.as_deref(),
                r.country.as_deref(),
                r.started,
                r.verified,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (Some("+8190"), Some("JP"), 3, 1),
            (Some("+4474"), Some("GB"), 1, 1)
        ]
    );
    let usage = db
        .usage(
            0,
            i64::MAX,
            Some("billing"),
            &[Dimension::RefusedBy, Dimension::Prefix],
        )
        .await?;
    assert!(usage.rows.iter().any(|r| r.key
        == [Some("destination".to_owned()), Some("+8190".to_owned())]
        && r.requests == 1));
    Ok(())
}

#[tokio::test]
async fn refusals_prefixes_and_conversion_on_sqlite() -> TestResult {
    let db = sqlite().await.expect("sqlite");
    refusals_prefixes_and_conversion_on(&db).await
}

#[tokio::test]
async fn refusals_prefixes_and_conversion_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => refusals_prefixes_and_conversion_on(&db).await,
        None => Ok(()),
    }
}

/// A summed day is clean until a later write changes one of its records' sums: a late
/// receipt, or a verification of one of its challenges on the next day.
async fn a_summed_day_is_dirty_again_after_a_late_write_on(db: &Db) -> TestResult {
    let day = 19_000;
    let record = AuditRecord {
        id: "0".repeat(32),
        at: day * phone_otp_gateway::db::DAY_MS + 1000,
        endpoint: "messages".to_owned(),
        system: Some("billing".to_owned()),
        provider: Some("primary".to_owned()),
        outcome: "ok".to_owned(),
        status: 200,
        ..AuditRecord::default()
    };
    db.insert_audit(&record).await?;
    assert_eq!(
        db.days_to_roll(day - 1, day + 2, 10).await?,
        [day - 1, day, day + 1]
    );
    assert_eq!(db.roll_day(day).await?, 1, "one sum for one record");
    assert_eq!(
        db.days_to_roll(day - 1, day + 2, 10).await?,
        [day - 1, day + 1]
    );
    let whole = (day, (day + 1) * phone_otp_gateway::db::DAY_MS);
    assert_eq!(db.clean_days(day - 1, day + 2).await?, [whole]);
    assert!(db.record_receipt(&record.id, "primary", true).await?);
    assert_eq!(
        db.days_to_roll(day - 1, day + 2, 10).await?,
        [day - 1, day, day + 1]
    );
    assert_eq!(db.first_day().await?, Some(day));

    // A challenge started on `day`, verified on the next one through the writer's path.
    let start = AuditRecord {
        id: "1".repeat(32),
        endpoint: "challenges_start".to_owned(),
        challenge: Some("fp".to_owned()),
        ..record.clone()
    };
    db.insert_audit(&start).await?;
    db.roll_day(day).await?;
    assert_eq!(db.clean_days(day, day + 1).await?, [whole]);
    let verified = |outcome: &str, n: char| AuditRecord {
        id: n.to_string().repeat(32),
        at: (day + 1) * phone_otp_gateway::db::DAY_MS + 5,
        endpoint: "challenges_verify".to_owned(),
        outcome: outcome.to_owned(),
        provider: None,
        ..start.clone()
    };
    db.write_audit_batch(&[AuditWrite::Insert(verified("invalid_code", '2'))])
        .await?;
    assert_eq!(
        db.clean_days(day, day + 1).await?,
        [whole],
        "a wrong code changes no sum"
    );
    db.write_audit_batch(&[AuditWrite::Insert(verified("ok", '3'))])
        .await?;
    assert_eq!(db.clean_days(day, day + 1).await?, []);
    db.roll_day(day).await?;
    let rows = db
        .conversion(
            day * phone_otp_gateway::db::DAY_MS,
            (day + 1) * phone_otp_gateway::db::DAY_MS,
            None,
            ConversionBy::Country,
            5,
        )
        .await?;
    assert_eq!((rows[0].started, rows[0].verified), (1, 1));
    Ok(())
}

#[tokio::test]
async fn a_summed_day_is_dirty_again_after_a_late_write_on_sqlite() -> TestResult {
    a_summed_day_is_dirty_again_after_a_late_write_on(&sqlite().await.expect("sqlite")).await
}

#[tokio::test]
async fn a_summed_day_is_dirty_again_after_a_late_write_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => a_summed_day_is_dirty_again_after_a_late_write_on(&db).await,
        None => Ok(()),
    }
}

/// Today is summed up to an hour ago, moved on every ten minutes: a report reads those
/// sums and the last hour's records. A receipt for a record under the watermark marks the
/// day; one for a record after it does not need to (it is read from the records).
async fn today_is_summed_up_to_the_settled_hour_on(db: &Db) -> TestResult {
    use phone_otp_gateway::db::{DAY_MS, REFRESH_MS, SETTLE_MS};
    let day = 19_200;
    let noon = day * DAY_MS + DAY_MS / 2;
    let record = |n: i64, at: i64| AuditRecord {
        id: format!("{n:032x}"),
        at,
        endpoint: "messages".to_owned(),
        system: Some("billing".to_owned()),
        provider: Some("primary".to_owned()),
        providers: Some("primary:ok".to_owned()),
        outcome: "ok".to_owned(),
        status: 200,
        ..AuditRecord::default()
    };
    // Morning records, and one in the last (unsettled) hour.
    for n in 0..10 {
        db.insert_audit(&record(n, day * DAY_MS + n * 60_000))
            .await?;
    }
    db.insert_audit(&record(99, noon - 60_000)).await?;
    let report = || async {
        let rows = db
            .usage(day * DAY_MS, noon, None, &[Dimension::System])
            .await
            .unwrap()
            .rows;
        (rows[0].requests, rows[0].delivered)
    };
    assert_eq!(report().await, (11, 0));
    assert_eq!(
        db.roll_settled(noon, 4).await?,
        1,
        "today, up to an hour ago"
    );
    assert_eq!(
        db.clean_days(day, day + 1).await?,
        [(day, noon - SETTLE_MS)]
    );
    assert_eq!(
        report().await,
        (11, 0),
        "the sums and the last hour's records"
    );
    // Within ten minutes, nothing to do; after, the watermark moves.
    assert_eq!(db.roll_settled(noon + REFRESH_MS - 1, 4).await?, 0);
    assert_eq!(db.roll_settled(noon + REFRESH_MS, 4).await?, 1);
    let mark = noon + REFRESH_MS - SETTLE_MS;
    assert_eq!(db.clean_days(day, day + 1).await?, [(day, mark)]);
    // A receipt for the record after the watermark: the day stays clean, and counts it.
    assert!(
        db.record_receipt(&format!("{:032x}", 99), "primary", true)
            .await?
    );
    assert_eq!(db.clean_days(day, day + 1).await?, [(day, mark)]);
    assert_eq!(report().await, (11, 1));
    // One for a morning record: summed already, so the day is read from the records.
    assert!(
        db.record_receipt(&format!("{:032x}", 3), "primary", true)
            .await?
    );
    assert_eq!(db.clean_days(day, day + 1).await?, []);
    assert_eq!(report().await, (11, 2));
    assert_eq!(
        db.roll_settled(noon + REFRESH_MS, 4).await?,
        1,
        "dirty: summed again"
    );
    assert_eq!(report().await, (11, 2));
    // And the report reads the sums: change them, the answer changes.
    db.execute_admin("UPDATE usage_daily SET delivered = delivered + 5")
        .await?;
    assert_eq!(report().await, (11, 7));
    // Past the day's end and settling, the day is summed whole.
    let next = (day + 1) * DAY_MS + SETTLE_MS;
    db.roll_settled(next, 4).await?;
    assert_eq!(
        db.clean_days(day, day + 1).await?,
        [(day, (day + 1) * DAY_MS)]
    );
    assert_eq!(report().await, (11, 2));
    Ok(())
}

#[tokio::test]
async fn today_is_summed_up_to_the_settled_hour_on_sqlite() -> TestResult {
    today_is_summed_up_to_the_settled_hour_on(&sqlite().await.expect("sqlite")).await
}

#[tokio::test]
async fn today_is_summed_up_to_the_settled_hour_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => today_is_summed_up_to_the_settled_hour_on(&db).await,
        None => Ok(()),
    }
}

/// Two instances summing the same days at once while receipts arrive (on SQLite, one
/// gateway's reconciler and its receipts): no sum counted twice, no receipt lost. After one more pass, every report from the sums equals the
/// same report read from the records (one grouped by hour, which is never summed).
async fn two_instances_sum_the_same_days_while_receipts_arrive_on(a: Db, b: Db) -> TestResult {
    let day = 19_300;
    let d = phone_otp_gateway::db::DAY_MS;
    let mut ids = Vec::new();
    for i in 0..1500i64 {
        let record = AuditRecord {
            id: format!("{:032x}", 0x5000_0000 + i),
            at: (day + i % 3) * d + i * 10_000,
            endpoint: "messages".to_owned(),
            system: Some(format!("system-{}", i % 4)),
            country: Some(["JP", "GB"][(i % 2) as usize].to_owned()),
            provider: Some("primary".to_owned()),
            providers: Some("primary:ok".to_owned()),
            segments: Some(1),
            cost_micros: Some(50_000),
            currency: Some("USD".to_owned()),
            outcome: "ok".to_owned(),
            status: 200,
            ..AuditRecord::default()
        };
        ids.push(record.id.clone());
        a.insert_audit(&record).await?;
    }
    let now = (day + 3) * d + phone_otp_gateway::db::SETTLE_MS;
    // Each instance sums the three days over and over until every receipt is in.
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let roller = |db: Db| {
        let pending = Arc::clone(&pending);
        async move {
            let mut rolls = 0;
            while pending.load(std::sync::atomic::Ordering::SeqCst) > 0 || rolls < 3 {
                db.roll_day(day + rolls % 3).await.unwrap();
                rolls += 1;
            }
            rolls
        }
    };
    let receipts = |db: Db, ids: Vec<String>| {
        let pending = Arc::clone(&pending);
        async move {
            for id in ids {
                assert!(db.record_receipt(&id, "primary", true).await.unwrap());
            }
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let (first, second): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .partition(|id| id.ends_with(['0', '2', '4', '6', '8']));
    let (rolls_a, rolls_b, (), ()) = tokio::join!(
        roller(a.clone()),
        roller(b.clone()),
        receipts(a.clone(), first),
        receipts(b.clone(), second),
    );
    assert!(rolls_a + rolls_b > 20, "the sums ran beside the receipts");
    while a.roll_settled(now, 4).await? > 0 {}
    assert_eq!(a.clean_days(day, day + 3).await?.len(), 3);
    let (from, to) = (day * d, (day + 3) * d);
    let by_hour = a
        .usage(from, to, None, &[Dimension::Hour, Dimension::System])
        .await?;
    for db in [&a, &b] {
        let summed = db.usage(from, to, None, &[Dimension::System]).await?;
        assert_eq!(summed.rows, by_hour.regroup(&[Dimension::System]).rows);
        let delivered: i64 = summed.rows.iter().map(|r| r.delivered).sum();
        assert_eq!(delivered, 1500, "every receipt counted once");
    }
    Ok(())
}

#[tokio::test]
async fn two_instances_sum_the_same_days_while_receipts_arrive_on_postgres() -> TestResult {
    let Some((a, url)) = crate::db::postgres_with_url().await else {
        return Ok(());
    };
    let b = Db::connect(&url).await?;
    two_instances_sum_the_same_days_while_receipts_arrive_on(a, b).await
}

#[tokio::test]
async fn one_gateway_sums_days_while_receipts_arrive_on_sqlite() -> TestResult {
    let db = sqlite().await.expect("sqlite");
    two_instances_sum_the_same_days_while_receipts_arrive_on(db.clone(), db).await
}

/// Reports read from the day sums answer exactly what the records do, for every grouping
/// and for ranges that start or end inside a day, before and after a late receipt.
async fn day_sums_answer_what_the_records_do_on(db: &Db) -> TestResult {
    let day = 19_100;
    let mut ids = Vec::new();
    for i in 0..400i64 {
        let sent = i % 5 != 0;
        let record = AuditRecord {
            id: format!("{:032x}", 0xabc0_0000 + i),
            at: (day + i % 4) * phone_otp_gateway::db::DAY_MS + i * 1000,
            endpoint: ["messages", "challenges_start", "okta_telephony"][(i % 3) as usize]
                .to_owned(),
            system: Some(format!("system-{}", i % 3)),
            country: Some(["JP", "GB", "US", "BR"][(i % 4) as usize].to_owned()),
            prefix: Some(["+8190", "+4474", "+1202", "+5511"][(i % 4) as usize].to_owned()),
            channel: Some("sms".to_owned()),
            provider: sent.then(|| ["primary", "secondary"][(i % 2) as usize].to_owned()),
            providers: sent.then(|| {
                if i % 7 == 0 {
                    "primary:timeout secondary:ok"
                } else {
                    "primary:ok"
                }
                .to_owned()
            }),
            segments: sent.then_some(1 + i % 2),
            cost_micros: sent.then_some(62_000),
            currency: sent.then(|| "USD".to_owned()),
            status: if sent { 200 } else { 429 },
            outcome: if sent { "ok" } else { "rate_limited" }.to_owned(),
            refused_by: (!sent).then(|| "conversion".to_owned()),
            challenge: (sent && i % 3 == 1).then(|| format!("fp{i}")),
            ..AuditRecord::default()
        };
        ids.push(record.id.clone());
        // Half the challenges verified by their own system (one a day later), one
        // verified by another (never counted), some failed tries.
        if let Some(challenge) = &record.challenge {
            let verify = |n: i64, system: &str, outcome: &str| AuditRecord {
                id: format!("{:032x}", 0xdef0_0000 + 10 * i + n),
                at: record.at
                    + if i == 7 {
                        phone_otp_gateway::db::DAY_MS
                    } else {
                        60_000
                    },
                endpoint: "challenges_verify".to_owned(),
                system: Some(system.to_owned()),
                country: record.country.clone(),
                challenge: Some(challenge.clone()),
                status: if outcome == "ok" { 200 } else { 400 },
                outcome: outcome.to_owned(),
                ..AuditRecord::default()
            };
            let own = record.system.clone().unwrap_or_default();
            if i % 5 < 3 {
                db.insert_audit(&verify(1, &own, "ok")).await?;
            } else if i % 5 == 3 {
                db.insert_audit(&verify(2, "system-x", "ok")).await?;
            } else {
                db.insert_audit(&verify(3, &own, "invalid_code")).await?;
            }
        }
        db.insert_audit(&record).await?;
    }
    for id in ids.iter().step_by(3) {
        db.record_receipt(id, "primary", ids.len() % 2 == 0).await?;
    }
    let d = phone_otp_gateway::db::DAY_MS;
    let ranges = [
        (day * d, (day + 4) * d),
        (day * d + 3_600_000, (day + 3) * d + 60_000),
        ((day + 1) * d, (day + 2) * d),
    ];
    let groupings: Vec<Vec<Dimension>> = Dimension::ALL
        .iter()
        .filter(|g| **g != Dimension::Hour)
        .map(|g| vec![*g])
        .chain([
            vec![Dimension::Day, Dimension::System],
            vec![Dimension::Prefix, Dimension::RefusedBy],
        ])
        .collect();
    let report = |db: Db| {
        let (ranges, groupings) = (ranges, groupings.clone());
        async move {
            let mut all = Vec::new();
            for (from, to) in ranges {
                for group_by in &groupings {
                    for system in [None, Some("system-1")] {
                        let rows = db.usage(from, to, system, group_by).await.unwrap().rows;
                        all.push(format!("{rows:?}"));
                    }
                }
                for by in [ConversionBy::Country, ConversionBy::Prefix] {
                    for system in [None, Some("system-1")] {
                        let rows = db.conversion(from, to, system, by, 3).await.unwrap();
                        assert!(rows.iter().any(|r| r.verified > 0), "{rows:?}");
                        all.push(format!("{rows:?}"));
                    }
                }
                let attempts = db.attempt_counts(from, to).await.unwrap();
                assert!(attempts.iter().any(|a| a.failures().count() > 0));
                all.push(format!("{attempts:?}"));
            }
            all
        }
    };
    let live = report(db.clone()).await;
    for rolled in day..day + 4 {
        assert!(db.roll_day(rolled).await? > 0);
    }
    assert_eq!(db.clean_days(day, day + 4).await?.len(), 4);
    assert_eq!(
        report(db.clone()).await,
        live,
        "the sums answer as the records do"
    );
    // One report regrouped answers as the narrower query does (partly from the sums).
    for (from, to) in ranges {
        let wide = [Dimension::Hour, Dimension::System, Dimension::Outcome];
        let wide = db.usage(from, to, None, &wide).await.unwrap();
        for narrow in [
            &[Dimension::System][..],
            &[Dimension::Outcome, Dimension::Hour],
        ] {
            let direct = db.usage(from, to, None, narrow).await.unwrap();
            assert_eq!(wide.regroup(narrow).rows, direct.rows);
            assert_eq!(wide.regroup(narrow).group_by, narrow);
        }
    }
    // A late receipt: that day is read from the records again, then summed again.
    db.record_receipt(&ids[1], "primary", true).await?;
    assert_eq!(db.clean_days(day, day + 4).await?.len(), 3);
    let after = report(db.clone()).await;
    assert_ne!(after, live, "the receipt counts");
    for rolled in db.days_to_roll(day, day + 4, 10).await? {
        db.roll_day(rolled).await?;
    }
    assert_eq!(report(db.clone()).await, after);
    // And the reports do read the sums: change one, the answer changes.
    for change in ["requests = requests + 1", "verified = started"] {
        db.execute_admin(&format!("UPDATE usage_daily SET {change}"))
            .await?;
        let changed = report(db.clone()).await;
        assert_ne!(changed, after, "{change}");
    }
    Ok(())
}

#[tokio::test]
async fn day_sums_answer_what_the_records_do_on_sqlite() -> TestResult {
    day_sums_answer_what_the_records_do_on(&sqlite().await.expect("sqlite")).await
}

#[tokio::test]
async fn day_sums_answer_what_the_records_do_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => day_sums_answer_what_the_records_do_on(&db).await,
        None => Ok(()),
    }
}
