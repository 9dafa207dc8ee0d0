//! The operator console over real HTTP on SQLite and PostgreSQL: sign-in with an admin
//! or viewer key, the overview showing the seeded sends, cost and refusals per system,
//! both languages, and everything a session must refuse (a wrong or under-scoped key, a
//! missing form token, a cross-site post, a forged cookie, a revoked key).

use phone_otp::{HmacKey, KeyRing, Limits, OtpService, StubProvider};
use phone_otp_gateway::Gateway;
use phone_otp_gateway::auth::key_admin::create_key;
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::console::ConsoleSettings;
use phone_otp_gateway::db::{Db, Dimension};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Value, json};

use crate::db::{postgres, sqlite};
use crate::keys::{NOW, spec};
use crate::support::{Setup, TestGateway, TestResult, sample_value};
use crate::usage::prices;

/// A browser's part that matters here: its cookie jar, and no redirect following (each
/// redirect is asserted).
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    /// Sent as `Sec-Fetch-Site` on posts, as a browser does.
    site: &'static str,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the form's hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
            site: "same-origin",
        }
    }

    /// The same browser (its cookies) talking to another instance.
    pub fn at(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: self.client.clone(),
            cookies: self.cookies.clone(),
            site: self.site,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    async fn absorb(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for line in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = line.split(';').next().unwrap_or("");
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.cookies.retain(|(k, _)| k != name);
            if !line.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str, language: Option<&str>) -> Page {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        let response = request.send().await.unwrap();
        self.absorb(response).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", self.site)
            .body(body)
            .send()
            .await
            .unwrap();
        self.absorb(response).await
    }

    /// Opens the sign-in form and submits `key` with its token.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/console/signin", None).await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        assert_eq!(self.cookie("potp_console_signin"), Some(csrf.as_str()));
        self.post("/console/signin", &[("key", key), ("csrf", &csrf)])
            .await
    }
}

pub async fn token(db: &Db, owner: &str, scopes: &[Scope]) -> (String, String) {
    let (token, record) = create_key(db, &spec(owner, scopes), NOW).await.unwrap();
    (token.expose_secret().to_owned(), record.id)
}

async fn auth_failures(gw: &TestGateway) -> f64 {
    let samples = gw.metrics().await.unwrap();
    sample_value(&samples, "phone_otp_gateway_auth_failures_total", &[])
}

pub async fn console_gateway(db: &Db) -> TestGateway {
    TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        configure: Box::new(|builder| builder.prices(prices()).console(ConsoleSettings::new())),
        ..Setup::default()
    })
    .await
}

