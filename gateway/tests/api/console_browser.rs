//! The console in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/console.mjs`), on data seeded through the real HTTP API. It signs in
//! with an admin key, reads the seeded numbers off the overview, creates a key, copies
//! its secret and revokes it, checks the session
//! cookie as the browser holds it, runs axe-core on each page, switches to Japanese and
//! signs out; screenshots go to the target directory. Skipped loudly (a failure under CI)
//! when Node, the npm packages (`./scripts/test.sh` installs them) or Chromium are missing.

use std::path::{Path, PathBuf};

use phone_otp_gateway::auth::scope::Scope;
use serde_json::json;

use crate::console::{console_gateway, token};
use crate::db::sqlite;
use crate::support::{TestResult, skip_loudly};

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
        "expect": {
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
        stdout.contains("sign-in, overview, keys (create, copy, revoke), Japanese, sign-out"),
        "{stdout}"
    );
    eprintln!("{}screenshots in {}", stdout, screenshots.display());
    Ok(())
}
