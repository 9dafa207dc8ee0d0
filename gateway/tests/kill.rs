//! A gateway killed mid-send (`kill -9`) loses nothing: the sends it had reserved and
//! handed to the provider are `unknown` after the restart (the provider may have
//! delivered), never left `pending`, and the ledger counts them apart; those whose
//! delivery receipt arrives are then `confirmed`. The real binary, a Twilio-shaped
//! provider on loopback that records every message and holds its answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use phone_otp_gateway::db::{Db, Dimension};
use tokio::sync::watch;

const TOKEN: &str = "kill-test-api-token";
const TWILIO_AUTH_TOKEN: &str = "twilio-auth-token";
/// The status callback URL the gateway gives Twilio (`[callbacks.twilio] public_url`).
const STATUS_URL: &str = "http://127.0.0.1/callbacks/twilio/status";

/// Twilio's Messages resource: records each `To` and `StatusCallback`, then answers 201
/// only once released.
#[derive(Clone)]
struct Twilio {
    received: Arc<Mutex<Vec<String>>>,
    callbacks: Arc<Mutex<Vec<String>>>,
    count: watch::Sender<usize>,
    answer: watch::Receiver<bool>,
}

async fn messages(State(twilio): State<Twilio>, body: String) -> (StatusCode, String) {
    let to = form_value(&body, "To");
    twilio
        .callbacks
        .lock()
        .unwrap()
        .push(form_value(&body, "StatusCallback"));
    let n = {
        let mut received = twilio.received.lock().unwrap();
        received.push(to.clone());
        received.len()
    };
    twilio.count.send_replace(n);
    let mut answer = twilio.answer.clone();
    let _ = answer.wait_for(|go| *go).await;
    (
        StatusCode::CREATED,
        format!(
            r#"{{"sid":"SM{n:032}","status":"queued","to":"{to}","num_segments":"1","error_code":null,"error_message":null}}"#
        ),
    )
}

fn form_value(body: &str, name: &str) -> String {
    form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Posts Twilio's signed `delivered` status for the message whose status callback is
/// `callback` (the configured URL with the send's `?ref=`), as Twilio would.
async fn deliver_receipt(client: &reqwest::Client, gateway: &str, callback: &str) -> u16 {
    use base64::Engine as _;
    use hmac::Mac as _;
    let query = callback.strip_prefix(STATUS_URL).expect("our callback URL");
    let params = [
        ("MessageSid", "SM0123"),
        ("MessageStatus", "delivered"),
        ("To", "+819012345000"),
    ];
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(TWILIO_AUTH_TOKEN.as_bytes()).unwrap();
    mac.update(callback.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    client
        .post(format!("{gateway}/callbacks/twilio/status{query}"))
        .header("x-twilio-signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn start_gateway(config: &std::path::Path) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
        .arg("--config")
        .arg(config)
        .env("GATEWAY_API_TOKEN", TOKEN)
        .env("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
        .env("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN)
        .env("TWILIO_FROM", "+15005550006")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "phone-otp-gateway listening"
            {
                let _ = address_tx.send(event["address"].as_str().unwrap().to_owned());
            }
            log.lock().unwrap().push(line);
        }
    });
    let address = address_rx
        .recv()
        .expect("the gateway logs until it listens");
    (child, format!("http://{address}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_of_a_killed_instance_end_unknown_never_pending() {
    let (count_tx, mut count_rx) = watch::channel(0);
    let (answer_tx, answer_rx) = watch::channel(false);
    let twilio = Twilio {
        received: Arc::default(),
        callbacks: Arc::default(),
        count: count_tx,
        answer: answer_rx,
    };
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
        .with_state(twilio.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let twilio_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("potp-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
log_format = "json"

[server]
request_timeout_ms = 60000

[database]
url = "{db_url}"

[[providers]]
kind = "twilio"
danger_base_url = "{twilio_url}"

[routing]
attempt_timeout_ms = 60000
deadline_ms = 60000

[api]
token_env = "GATEWAY_API_TOKEN"
tenant = "internal"
scopes = ["messages:send"]

[callbacks.twilio]
public_url = "{STATUS_URL}"
"#
        ),
    )
    .unwrap();

    let (mut first, url, _) = start_gateway(&config);
    let client = reqwest::Client::new();
    for n in 0..10 {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            // Cut off by the kill: no answer is expected.
            let _ = client
                .post(format!("{url}/v1/messages"))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"to": format!("+81901234{:04}", 5000 + n), "code": "739148"}))
                .send()
                .await;
        });
    }
    // Every send reached the provider, which holds its answer: now the instance dies.
    count_rx.wait_for(|n| *n == 10).await.unwrap();
    first.kill().unwrap();
    first.wait().unwrap();

    let db = Db::connect(&db_url).await.unwrap();
    let outcomes = |records: Vec<phone_otp_gateway::db::AuditRecord>| {
        records.into_iter().map(|r| r.outcome).collect::<Vec<_>>()
    };
    assert_eq!(
        outcomes(db.audit_records(0, i64::MAX).await.unwrap()),
        vec!["pending"; 10]
    );

    // The restart settles them: SQLite's file is this gateway's own, so every pending row
    // at startup is an orphan of its previous run.
    answer_tx.send_replace(true);
    let (mut second, url, logs) = start_gateway(&config);
    // The startup pass ran before the gateway listened.
    let settled = logs
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("now `unknown`"))
        .cloned()
        .unwrap_or_default();
    assert!(settled.contains("\"rows\":10"), "{settled}");
    let rows = db.audit_records(0, i64::MAX).await.unwrap();
    assert_eq!(outcomes(rows.clone()), vec!["unknown"; 10]);

    // Each send asked Twilio to post its status with its reference, the audit row's id.
    let callbacks = twilio.callbacks.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    let referenced: std::collections::BTreeSet<String> = callbacks
        .iter()
        .map(|url| {
            url.strip_prefix(&format!("{STATUS_URL}?ref="))
                .unwrap_or(url)
                .to_owned()
        })
        .collect();
    assert_eq!(referenced, ids, "{callbacks:?}");
    // Receipts arrive for four of them: those are confirmed sends, the rest stay unknown.
    for callback in &callbacks[..4] {
        assert_eq!(deliver_receipt(&client, &url, callback).await, 204);
    }

    // After the restart a send completes as before.
    let sent = client
        .post(format!("{url}/v1/messages"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"to": "+819012349999", "code": "739148"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);

    // The invariant: every message the provider received is an audited send or an audited
    // unknown; the ledger shows the unknowns apart, not as sends.
    let report = db
        .usage(0, i64::MAX, None, &[Dimension::System])
        .await
        .unwrap();
    let row = &report.rows[0];
    let delivered = twilio.received.lock().unwrap().len() as i64;
    assert_eq!(
        (row.requests, row.sends, row.unknown, row.delivered),
        (11, 5, 6, 4)
    );
    assert!(
        delivered <= row.sends + row.unknown,
        "{delivered} > {row:?}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
