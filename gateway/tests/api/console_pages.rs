//! The console's abuse, providers and audit pages over real HTTP on SQLite and PostgreSQL,
//! on data seeded through the API: a bot pumping one GB prefix until the conversion guard
//! throttles it, real JP users who verify, and a provider outage that fails over.

use phone_otp::{ConversionGuard, Limits, PhoneNumber, ProviderErrorKind};
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::console::ConsoleSettings;
use phone_otp_gateway::db::Db;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::console::{Browser, token};
use crate::db::{postgres, sqlite};
use crate::support::{Setup, TestGateway, TestResult};
use crate::usage::prices;

/// Every `/console/audit/<id>` link on a page.
fn record_links(body: &str) -> Vec<String> {
    body.split("href=\"/console/audit/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

async fn the_abuse_providers_and_audit_pages_on(db: Db) -> TestResult {
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits {
            // GB and JP as markets already served, so the bot meets the prefix level.
            conversion_guard: Some(ConversionGuard {
                probation: [("GB".to_owned(), 1_000), ("JP".to_owned(), 1_000)].into(),
                range_probation_sends: 1_000,
                ..ConversionGuard::default()
            }),
            ..Limits::danger_none()
        },
        configure: Box::new(|builder| builder.prices(prices()).console(ConsoleSettings::new())),
        ..Setup::default()
    })
    .await;
    let scopes = [
        Scope::ChallengesStart,
        Scope::ChallengesVerify,
        Scope::MessagesSend,
    ];
    let (billing, _) = token(&db, "billing", &scopes).await;
    let (viewer, _) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    // A bot: 60 starts to one GB block, none verified. The guard judges the prefix from
    // its 20th send on, and refuses the other 40.
    let mut statuses = Vec::new();
    for n in 0..60 {
        let to = format!("+4474001{n:05}");
        statuses.push(
            gw.post("/v1/challenges", &billing, &json!({"to": to}))
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40);
    // Three real users in JP, the first through a failover; two verify.
    gw.primary.fail_next(ProviderErrorKind::Unavailable);
    for n in 0..3 {
        let to = format!("+8190123456{n:02}");
        let started: Value = gw
            .post("/v1/challenges", &billing, &json!({"to": to}))
            .await
            .json()
            .await?;
        if n == 2 {
            continue;
        }
        let number: PhoneNumber = to.parse()?;
        let code = gw
            .primary
            .last_code_for(&number)
            .or_else(|| gw.secondary.last_code_for(&number))
            .expect("a code was sent");
        let id = started["challenge_id"].as_str().unwrap_or("");
        let verified = gw
            .post(
                &format!("/v1/challenges/{id}/verify"),
                &billing,
                &json!({"code": code.expose_secret()}),
            )
            .await;
        assert_eq!(verified.status(), 200);
    }

    // A relayed code through a failover.
    gw.primary.fail_next(ProviderErrorKind::Unavailable);
    let relay = json!({"to": "+819012345699", "code": "482913"});
    assert_eq!(
        gw.post("/v1/messages", &billing, &relay).await.status(),
        200
    );

    let mut browser = Browser::new(&gw.url);
    for path in ["/console/abuse", "/console/providers", "/console/audit"] {
        assert_eq!(
            browser.get(path, None).await.status,
            StatusCode::SEE_OTHER,
            "{path}"
        );
    }
    browser.sign_in(&viewer).await;

    // Abuse: the block throttled now and why (none of 20 verified, under the default
    // 30% floor), the refusals under their limit and system, conversion per country and
    // the prefix at the top of the most-sent list.
    let page = browser.get("/console/abuse", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("<td>+4474001</td><td>prefix (2 h)</td><td>GB</td><td class=\"n\">20</td><td class=\"n\">0</td><td class=\"n\">0.0%</td><td class=\"n\">30.0%</td>"),
        "{body}"
    );
    assert!(
        body.contains("<td>conversion</td><td>billing</td><td class=\"n\">40</td>"),
        "{body}"
    );
    assert!(
        body.contains(
            "<td>GB</td><td class=\"n\">20</td><td class=\"n\">0</td><td class=\"n\">0.0%</td>"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "<td>JP</td><td class=\"n\">3</td><td class=\"n\">2</td><td class=\"n\">66.7%</td>"
        ),
        "{body}"
    );
    assert!(
        body.contains("<td>+4474</td><td>GB</td><td class=\"n\">60</td><td class=\"n\">20</td><td class=\"n\">40</td><td class=\"n\">20</td><td class=\"n\">0.0%</td>"),
        "{body}"
    );
    // Requests without a destination (the sign-in, the verifications) are no prefix.
    let prefixes = body
        .split("id=\"prefixes\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or("");
    assert!(prefixes.contains("+4474"), "{prefixes}");
    assert!(!prefixes.contains("<tr><td>-</td>"), "{prefixes}");
    assert!(body.contains("<svg"), "the charts");
    let long = browser
        .get("/console/abuse?from=2021-01-01&to=2022-01-31", None)
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(long.body.contains("at most 31 days"));

    // Providers: both outages counted now, both failovers (a challenge's and a relay's) in
    // the trail by country.
    let page = browser.get("/console/providers", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<td>primary</td>"), "{body}");
    assert!(
        body.contains("<td>unavailable 2</td><td>closed</td>"),
        "{body}"
    );
    assert!(
        body.contains("<td>primary</td><td>JP</td><td>unavailable</td><td class=\"n\">2</td>"),
        "{body}"
    );
    assert!(
        body.contains("<td>secondary</td><td>JP</td><td class=\"n\">2</td>"),
        "{body}"
    );
    assert!(
        body.contains("<td>primary</td><td>GB</td><td class=\"n\">20</td>"),
        "{body}"
    );

    // Audit: 67 records (60 starts, 3 starts, 2 verifications, a relay, the viewer's
    // sign-in), 50 a page, no record on two pages.
    let first = browser.get("/console/audit", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let mut ids = record_links(&first.body);
    assert_eq!(ids.len(), 50);
    let next = first
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older records")
        .replace("&amp;", "&");
    let second = browser.get(&next, None).await;
    assert_eq!(second.status, StatusCode::OK);
    ids.extend(record_links(&second.body));
    assert!(!second.body.contains("rel=\"next\""), "no third page");
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((ids.len(), distinct.len()), (67, 67));

    // Searching by outcome; a record's detail.
    let refused = browser
        .get("/console/audit?outcome=rate_limited&system=billing", None)
        .await;
    let refused_ids = record_links(&refused.body);
    assert_eq!(refused_ids.len(), 40);
    assert!(refused.body.contains("rate_limited (conversion)"));
    let detail = browser
        .get(&format!("/console/audit/{}", refused_ids[0]), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        detail.body.contains("<dd>conversion</dd>"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("<dd>+4474****00"), "{}", detail.body);
    let none = browser.get("/console/audit?system=crm", None).await;
    assert!(record_links(&none.body).is_empty());
    assert_eq!(
        browser.get("/console/audit/not-an-id", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser
            .get(&format!("/console/audit/{}", "0".repeat(32)), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser
            .get("/console/audit?before=nonsense", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        browser.get("/console/audit?colour=red", None).await.status,
        StatusCode::BAD_REQUEST
    );

    // The export: the same search, every record, numbers guarded against formulas.
    let csv = browser
        .get("/console/audit.csv?outcome=rate_limited", None)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.headers["content-disposition"],
        "attachment; filename=\"audit.csv\""
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 41, "{}", csv.body);
    assert!(lines[0].starts_with("id,at,system,key_id,endpoint"));
    assert!(
        lines[1..].iter().all(|l| l.contains(",billing,")
            && l.contains(",'+4474")
            && l.contains(",rate_limited,conversion,")),
        "{}",
        csv.body
    );
    Ok(())
}

#[tokio::test]
async fn the_abuse_providers_and_audit_pages_on_sqlite() -> TestResult {
    the_abuse_providers_and_audit_pages_on(sqlite().await.expect("sqlite")).await
}

#[tokio::test]
async fn the_abuse_providers_and_audit_pages_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => the_abuse_providers_and_audit_pages_on(db).await,
        None => Ok(()),
    }
}

/// Two instances on one PostgreSQL database and one Redis: a session signed in on one is
/// good on the other (a shared session key), both show every instance's sends, and a key
/// revoked from one instance's console is refused by the other on its next call, its
/// console sessions included.
#[tokio::test]
async fn two_instances_share_the_console_on_postgres() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        crate::support::skip_loudly("REDIS_URL is not set (./scripts/test.sh sets it)");
        return Ok(());
    };
    let prefix = format!("console-test:{}:", crate::support::unique());
    let store: std::sync::Arc<dyn phone_otp::OtpStore> =
        std::sync::Arc::new(phone_otp::RedisStore::connect(&redis_url, &prefix).await?);
    let instance = || {
        let store = std::sync::Arc::clone(&store);
        TestGateway::with(Setup {
            keys: Some(db.clone()),
            store: Some(store),
            limits: Limits::danger_none(),
            configure: Box::new(|builder| {
                let console = ConsoleSettings::new()
                    .session_key(&[5u8; 32])
                    .expect("a long key");
                builder.prices(prices()).console(console)
            }),
            ..Setup::default()
        })
    };
    let (a, b) = (instance().await, instance().await);
    let (billing, _) = token(&db, "billing", &[Scope::MessagesSend]).await;
    let (crm, crm_id) = token(&db, "crm", &[Scope::MessagesSend]).await;
    let (admin, _) = token(&db, "platform-team", &[Scope::KeysAdmin]).await;
    let (viewer, viewer_id) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    for (gw, key, to) in [
        (&a, &billing, "+819012345670"),
        (&b, &billing, "+819012345671"),
        (&b, &crm, "+819012345672"),
    ] {
        let sent = gw
            .post("/v1/messages", key, &json!({"to": to, "code": "482913"}))
            .await;
        assert_eq!(sent.status(), 200);
    }

    let mut on_a = Browser::new(&a.url);
    assert_eq!(on_a.sign_in(&admin).await.status, StatusCode::SEE_OTHER);
    let mut on_b = on_a.at(&b.url);
    let range = "from=2022-01-01&to=2022-01-31";
    for browser in [&mut on_a, &mut on_b] {
        let page = browser
            .get(&format!("/console/systems?{range}"), None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body
                .contains(">billing</a></th><td class=\"n\">2</td><td class=\"n\">2</td>"),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains(">crm</a></th><td class=\"n\">1</td><td class=\"n\">1</td>"),
            "{}",
            page.body
        );
    }

    // A viewer signed in on A; crm's key and the viewer's revoked from B's console.
    let mut viewer_on_a = Browser::new(&a.url);
    viewer_on_a.sign_in(&viewer).await;
    assert_eq!(
        viewer_on_a.get("/console/overview", None).await.status,
        StatusCode::OK
    );
    for id in [&crm_id, &viewer_id] {
        let confirm = on_b.get(&format!("/console/keys/{id}/revoke"), None).await;
        assert_eq!(confirm.status, StatusCode::OK);
        let revoked = on_b
            .post(
                &format!("/console/keys/{id}/revoke"),
                &[("csrf", &confirm.csrf())],
            )
            .await;
        assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    }
    let refused = a
        .post(
            "/v1/messages",
            &crm,
            &json!({"to": "+819012345673", "code": "482913"}),
        )
        .await;
    assert_eq!(refused.status(), 401);
    let ended = viewer_on_a.get("/console/overview", None).await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert_eq!(ended.headers["location"], "/console/signin");
    // Both revocations are in the trail under the operator, whichever instance wrote them.
    let audit = on_a
        .get(
            "/console/audit?endpoint=console_key_revoke&from=2022-01-01&to=2022-01-31",
            None,
        )
        .await;
    assert_eq!(record_links(&audit.body).len(), 2, "{}", audit.body);
    Ok(())
}
