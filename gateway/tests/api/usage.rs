//! The usage and cost ledger over real HTTP, on SQLite and PostgreSQL: two systems send
//! SMS and calls under their own keys, and `GET /v1/usage` sums them exactly by system,
//! country, provider and day, as JSON and CSV.

use std::time::Duration;

use phone_otp::{Limits, Micros, PriceTable, Rate};
use phone_otp_gateway::auth::key_admin::create_key;
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::db::Db;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::db::{postgres, sqlite};
use crate::keys::{NOW, spec};
use crate::support::{Setup, TestGateway, TestResult};

/// JP SMS via `primary` 0.062 a segment, JP calls 0.1; US SMS anywhere 0.0079.
pub fn prices() -> PriceTable {
    PriceTable::new("USD")
        .with(Rate {
            provider: "primary".into(),
            country: "JP".into(),
            sms: Micros::from_decimal(0.062),
            voice: Micros::from_decimal(0.1),
        })
        .with(Rate {
            provider: "*".into(),
            country: "US".into(),
            sms: Micros::from_decimal(0.0079),
            voice: None,
        })
}

async fn token(db: &Db, owner: &str, scopes: &[Scope]) -> String {
    let (token, _) = create_key(db, &spec(owner, scopes), NOW).await.unwrap();
    token.expose_secret().to_owned()
}

async fn two_systems_and_their_bill(db: Db) -> TestResult {
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        configure: Box::new(|builder| builder.prices(prices())),
        ..Setup::default()
    })
    .await;
    let billing = token(
        &db,
        "billing",
        &[Scope::MessagesSend, Scope::ChallengesStart],
    )
    .await;
    let crm = token(&db, "crm", &[Scope::MessagesSend]).await;
    let crm_reader = token(&db, "crm", &[Scope::UsageRead]).await;
    // Reading every system's usage is its own, explicit scope.
    let finance = token(&db, "finance", &[Scope::UsageReadAll]).await;

    // Day one: billing sends two JP SMS, one JP call and one US SMS by challenge; crm
    // sends one JP SMS and has one refused (a bad number).
    let sends = [
        (
            &billing,
            "/v1/messages",
            json!({"to": "+819012345670", "code": "482913"}),
        ),
        (
            &billing,
            "/v1/messages",
            json!({"to": "+819012345671", "code": "482913", "locale": "ja"}),
        ),
        (
            &billing,
            "/v1/messages",
            json!({"to": "+819012345672", "code": "482913", "channel": "voice"}),
        ),
        (
            &billing,
            "/v1/challenges",
            json!({"to": "+12025550123", "subject": "u1"}),
        ),
        (
            &crm,
            "/v1/messages",
            json!({"to": "+819012345673", "code": "482913"}),
        ),
    ];
    for (token, path, body) in &sends {
        let status = gw.post(path, token, body).await.status();
        assert!(status.is_success(), "{path} {body}: {status}");
    }
    let refused = gw
        .post("/v1/messages", &crm, &json!({"to": "12", "code": "482913"}))
        .await;
    assert_eq!(refused.status(), 422);
    // Day two: crm sends one more JP SMS.
    gw.clock.advance(Duration::from_secs(86_400));
    let body = json!({"to": "+819012345674", "code": "482913"});
    assert_eq!(gw.post("/v1/messages", &crm, &body).await.status(), 200);

    let usage = |query: &'static str, token: &str| {
        gw.client
            .get(format!("{}/v1/usage?{query}", gw.url))
            .bearer_auth(token)
            .send()
    };
    // Senders cannot read usage, nor can the static token unless configured to.
    assert_eq!(usage("", &billing).await?.status(), 403);
    assert_eq!(usage("", crate::support::API_TOKEN).await?.status(), 403);
    // A system's own reader sees its own rows only, and cannot ask for another's.
    let own: Value = usage("from=2022-01-28&to=2022-01-28&group_by=system", &crm_reader)
        .await?
        .json()
        .await?;
    let systems: Vec<&Value> = own["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["system"])
        .collect();
    assert_eq!(systems, [&json!("crm")]);
    assert_eq!(own["rows"][0]["sends"], 1);
    let theirs = usage("system=billing", &crm_reader).await?;
    assert_eq!(theirs.status(), 403);
    assert!(
        theirs.json::<Value>().await?["detail"]
            .as_str()
            .unwrap()
            .contains("usage:read:all")
    );
    let one: Value = usage(
        "from=2022-01-28&to=2022-01-28&group_by=system&system=billing",
        &finance,
    )
    .await?
    .json()
    .await?;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["system"], "billing");

    let report: Value = usage("from=2022-01-28&to=2022-01-28&group_by=system", &finance)
        .await?
        .json()
        .await?;
    let row = |system: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["system"] == system)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // 2 x 0.062 + 0.1 + 0.0079; a call has no segments.
    assert_eq!(
        row("billing"),
        json!({"system": "billing", "requests": 4, "sends": 4, "unknown": 0, "possible_duplicates": 0, "delivered": 0, "undelivered": 0, "segments": 3,
            "cost": "0.231900", "cost_micros": 231_900, "currency": "USD"})
    );
    assert_eq!(
        row("crm"),
        json!({"system": "crm", "requests": 2, "sends": 1, "unknown": 0, "possible_duplicates": 0, "delivered": 0, "undelivered": 0, "segments": 1,
            "cost": "0.062000", "cost_micros": 62_000, "currency": "USD"})
    );

    let csv = usage(
        "from=2022-01-28&to=2022-01-28&group_by=system,country,provider,day&format=csv",
        &finance,
    )
    .await?;
    assert!(
        csv.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.text().await?,
        "system,country,provider,day,requests,sends,unknown,possible_duplicates,delivered,undelivered,segments,cost,currency\r\n\
         billing,JP,primary,2022-01-28,3,3,0,0,0,0,2,0.224000,USD\r\n\
         billing,US,primary,2022-01-28,1,1,0,0,0,0,1,0.007900,USD\r\n\
         crm,,,2022-01-28,1,0,0,0,0,0,0,0.000000,\r\n\
         crm,JP,primary,2022-01-28,1,1,0,0,0,0,1,0.062000,USD\r\n"
    );
    // By day over both days: the second day holds crm's last send alone.
    let by_day: Value = usage(
        "from=2022-01-28&to=2022-01-29&group_by=day,system",
        &finance,
    )
    .await?
    .json()
    .await?;
    // Requests that send nothing are on the ledger too: billing's refused read (recorded
    // under billing: the key was known, only its scope lacking), crm's reads and finance's
    // three reads before this one.
    let day_two: Vec<(Value, Value, Value)> = by_day["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["day"] == "2022-01-29")
        .map(|r| {
            (
                r["system"].clone(),
                r["requests"].clone(),
                r["sends"].clone(),
            )
        })
        .collect();
    assert_eq!(
        day_two,
        [
            (json!("billing"), json!(1), json!(0)),
            (json!("crm"), json!(3), json!(1)),
            (json!("finance"), json!(3), json!(0)),
            (json!("internal"), json!(1), json!(0))
        ]
    );
    // A bad query is named.
    let bad = usage("group_by=cost", &finance).await?;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await?;
    assert!(body["detail"].as_str().unwrap().contains("cost"));
    Ok(())
}

