//! How fast the console's pages render over a large audit trail: `scripts/bench-console.sh`
//! runs it (release). It fills a SQLite file with `ROWS` audit records (default 1,000,000;
//! one SQL statement, spread over the last 30 days, 8 systems, 10 countries, the
//! endpoints, outcomes, limits, providers and receipts a busy gateway records), signs in
//! over loopback HTTP as a browser does and requests each page `RUNS` times (default 15),
//! printing the median and the slowest time per page beside `GET /healthz` (the same
//! server's floor, measured in the same run).

use std::time::{Duration, Instant};

use phone_otp::{
    Channel, HmacKey, KeyRing, ManualClock, OtpService, Router, StubProvider, Timestamp,
};
use phone_otp_gateway::Gateway;
use phone_otp_gateway::auth::key_admin::{KeySpec, create_key};
use phone_otp_gateway::auth::scope::{Scope, Scopes};
use phone_otp_gateway::console::ConsoleSettings;
use phone_otp_gateway::db::Db;
use secrecy::{ExposeSecret, SecretSlice};

const DAY_MS: i64 = 86_400_000;

/// `rows` records over the 30 days before `now`, one statement (a recursive CTE).
fn seed_sql(rows: i64, now: i64) -> String {
    let from = now - 30 * DAY_MS;
    let step = (30 * DAY_MS / rows.max(1)).max(1);
    format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO audit_records (id, request_id, at, endpoint, system, key_id, purpose, country,
             masked_to, channel, providers, segments, status, outcome, latency_ms, cost_micros,
             currency, provider, refused_by, prefix, challenge, receipt)
         SELECT printf('%032x', i), '', {from} + i * {step},
             CASE WHEN i % 10 < 4 THEN 'messages' WHEN i % 10 < 7 THEN 'okta_telephony'
                  WHEN i % 10 < 9 THEN 'challenges_start' ELSE 'challenges_verify' END,
             'system-' || (i % 8), 'key' || (i % 8), 'sign_in',
             substr('JPUSGBBRINDEFRKRTWSG', (i % 10) * 2 + 1, 2),
             '+8190****' || printf('%04d', i % 10000), 'sms',
             CASE WHEN i % 100 >= 90 THEN NULL WHEN i % 13 = 0 THEN 'primary:timeout secondary:ok'
                  ELSE 'primary:ok' END,
             1,
             CASE WHEN i % 100 < 90 THEN 200 WHEN i % 100 < 98 THEN 429 ELSE 422 END,
             CASE WHEN i % 100 < 90 THEN 'ok' WHEN i % 100 < 98 THEN 'rate_limited'
                  ELSE 'invalid_number' END,
             i % 50,
             CASE WHEN i % 100 < 90 AND i % 10 < 9 THEN 62000 END,
             CASE WHEN i % 100 < 90 AND i % 10 < 9 THEN 'USD' END,
             CASE WHEN i % 100 >= 90 OR i % 10 = 9 THEN NULL WHEN i % 13 = 0 THEN 'secondary'
                  ELSE 'primary' END,
             CASE WHEN i % 100 >= 90 AND i % 100 < 98 THEN
                  substr('conversionbackoff   budget    destination', (i % 4) * 10 + 1, 10) END,
             '+' || substr('81904412446055916291499133823486865', (i % 10) * 3 + 1, 4),
             CASE WHEN i % 10 >= 7 THEN printf('%032x', i - i % 10) END,
             CASE WHEN i % 100 < 90 AND i % 10 < 9 THEN
                  CASE WHEN i % 17 = 0 THEN 'undelivered' ELSE 'delivered' END END
         FROM n",
        last = rows - 1,
    )
}

struct Session {
    base: String,
    client: reqwest::Client,
    cookie: String,
}

impl Session {
    async fn sign_in(base: &str, key: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let form = client.get(format!("{base}/console/signin")).send().await?;
        let signin_cookie = cookie(&form, "potp_console_signin").ok_or("no sign-in cookie")?;
        let csrf = signin_cookie
            .split_once('=')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("key", key)
            .append_pair("csrf", &csrf)
            .finish();
        let signed = client
            .post(format!("{base}/console/signin"))
            .header("cookie", &signin_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body)
            .send()
            .await?;
        let cookie = cookie(&signed, "potp_console").ok_or("sign-in refused")?;
        Ok(Self {
            base: base.to_owned(),
            client,
            cookie,
        })
    }

