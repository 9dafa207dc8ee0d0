//! The `phone-otp-gateway` binary: config errors, the loud stub warning, serving, and a
//! graceful stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("potp-bin-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn missing_variables_are_named_and_the_exit_is_non_zero() {
    let config = write_config(
        "missing",
        "log_format = \"text\"\n[[providers]]\nkind = \"twilio\"\n[okta]\nsecret_env = \"POTP_TEST_OKTA_SECRET\"\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("POTP_TEST_OKTA_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    // Said to the person on stderr, in words (not a JSON log line), with a way forward.
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("POTP_TEST_OKTA_SECRET"), "{said}");
    assert!(
        said.contains("TWILIO_ACCOUNT_SID"),
        "every missing variable at once: {said}"
    );
    assert!(said.starts_with("error: cannot start: "), "{said}");
    assert!(said.contains("gateway/examples/try.toml"), "{said}");

    let unknown = write_config("unknown", "listen_port = 80\n");
    let output = Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
        .arg("--config")
        .arg(&unknown)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_port"));
}

#[cfg(unix)]
#[test]
fn serves_on_the_stub_says_so_and_stops_gracefully_on_sigterm() {
    let config = write_config("serve", "listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let address = loop {
        let line = lines
            .next()
            .expect("the gateway logs until it listens")
            .unwrap();
        seen.push(line.clone());
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "phone-otp-gateway listening" {
            break event["address"].as_str().unwrap().to_owned();
        }
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("NO PROVIDER CONFIGURED") && l.contains("WARN")),
        "{seen:?}"
    );

    // It answers.
    let health = std::net::TcpStream::connect(&address).map(|mut stream| {
        use std::io::{Read, Write};
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    });
    assert!(health.unwrap().starts_with("HTTP/1.1 200"));

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

fn keys(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
        .arg("--config")
        .arg(config)
        .arg("keys")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_keys_cli_creates_lists_rotates_and_revokes() {
    let db = std::env::temp_dir().join(format!("potp-bin-{}-keys.db", std::process::id()));
    let config = write_config(
        "keys",
        &format!("[database]\nurl = \"sqlite://{}?mode=rwc\"\n", db.display()),
    );
    let created = keys(
        &config,
        &[
            "create",
            "--owner",
            "billing",
            "--scope",
            "messages:send",
            "--scope",
            "usage:read",
            "--allow",
            "203.0.113.0/24",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let out = String::from_utf8(created.stdout).unwrap();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once, store it now): "))
        .unwrap()
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.starts_with(&format!("potp_sys_{id}_")));

    let listed = String::from_utf8(keys(&config, &["list"]).stdout).unwrap();
    assert!(listed.contains(&id) && listed.contains("billing"));
    assert!(listed.contains("messages:send usage:read") && listed.contains("203.0.113.0/24"));
    assert!(
        !listed.contains(&token[22..]),
        "the secret is never shown again"
    );

    let rotated = keys(&config, &["rotate", &id, "--grace", "1h"]);
    assert!(rotated.status.success());
    let revoked = keys(&config, &["revoke", &id]);
    assert!(revoked.status.success());
    let again = keys(&config, &["revoke", &id]);
    assert!(!again.status.success());
    let listed = String::from_utf8(keys(&config, &["list"]).stdout).unwrap();
    assert_eq!(
        listed.lines().count(),
        3,
        "header, the old key, its replacement: {listed}"
    );

    // Bad input: an unknown scope, a personal token without expiry. Named, exit non-zero.
    let bad = keys(&config, &["create", "--owner", "x", "--scope", "admin"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope \"admin\""));
    let bad = keys(
        &config,
        &[
            "create",
            "--owner",
            "alice",
            "--scope",
            "messages:send",
            "--personal",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must expire"));
    let _ = std::fs::remove_file(db);
}

#[tokio::test]
async fn the_usage_cli_prints_the_ledger_as_csv_and_json() {
    use phone_otp_gateway::db::{AuditRecord, Db};
    let db_path = std::env::temp_dir().join(format!("potp-bin-{}-usage.db", std::process::id()));
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let db = Db::connect(&url).await.unwrap();
    // 2022-01-28T12:00:00Z: two sends by billing, one refused request by crm.
    let at = 1_643_371_200_000;
    let record = |id: &str, system: &str, provider: Option<&str>| AuditRecord {
        id: id.to_owned(),
        request_id: id.to_owned(),
        at,
        endpoint: "messages".to_owned(),
        system: Some(system.to_owned()),
        country: Some("JP".to_owned()),
        provider: provider.map(str::to_owned),
        segments: provider.map(|_| 2),
        cost_micros: provider.map(|_| 124_000),
        currency: provider.map(|_| "USD".to_owned()),
        status: if provider.is_some() { 200 } else { 429 },
        outcome: if provider.is_some() {
            "ok"
        } else {
            "rate_limited"
        }
        .to_owned(),
        ..AuditRecord::default()
    };
    for r in [
        record("a", "billing", Some("twilio")),
        record("b", "billing", Some("twilio")),
        record("c", "crm", None),
    ] {
        db.insert_audit(&r).await.unwrap();
    }
    db.close().await;
    let config = write_config("usage", &format!("[database]\nurl = \"{url}\"\n"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phone-otp-gateway"))
            .arg("--config")
            .arg(&config)
            .arg("usage")
            .args(["--from", "2022-01-28", "--to", "2022-01-28"])
            .args(args)
            .output()
            .unwrap()
    };
    let csv = run(&["--group-by", "system,provider"]);
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "system,provider,requests,sends,unknown,possible_duplicates,delivered,undelivered,segments,cost,currency\r\n\
         billing,twilio,2,2,0,0,0,0,4,0.248000,USD\r\n\
         crm,,1,0,0,0,0,0,0,0.000000,\r\n"
    );
    let json = run(&["--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["from"], "2022-01-28T00:00:00Z");
    assert_eq!(report["rows"][0]["cost"], "0.248000");
    let bad = run(&["--group-by", "price"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown group_by \"price\""));
}
