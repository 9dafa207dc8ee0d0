//! PostgreSQL going away under the gateway: sends fail fast with a clear 503 (not a wait
//! until the client gives up), readiness says which dependency failed, and the gateway
//! recovers by itself. The database sits behind a loopback TCP proxy this test cuts: to
//! the gateway it is a server that stopped (connections reset, new ones refused).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use phone_otp::Limits;
use phone_otp_gateway::auth::key_admin::create_key;
use phone_otp_gateway::auth::scope::Scope;
use phone_otp_gateway::db::Db;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::db::postgres_with_url;
use crate::keys::{NOW, spec};
use crate::support::{Setup, TestGateway, TestResult};

/// Forwards one loopback port to `target` while up.
struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            address: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, Arc::clone(&self.tasks));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let piping = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(piping);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// The server "stops": every connection is cut and the port refuses new ones.
    fn down(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The server is back on the same port.
    async fn up(&self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test]
async fn a_postgres_outage_refuses_sends_fast_says_so_and_recovers() -> TestResult {
    let Some((direct, url)) = postgres_with_url().await else {
        return Ok(());
    };
    // The same database, reached through the proxy.
    let (user, rest) = url.split_once('@').ok_or("POSTGRES_URL names no host")?;
    let (server, name) = rest
        .split_once('/')
        .ok_or("POSTGRES_URL names no database")?;
    let proxy = Proxy::start(server.parse()?).await;
    let through = format!("{user}@{}/{name}", proxy.address);
    let db = Db::connect(&through).await?;
    db.set_probe_interval(std::time::Duration::ZERO);
    let gw = TestGateway::with(Setup {
        keys: Some(db.clone()),
        limits: Limits::danger_none(),
        ..Setup::default()
    })
    .await;
    let (token, _) = create_key(&direct, &spec("billing", &[Scope::MessagesSend]), NOW).await?;
    let token = token.expose_secret().to_owned();
    let send = |n: u32| json!({"to": format!("+8190{:08}", 13_000_000 + n), "code": "739148"});
    for n in 0..3 {
        assert_eq!(
            gw.post("/v1/messages", &token, &send(n)).await.status(),
            200
        );
    }

    proxy.down();
    let bodies = (3..23).map(send).collect();
    for response in gw.post_concurrently("/v1/messages", &token, bodies).await {
        // 503 (the gateway's bounded wait), not 408 (the request timeout): before, a
        // stopped server held each request for sqlx's 30 s acquire timeout.
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await?;
        assert!(
            ["audit_unavailable", "auth_unavailable"]
                .contains(&body["code"].as_str().unwrap_or("")),
            "{body}"
        );
    }
    assert_eq!(
        gw.delivered().len(),
        3,
        "nothing sent while the database is down"
    );
    let (status, body) = gw.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    let fault = body["checks"]["database"]["fault"].as_str().unwrap_or("");
    assert!(["unreachable", "timeout"].contains(&fault), "{body}");

    proxy.up().await;
    let (status, body) = gw.readyz().await;
    assert_eq!(status, 200, "{body}");
    for n in 23..26 {
        assert_eq!(
            gw.post("/v1/messages", &token, &send(n)).await.status(),
            200
        );
    }
    assert_eq!(gw.delivered().len(), 6);
    let rows = direct.audit_records(0, i64::MAX).await?;
    assert_eq!(
        rows.iter().filter(|r| r.outcome == "ok").count(),
        6,
        "{rows:#?}"
    );
    assert!(rows.iter().all(|r| r.outcome == "ok"), "{rows:#?}");
    Ok(())
}