    /// One request's time to the last byte, and its body.
    async fn time(&self, path: &str) -> Result<(Duration, String), Box<dyn std::error::Error>> {
        let started = Instant::now();
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        let took = started.elapsed();
        if !status.is_success() {
            return Err(format!("{path}: {status}").into());
        }
        Ok((took, body))
    }
}

fn cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// `HH:MM UTC` of a Unix ms time.
fn time_text(ms: i64) -> String {
    let minutes = ms.rem_euclid(DAY_MS) / 60_000;
    format!("{:02}:{:02} UTC", minutes / 60, minutes % 60)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: i64 = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let dir = std::env::temp_dir().join(format!("potp-console-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = Db::connect(&format!("sqlite://{}/gw.db?mode=rwc", dir.display())).await?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    // `AT=HH:MM`: the gateway's clock at that UTC time today (the records end there), so
    // a run can choose how much of the range is not summed yet: today's records, and
    // yesterday's until it settles.
    let now = match std::env::var("AT") {
        Ok(at) => {
            let (h, m) = at.split_once(':').ok_or("AT is HH:MM")?;
            now.div_euclid(DAY_MS) * DAY_MS + (h.parse::<i64>()? * 60 + m.parse::<i64>()?) * 60_000
        }
        Err(_) => now,
    };
    println!("clock at {}", time_text(now));
    let started = Instant::now();
    db.execute_admin(&seed_sql(rows, now)).await?;
    db.execute_admin("ANALYZE").await?;
    println!(
        "seeded {rows} audit records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // What the reconciler's passes do on a running gateway: sum the settled days.
    let started = Instant::now();
    let mut days = 0;
    loop {
        let rolled = db.roll_settled(now, 64).await?;
        days += rolled;
        if rolled == 0 {
            break;
        }
    }
    println!(
        "summed {days} settled days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let spec = KeySpec {
        kind: phone_otp_gateway::auth::api_key::KeyKind::System,
        owner: "platform-team".to_owned(),
        scopes: Scopes::default().with(Scope::KeysAdmin),
        allowed: Vec::new(),
        lifetime: None,
    };
    let (key, _) = create_key(&db, &spec, now).await?;

    let router = Router::builder()
        .provider(StubProvider::named("primary"))
        .provider(StubProvider::named("secondary"))
        .default_chain(Channel::Sms, &["primary", "secondary"])
        .build()?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(HmacKey::new(
            1,
            &SecretSlice::from(vec![7u8; 32]),
        )?))
        .provider(router.clone())
        .build()?;
    let gateway = Gateway::builder(otp)
        .clock(ManualClock::starting_at(Timestamp::from_millis(
            u64::try_from(now)?,
        )))
        .provider_router(router)
        .keys(db.clone())
        .console(ConsoleSettings::new())
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let session = Session::sign_in(&base, key.expose_secret()).await?;
    // The second audit page: the cursor the first one links to.
    let (_, first) = session.time("/console/audit").await?;
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .ok_or("no second audit page")?;
    let record = format!("/console/audit/{}", format_args!("{:032x}", rows / 2));
    let pages = [
        "/healthz".to_owned(),
        "/console/overview".to_owned(),
        "/console/systems".to_owned(),
        "/console/systems?system=system-3".to_owned(),
        "/console/abuse".to_owned(),
        "/console/providers".to_owned(),
        "/console/audit".to_owned(),
        "/console/audit?outcome=invalid_number&system=system-5".to_owned(),
        next,
        record,
        "/console/keys".to_owned(),
    ];
    println!("{:<58} {:>10} {:>10}", "page", "median ms", "max ms");
    for path in &pages {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(session.time(path).await?.0);
        }
        times.sort();
        let label: String = path.chars().take(58).collect();
        println!(
            "{label:<58} {:>10.1} {:>10.1}",
            millis(times[times.len() / 2]),
            millis(times[times.len() - 1])
        );
    }
    drop(db);
    if std::env::var_os("KEEP_DB").is_some() {
        println!("kept {}/gw.db", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