async fn the_overview_shows_each_systems_sends(db: Db) -> TestResult {
    let gw = console_gateway(&db).await;
    let (billing, _) = token(&db, "billing", &[Scope::MessagesSend]).await;
    let (crm, _) = token(&db, "crm", &[Scope::MessagesSend]).await;
    let (admin, admin_id) = token(&db, "platform-team", &[Scope::KeysAdmin]).await;
    for (key, to) in [
        (&billing, "+819012345670"),
        (&billing, "+819012345671"),
        (&crm, "+819012345672"),
    ] {
        let sent = gw
            .post("/v1/messages", key, &json!({"to": to, "code": "482913"}))
            .await;
        assert_eq!(sent.status(), 200);
    }
    let refused = gw
        .post("/v1/messages", &crm, &json!({"to": "+1", "code": "482913"}))
        .await;
    assert!(refused.status().is_client_error());
    let refusal: Value = refused.json().await?;
    let refusal = refusal["code"].as_str().unwrap_or("").to_owned();
    assert!(!refusal.is_empty());

    let mut browser = Browser::new(&gw.url);
    // No session: every page sends the browser to the sign-in form.
    let page = browser.get("/console/overview", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/signin");

    let signed_in = browser.sign_in(&admin).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/console/overview");
    let cookie = signed_in
        .set_cookie("potp_console")
        .expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    // The key's secret is nowhere in the cookie.
    assert!(!cookie.contains(&admin) && !cookie.contains(admin.split('_').nth(2).unwrap_or("-")));
    // The sign-in form's token is spent.
    assert_eq!(browser.cookie("potp_console_signin"), None);

    let page = browser.get("/console/overview", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str()?;
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let body = &page.body;
    assert!(
        body.starts_with("<!doctype html>\n<html lang=\"en\">"),
        "{body}"
    );
    assert!(
        body.contains("<strong>platform-team</strong> (administrator)"),
        "{body}"
    );
    // billing: 2 requests, 2 sends, 0.124 USD (2 JP SMS at 0.062).
    assert!(
        body.contains(
            "<tr><th scope=\"row\">billing</th><td class=\"n\">2</td><td class=\"n\">2</td>"
        ),
        "{body}"
    );
    assert!(body.contains("0.124000 USD"), "{body}");
    // The total is priced sends only, per currency (the sign-in's row is unpriced).
    assert!(
        body.contains("<td class=\"n\">0.186000 USD</td></tr></tfoot>"),
        "{body}"
    );
    // crm: 2 requests (one refused), 1 send.
    assert!(
        body.contains("<tr><th scope=\"row\">crm</th><td class=\"n\">2</td><td class=\"n\">1</td>"),
        "{body}"
    );
    // The chart's current hour stacks both systems' sends.
    let hour = format!("{:02}:00", (NOW / 3_600_000) % 24);
    assert!(
        body.contains(&format!("<title>{hour}: 3, billing 2, crm 1</title>")),
        "{body}"
    );
    // The refusal, by the code its caller was given.
    assert!(
        body.contains(&format!(
            "<tr><td>{refusal}</td><td class=\"n\">1</td></tr>"
        )),
        "{body}"
    );
    // The sign-in itself is on the audit trail, under the operator's key.
    let audit = db
        .usage(0, i64::MAX, Some("platform-team"), &[Dimension::Endpoint])
        .await?;
    assert_eq!(audit.rows.len(), 1);
    assert_eq!(audit.rows[0].key, vec![Some("console_signin".to_owned())]);
    assert_eq!(audit.rows[0].requests, 1);
    let keys = db.keys().await?;
    let used = keys
        .iter()
        .find(|k| k.id == admin_id)
        .and_then(|k| k.last_used_at);
    assert_eq!(used, Some(NOW), "the sign-in is the key's last use");

    // Japanese: by switch (remembered in a cookie), or from the browser's language.
    let page = browser.get("/console/overview?lang=ja", None).await;
    assert!(page.body.starts_with("<!doctype html>\n<html lang=\"ja\">"));
    assert!(
        page.body.contains("<h1>概要</h1>") && page.body.contains("過去24時間のシステム別集計")
    );
    assert_eq!(browser.cookie("potp_console_lang"), Some("ja"));
    let page = browser.get("/console/overview", None).await;
    assert!(page.body.contains("<h1>概要</h1>"));
    let mut fresh = Browser::new(&gw.url);
    let form = fresh
        .get("/console/signin", Some("ja-JP,ja;q=0.9,en;q=0.5"))
        .await;
    assert!(form.body.contains("<h1>サインイン</h1>"), "{}", form.body);

    // Signing out needs the session's token, then clears the cookie.
    let refused = browser.post("/console/signout", &[("csrf", "wrong")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(browser.cookie("potp_console").is_some());
    let csrf = browser.get("/console/overview", None).await.csrf();
    let out = browser.post("/console/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.cookie("potp_console"), None);
    assert_eq!(
        browser.get("/console/overview", None).await.status,
        StatusCode::SEE_OTHER
    );
    Ok(())
}

#[tokio::test]
async fn the_overview_shows_each_systems_sends_on_sqlite() -> TestResult {
    the_overview_shows_each_systems_sends(sqlite().await.unwrap()).await
}

#[tokio::test]
async fn the_overview_shows_each_systems_sends_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => the_overview_shows_each_systems_sends(db).await,
        None => Ok(()),
    }
}

#[tokio::test]
async fn sign_in_refuses_what_it_must_and_records_nothing_for_strangers() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = console_gateway(&db).await;
    let (sender, _) = token(&db, "billing", &[Scope::MessagesSend]).await;
    let (viewer, viewer_id) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    let before = auth_failures(&gw).await;
    let mut browser = Browser::new(&gw.url);

    // An unknown key: the form again, 401, counted as a failed authentication, no
    // session and no audit row (anonymous traffic writes nothing).
    let page = browser.sign_in("potp_sk_notakey_000000").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("That key is not accepted."),
        "{}",
        page.body
    );
    assert_eq!(browser.cookie("potp_console"), None);
    assert_eq!(auth_failures(&gw).await, before + 1.0);
    let audit = db.usage(0, i64::MAX, None, &[]).await?;
    assert!(audit.rows.is_empty(), "{:?}", audit.rows);

    // A real key without an operator's scope.
    let page = browser.sign_in(&sender).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("neither keys:admin nor usage:read:all"));
    assert_eq!(browser.cookie("potp_console"), None);

    // Without the form's token, or with another form's.
    browser.get("/console/signin", None).await;
    let page = browser
        .post("/console/signin", &[("key", &viewer), ("csrf", "forged")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.cookie("potp_console"), None);

    // A cross-site post is refused before the key is looked at.
    let mut attacker = Browser::new(&gw.url);
    attacker.site = "cross-site";
    let form = attacker.get("/console/signin", None).await;
    let page = attacker
        .post(
            "/console/signin",
            &[("key", "potp_sk_x_0"), ("csrf", &form.csrf())],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(auth_failures(&gw).await, before + 1.0);

    // A viewer signs in as a viewer.
    let page = browser.sign_in(&viewer).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/console/overview", None).await;
    assert!(
        page.body.contains("<strong>finance</strong> (viewer)"),
        "{}",
        page.body
    );

    // A cookie changed by hand is not a session.
    let session = browser.cookie("potp_console").unwrap().to_owned();
    let (payload, tag) = session.split_once('.').unwrap();
    let mut forged = payload.to_owned();
    forged.replace_range(..1, if payload.starts_with('e') { "f" } else { "e" });
    browser.set("potp_console", &format!("{forged}.{tag}"));
    assert_eq!(
        browser.get("/console/overview", None).await.status,
        StatusCode::SEE_OTHER
    );
    browser.set("potp_console", &session);
    assert_eq!(
        browser.get("/console/overview", None).await.status,
        StatusCode::OK
    );

    // Revoking the key ends its sessions on the next page.
    assert!(db.revoke_key(&viewer_id, NOW).await?);
    let page = browser.get("/console/overview", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/signin");
    Ok(())
}

#[tokio::test]
async fn the_console_needs_a_database_and_can_have_its_own_listener() -> TestResult {
    let key = HmacKey::new(1, &SecretSlice::from(vec![9u8; 32]))?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(StubProvider::new())
        .build()?;
    let without = Gateway::builder(otp)
        .console(ConsoleSettings::new())
        .build();
    assert_eq!(
        without.err().map(|e| e.to_string()).as_deref(),
        Some("the console needs a database ([database])")
    );
    assert!(ConsoleSettings::new().session_key(&[1u8; 31]).is_err());

    let db = sqlite().await.unwrap();
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        configure: Box::new(|builder| builder.console(ConsoleSettings::new().own_listener(true))),
        ..Setup::default()
    })
    .await;
    // Not beside the API...
    let mut browser = Browser::new(&gw.url);
    assert_eq!(
        browser.get("/console/signin", None).await.status,
        StatusCode::NOT_FOUND
    );
    // ...but on its own router, with its stylesheet.
    let console = gw.gateway.console_router().expect("a console router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            console.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let mut browser = Browser::new(&format!("http://{address}"));
    assert_eq!(
        browser.get("/console/signin", None).await.status,
        StatusCode::OK
    );
    let css = browser.get("/console/assets/console.css", None).await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(css.body.contains("font-family"));
    assert_eq!(
        browser.get("/v1/usage", None).await.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

/// The `value` of the input `id` on a page.
fn input_value(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = body.find(&marker).expect("the input");
    let rest = &body[start..];
    let value = rest.find("value=\"").expect("a value") + 7;
    rest[value..].split('"').next().unwrap_or("").to_owned()
}

async fn administrators_manage_keys_and_viewers_cannot(db: Db) -> TestResult {
    let gw = console_gateway(&db).await;
    let (admin, admin_id) = token(&db, "platform-team", &[Scope::KeysAdmin]).await;
    let (viewer, _) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    let mut browser = Browser::new(&gw.url);
    browser.sign_in(&admin).await;
    let page = browser.get("/console/keys", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("<code>{admin_id}</code>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("Create a key"));
    let csrf = page.csrf();

    // Create: the secret is shown once, and works at once.
    let created = browser
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("owner", "crm"),
                ("scope:messages:send", "on"),
                ("days", "30"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let secret = input_value(&created.body, "secret");
    assert!(secret.starts_with("potp_sys_"), "{secret}");
    assert!(created.body.contains("/console/assets/console.js"));
    let sent = gw
        .post(
            "/v1/messages",
            &secret,
            &json!({"to": "+819012345670", "code": "482913"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let listed = browser.get("/console/keys", None).await;
    assert!(
        !listed.body.contains(&secret),
        "the secret is shown only once"
    );
    let crm = db
        .keys()
        .await?
        .into_iter()
        .find(|k| k.owner == "crm")
        .unwrap();
    assert_eq!(crm.scopes.to_string(), "messages:send");
    assert_eq!(crm.expires_at, Some(NOW + 30 * 86_400_000));

    // Bad input: a clear refusal, and nothing created.
    let before = db.keys().await?.len();
    for (fields, words) in [
        (
            vec![("owner", "internal"), ("scope:messages:send", "on")],
            "already a configured system",
        ),
        (vec![("owner", "erp")], "at least one scope"),
        (
            vec![
                ("owner", "erp"),
                ("scope:messages:send", "on"),
                ("allowed", "not-a-block"),
            ],
            "CIDR",
        ),
        (
            vec![
                ("owner", "erp"),
                ("scope:messages:send", "on"),
                ("days", "0"),
            ],
            "1 to 3650",
        ),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &csrf));
        let page = browser.post("/console/keys", &fields).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    assert_eq!(db.keys().await?.len(), before);

    // Rotate with no grace: the new secret works, the old one is refused now.
    let rotated = browser
        .post(
            &format!("/console/keys/{}/rotate", crm.id),
            &[("csrf", &csrf), ("grace_hours", "0")],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = input_value(&rotated.body, "secret");
    let old = gw
        .post(
            "/v1/messages",
            &secret,
            &json!({"to": "+819012345671", "code": "482913"}),
        )
        .await;
    assert_eq!(old.status(), 401);
    let new = gw
        .post(
            "/v1/messages",
            &new_secret,
            &json!({"to": "+819012345671", "code": "482913"}),
        )
        .await;
    assert_eq!(new.status(), 200);

    // Revoke: a confirmation page first, then refused on the next request.
    let new_id = db
        .keys()
        .await?
        .into_iter()
        .find(|k| k.owner == "crm" && k.revoked_at.is_none())
        .unwrap()
        .id;
    let confirm = browser
        .get(&format!("/console/keys/{new_id}/revoke"), None)
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Revoke this key?"));
    assert_eq!(
        db.keys()
            .await?
            .iter()
            .find(|k| k.id == new_id)
            .unwrap()
            .revoked_at,
        None
    );
    let revoked = browser
        .post(
            &format!("/console/keys/{new_id}/revoke"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let refused = gw
        .post(
            "/v1/messages",
            &new_secret,
            &json!({"to": "+819012345672", "code": "482913"}),
        )
        .await;
    assert_eq!(refused.status(), 401);

    // Without the session's token nothing changes.
    let (spare, spare_id) = token(&db, "erp", &[Scope::MessagesSend]).await;
    let forged = browser
        .post(
            &format!("/console/keys/{spare_id}/revoke"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // A viewer sees the keys but no forms, and every change is refused.
    let mut viewer_browser = Browser::new(&gw.url);
    viewer_browser.sign_in(&viewer).await;
    let page = viewer_browser.get("/console/keys", None).await;
    assert!(page.body.contains(&format!("<code>{spare_id}</code>")));
    assert!(!page.body.contains("Create a key") && !page.body.contains("/revoke\""));
    let csrf = page.csrf();
    let before = db.keys().await?.len();
    let create = viewer_browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("owner", "x"), ("scope:keys:admin", "on")],
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let revoke = viewer_browser
        .post(
            &format!("/console/keys/{spare_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::FORBIDDEN);
    assert_eq!(
        viewer_browser
            .get(&format!("/console/keys/{spare_id}/revoke"), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(db.keys().await?.len(), before);
    let ok = gw
        .post(
            "/v1/messages",
            &spare,
            &json!({"to": "+819012345673", "code": "482913"}),
        )
        .await;
    assert_eq!(ok.status(), 200, "the viewer's revoke did nothing");

    // Every change, and the viewer's refused attempts, are on the audit trail under the
    // operator, with the action and the key.
    let records = db.audit_records(0, i64::MAX).await?;
    let actions: Vec<(String, String, u16)> = records
        .iter()
        .filter(|r| r.endpoint.starts_with("console_key_"))
        .map(|r| {
            (
                r.system.clone().unwrap_or_default(),
                r.purpose.clone().unwrap_or_default(),
                u16::try_from(r.status).unwrap_or(0),
            )
        })
        .collect();
    for expected in [
        ("platform-team".to_owned(), "key.create crm".to_owned(), 200),
        (
            "platform-team".to_owned(),
            format!("key.rotate {}", crm.id),
            200,
        ),
        (
            "platform-team".to_owned(),
            format!("key.revoke {new_id}"),
            200,
        ),
        ("finance".to_owned(), format!("key.revoke {spare_id}"), 403),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} not in {actions:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn administrators_manage_keys_and_viewers_cannot_on_sqlite() -> TestResult {
    administrators_manage_keys_and_viewers_cannot(sqlite().await.unwrap()).await
}

#[tokio::test]
async fn administrators_manage_keys_and_viewers_cannot_on_postgres() -> TestResult {
    match postgres().await {
        Some(db) => administrators_manage_keys_and_viewers_cannot(db).await,
        None => Ok(()),
    }
}

#[tokio::test]
async fn the_systems_page_shows_the_same_numbers_as_the_usage_api() -> TestResult {
    let db = sqlite().await.unwrap();
    let gw = console_gateway(&db).await;
    let (billing, billing_id) = token(&db, "billing", &[Scope::MessagesSend]).await;
    let (crm, _) = token(&db, "crm", &[Scope::MessagesSend]).await;
    let (viewer, _) = token(&db, "finance", &[Scope::UsageReadAll]).await;
    for (key, to) in [
        (&billing, "+819012345670"),
        (&billing, "+12025550123"),
        (&crm, "+819012345672"),
    ] {
        let sent = gw
            .post("/v1/messages", key, &json!({"to": to, "code": "482913"}))
            .await;
        assert_eq!(sent.status(), 200);
    }
    let mut browser = Browser::new(&gw.url);
    assert_eq!(
        browser.get("/console/systems", None).await.status,
        StatusCode::SEE_OTHER
    );
    browser.sign_in(&viewer).await;

    let range = "from=2022-01-01&to=2022-01-31";
    let page = browser
        .get(&format!("/console/systems?{range}"), None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "<a href=\"/console/systems?system=billing&amp;{}\">billing</a></th><td class=\"n\">2</td><td class=\"n\">2</td>",
            range.replace('&', "&amp;")
        )),
        "{}",
        page.body
    );

    let page = browser
        .get(&format!("/console/systems?system=billing&{range}"), None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // By day, country and provider: 2 sends on Okta's sample day, one each to JP and US.
    assert!(
        body.contains(
            "<th scope=\"row\">2022-01-28</th><td class=\"n\">2</td><td class=\"n\">2</td>"
        ),
        "{body}"
    );
    assert!(
        body.contains("<th scope=\"row\">JP</th><td class=\"n\">1</td><td class=\"n\">1</td>"),
        "{body}"
    );
    assert!(
        body.contains("<th scope=\"row\">US</th><td class=\"n\">1</td><td class=\"n\">1</td>"),
        "{body}"
    );
    assert!(
        body.contains("<th scope=\"row\">primary</th><td class=\"n\">2</td><td class=\"n\">2</td>"),
        "{body}"
    );
    // 0.062 (JP via primary) + 0.0079 (US).
    assert!(body.contains("0.069900 USD"), "{body}");
    // Its keys, and no other system's.
    assert!(body.contains(&format!("<code>{billing_id}</code>")));
    assert!(!body.contains(">crm<"), "{body}");

    // The export is the usage API's own CSV for the same range and grouping.
    let csv = browser
        .get(
            &format!("/console/systems/usage.csv?system=billing&{range}"),
            None,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.headers["content-type"],
        "text/csv; charset=utf-8; header=present"
    );
    let api = gw
        .client
        .get(format!(
            "{}/v1/usage?system=billing&{range}&group_by=system,day,country,provider&format=csv",
            gw.url
        ))
        .bearer_auth(&viewer)
        .send()
        .await?;
    assert_eq!(api.status(), 200);
    assert_eq!(csv.body, api.text().await?);
    assert!(
        csv.body.contains("billing,2022-01-28,JP,primary,1,1"),
        "{}",
        csv.body
    );

    // Ranges are bounded.
    let long = browser
        .get("/console/systems?from=2021-01-01&to=2022-01-31", None)
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(long.body.contains("at most 92 days"));
    Ok(())
}
