//! The load-test target of `scripts/bench-gateway.sh`: the Okta hook over a stub provider
//! (through a `Router`, default limits, memory store) on one port, and a bare axum handler
//! that answers a JSON body of the same size on another. Prints both URLs, then serves
//! until killed.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::routing::post;
use phone_otp::{
    Channel, HmacKey, KeyRing, MemoryStore, Message, OtpService, PhoneProvider, ProviderError,
    Receipt, Router,
};
use phone_otp_gateway::{Gateway, OktaHook};
use secrecy::{SecretSlice, SecretString};

/// What the gateway answers a successful hook call with (same size as the bare answer).
const BARE_ANSWER: &str = r#"{"commands":[{"type":"com.okta.telephony.action","value":[{"provider":"stub","status":"SUCCESSFUL","transactionId":"stub-1000000","transactionMetadata":"Duration=0ms; Attempts=1"}]}]}"#;

/// Accepts every message at once and keeps nothing (the library's `StubProvider` records
/// each message, which would grow without bound under load).
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
        Ok(Receipt::new(
            "stub",
            format!("stub-{}", 1_000_000 + n),
            message.channel(),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stub = NullProvider::default();
    let router = Router::builder()
        .provider(stub)
        .default_chain(Channel::Sms, &["stub"])
        .build()?;
    let key = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32]))?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(router.clone())
        // Every request in the load uses fresh keys: room for all of them.
        .store(MemoryStore::new().limit_key_capacity(16_000_000))
        .build()?;
    let gateway = Gateway::builder(otp)
        .provider_router(router)
        .okta(OktaHook::new(
            "authorization",
            SecretString::from("Basic YmVuY2g6YmVuY2gtc2VjcmV0"),
        ))
        .default_region("IN")
        .build()?;

    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("GATEWAY=http://{}", hook.local_addr()?);
    println!("BARE=http://{}", bare.local_addr()?);
    let bare_app = axum::Router::new().route(
        "/hooks/okta/telephony",
        post(|_body: Bytes| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                BARE_ANSWER,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(bare, bare_app).await });
    axum::serve(hook, gateway.router()).await?;
    Ok(())
}
