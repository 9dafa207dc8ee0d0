//! The load-test target of `scripts/bench-governance.sh`: the same `POST /v1/messages`
//! gateway three times, each on its own port, over a provider that accepts at once:
//! - `OPEN`: one static bearer token, no database (no key lookup, no audit);
//! - `SQLITE`: an API key checked in a SQLite file (WAL), every send audited and priced;
//! - `POSTGRES` (when `POSTGRES_URL` is set): the same on PostgreSQL.
//!
//! Prints `NAME=url` and `NAME_TOKEN=token` lines, then serves until killed.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use phone_otp::{
    Channel, HmacKey, KeyRing, MemoryStore, Message, Micros, OtpService, PhoneProvider, PriceTable,
    ProviderError, Rate, Receipt, Router,
};
use phone_otp_gateway::auth::key_admin::{KeySpec, create_key};
use phone_otp_gateway::auth::scope::{Scope, Scopes};
use phone_otp_gateway::db::Db;
use phone_otp_gateway::{BearerAccess, Gateway};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

const OPEN_TOKEN: &str = "bench-static-token-0123456789";

/// Accepts every message at once and keeps nothing.
#[derive(Debug, Default)]
struct NullProvider {
    sent: AtomicU64,
}

#[async_trait]
impl PhoneProvider for NullProvider {
    fn name(&self) -> &str {
        "stub"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(Receipt::new("stub", format!("stub-{n}"), message.channel()))
    }
}

fn gateway() -> Result<phone_otp_gateway::GatewayBuilder, Box<dyn std::error::Error>> {
    let router = Router::builder()
        .provider(NullProvider::default())
        .default_chain(Channel::Sms, &["stub"])
        .build()?;
    let key = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32]))?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(router.clone())
        // Every request uses a fresh number: room for all of their limit keys.
        .store(MemoryStore::new().limit_key_capacity(16_000_000))
        .build()?;
    Ok(Gateway::builder(otp).provider_router(router))
}

/// A gateway whose callers need a key from `db`, auditing and pricing every send.
async fn governed(db: Db) -> Result<(Gateway, String), Box<dyn std::error::Error>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let spec = KeySpec {
        kind: phone_otp_gateway::auth::api_key::KeyKind::System,
        owner: "bench".to_owned(),
        scopes: Scopes::default().with(Scope::MessagesSend),
        allowed: Vec::new(),
        lifetime: None,
    };
    let (token, _) = create_key(&db, &spec, i64::try_from(now)?).await?;
    let prices = PriceTable::new("USD").with(Rate {
        provider: "*".into(),
        country: "*".into(),
        sms: Micros::from_decimal(0.05),
        voice: None,
    });
    let gateway = gateway()?.keys(db).prices(prices).build()?;
    Ok((gateway, token.expose_secret().to_owned()))
}

async fn serve(name: &str, gateway: &Gateway, token: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{name}_TOKEN={token}");
    println!("{name}=http://{}", listener.local_addr()?);
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let open = gateway()?
        .api(
            BearerAccess::new(SecretString::from(OPEN_TOKEN), "bench")
                .scopes(Scopes::of(&[Scope::MessagesSend])),
        )
        .build()?;
    serve("OPEN", &open, OPEN_TOKEN).await?;

    let dir = std::env::temp_dir().join(format!("potp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = Db::connect(&format!("sqlite://{}/gw.db?mode=rwc", dir.display())).await?;
    let (sqlite, token) = governed(sqlite).await?;
    serve("SQLITE", &sqlite, &token).await?;

    if let Ok(url) = std::env::var("POSTGRES_URL") {
        let (postgres, token) = governed(Db::connect(&url).await?).await?;
        serve("POSTGRES", &postgres, &token).await?;
    }
    println!("READY=1");
    std::future::pending::<()>().await;
    Ok(())
}