#[tokio::test]
async fn usage_per_system_country_provider_and_day_on_sqlite() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    two_systems_and_their_bill(db).await
}

#[tokio::test]
async fn usage_per_system_country_provider_and_day_on_postgres() -> TestResult {
    let Some(db) = postgres().await else {
        return Ok(());
    };
    two_systems_and_their_bill(db).await
}

#[tokio::test]
async fn each_system_has_its_own_daily_budget() -> TestResult {
    let Some(db) = sqlite().await else {
        return Ok(());
    };
    // One message per system per day.
    let limits = Limits {
        budgets: Some(phone_otp::Budgets {
            prices: prices(),
            caps: vec![phone_otp::Budget {
                scope: phone_otp::BudgetScope::EachTenant,
                per_day: phone_otp::BudgetCap::Messages(1),
            }],
        }),
        ..Limits::danger_none()
    };
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits,
        ..Setup::default()
    })
    .await;
    let billing = token(&db, "billing", &[Scope::MessagesSend]).await;
    let crm = token(&db, "crm", &[Scope::MessagesSend]).await;
    let body = |n: u32| json!({"to": format!("+8190123456{n:02}"), "code": "482913"});
    assert_eq!(
        gw.post("/v1/messages", &billing, &body(1)).await.status(),
        200
    );
    let refused = gw.post("/v1/messages", &billing, &body(2)).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str()?.parse()?;
    // Until the UTC day ends: the test clock is at 21:43:40.
    assert_eq!(retry_after, 8_180);
    let error: Value = refused.json().await?;
    assert!(error["detail"].as_str().unwrap().contains("budget"));
    assert_eq!(gw.post("/v1/messages", &crm, &body(3)).await.status(), 200);
    assert_eq!(gw.delivered().len(), 2);
    Ok(())
}
