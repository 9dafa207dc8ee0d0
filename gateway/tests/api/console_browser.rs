//! The console in a real browser (and, for single sign-on, with a real OpenID provider,
//! the certified `oidc-provider` package run by `tests/browser/oidc.mjs`): Debian's Chromium driven by playwright-core
//! (`tests/browser/console.mjs`), on data seeded through the real HTTP API. It signs in
//! with an admin key, reads the seeded numbers off the overview, creates a key, copies
//! its secret and revokes it (its next API call refused), posts a form without its CSRF
//! token (refused), downloads a system's CSV and compares it with `/v1/usage`, opens the
//! abuse and providers pages, searches the audit trail and opens a record, is refused a
//! key action as a viewer, checks the session cookie as the browser holds it, runs
//! axe-core on each page, switches to Japanese and signs out; screenshots go to the
//! target directory. Skipped loudly (a failure under CI)
//! when Node, the npm packages (`./scripts/test.sh` installs them) or Chromium are missing.

use std::path::{Path, PathBuf};

use phone_otp_gateway::auth::scope::Scope;
use serde_json::json;

use phone_otp_gateway::console::{ConsoleSettings, SsoSettings};

use crate::console::{console_gateway, token};
use crate::db::sqlite;
use crate::support::{Setup, TestGateway, TestResult, skip_loudly};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    path.exists().then_some(path)
}

#[tokio::test]
async fn an_operator_signs_in_and_reads_the_overview_in_chromium() -> TestResult {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !scripts.join("node_modules/playwright-core").exists() {
        skip_loudly("playwright-core is not installed (npm ci --prefix gateway/tests/browser)");
        return Ok(());
    }
    let Some(chromium) = chromium() else {
        skip_loudly("no Chromium at /usr/bin/chromium (apt-get install chromium)");
        return Ok(());
    };
    let db = sqlite().await.unwrap();
    let gw = console_gateway(&db).await;
    let (billing, _) = token(&db, "billing", &[Scope::MessagesSend]).await;
    let (crm, _) = token(&db, "crm", &[Scope::MessagesSend]).await;
    let (admin, _) = token(&db, "platform-team", &[Scope::KeysAdmin]).await;
    let (viewer, _) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    for (key, to) in [
        (&billing, "+819012345670"),
        (&billing, "+819012345671"),
        (&crm, "+819012345672"),
        (&crm, "+1"),
    ] {
        gw.post("/v1/messages", key, &json!({"to": to, "code": "482913"}))
            .await;
    }
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let args = json!({
        "base": gw.url,
        "adminKey": admin,
        "viewerKey": viewer,
        "range": {"from": "2022-01-01", "to": "2022-01-31"},
        "expect": {
            "refusal": "invalid_number",
            "systems": {
                "billing": {"requests": 2, "sends": 2},
                "crm": {"requests": 2, "sends": 1},
            },
            "cost": "0.124000 USD",
            "bars": 2,
            "legend": "billing,crm",
        },
        "screenshots": screenshots,
    });
    let output = tokio::process::Command::new("node")
        .arg(scripts.join("console.mjs"))
        .arg(args.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            skip_loudly(&format!("node is not runnable: {e}"));
            return Ok(());
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stderr}\n{stdout}"
    );
    assert!(
        stdout.contains("sign-in, overview, keys (create, copy, revoke, refused after), CSRF, systems CSV = /v1/usage, abuse, providers, audit search, viewer refused, Japanese, sign-out"),
        "{stdout}"
    );
    eprintln!("{}screenshots in {}", stdout, screenshots.display());
    Ok(())
}

/// The provider of `tests/browser/oidc.mjs`, running until dropped.
struct OpenIdProvider {
    child: tokio::process::Child,
    issuer: String,
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn open_id_provider(scripts: &Path, redirect_uri: &str) -> OpenIdProvider {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new("node")
        .arg(scripts.join("oidc.mjs"))
        .arg(json!({"clientId": "phone-otp-console", "redirectUri": redirect_uri}).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs oidc.mjs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = lines
        .next_line()
        .await
        .unwrap()
        .expect("the provider's issuer");
    let issuer = serde_json::from_str::<serde_json::Value>(&first).unwrap()["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    // Keep reading what it prints, or its next write fails on a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    OpenIdProvider { child, issuer }
}

#[tokio::test]
async fn operators_sign_in_with_a_real_openid_provider() -> TestResult {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !scripts.join("node_modules/oidc-provider").exists() {
        skip_loudly("oidc-provider is not installed (npm ci --prefix gateway/tests/browser)");
        return Ok(());
    }
    let Some(chromium) = chromium() else {
        skip_loudly("no Chromium at /usr/bin/chromium (apt-get install chromium)");
        return Ok(());
    };
    // The console's address is needed before it is built: its callback is registered at
    // the provider.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let redirect = format!("{base}/console/sso/callback");
    let provider = open_id_provider(&scripts, &redirect).await;
    let sso = SsoSettings::new(&provider.issuer, "phone-otp-console", &redirect)?.roles(
        "groups",
        vec!["otp-admins".to_owned()],
        vec!["otp-viewers".to_owned()],
    );
    let console = ConsoleSettings::new().sso(sso)?;
    let db = sqlite().await.unwrap();
    // The provider signs with the real clock: so does this gateway.
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        listener: Some(listener),
        configure: Box::new(move |builder| builder.console(console).clock(phone_otp::SystemClock)),
        ..Setup::default()
    })
    .await;
    assert_eq!(gw.url, base);
    let output = tokio::process::Command::new("node")
        .arg(scripts.join("console_sso.mjs"))
        .arg(json!({"base": base}).to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the sign-in failed:\n{stderr}\n{stdout}"
    );
    assert!(
        stdout.contains("administrator, viewer, and no role refused"),
        "{stdout}"
    );
    // Each sign-in is on the audit trail under the user and their subject; the refused
    // one too.
    let records = db.audit_records(0, i64::MAX).await?;
    let sso: Vec<(String, String, i64)> = records
        .iter()
        .filter(|r| r.endpoint == "console_signin_sso")
        .map(|r| {
            (
                r.system.clone().unwrap_or_default(),
                r.key_id.clone().unwrap_or_default(),
                r.status,
            )
        })
        .collect();
    for expected in [
        ("alice@example.com", "sso:alice", 200),
        ("bob@example.com", "sso:bob", 200),
        ("carol@example.com", "sso:carol", 403),
    ] {
        assert!(
            sso.contains(&(expected.0.to_owned(), expected.1.to_owned(), expected.2)),
            "{expected:?} not in {sso:?}"
        );
    }
    drop(provider);
    Ok(())
}
