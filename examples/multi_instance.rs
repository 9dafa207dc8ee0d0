//! Two `OtpService` instances (as on two servers) sharing one Redis: a code sent by one
//! verifies on the other.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --features redis --example multi_instance
//! ```

use phone_otp::{
    HmacKey, KeyRing, OtpService, PhoneNumber, Purpose, RedisStore, StartRequest, StubProvider,
};
use secrecy::{ExposeSecret, SecretSlice};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    // Every instance needs the same key (from your secret manager) and the same store.
    let key = || {
        HmacKey::new(
            1,
            &SecretSlice::from(b"multi-instance-demo-key-32-bytes!!".to_vec()),
        )
    };
    let inbox = StubProvider::new();
    let instance = |name: &'static str| {
        let inbox = inbox.clone();
        let url = url.clone();
        async move {
            let store = RedisStore::connect(&url, "demo:").await?;
            println!("{name}: connected to {url}");
            Ok::<_, Box<dyn std::error::Error>>(
                OtpService::builder()
                    .key_ring(KeyRing::new(key()?))
                    .provider(inbox)
                    .store(store)
                    .build()?,
            )
        }
    };
    let (a, b) = (instance("instance A").await?, instance("instance B").await?);

    let to = PhoneNumber::parse("+819012345678")?;
    let started = a
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await?;
    println!(
        "instance A: sent a code to {} (challenge {})",
        started.masked_destination, started.challenge_id
    );
    let code = inbox.last_code_for(&to).ok_or("no code delivered")?;
    let outcome = b
        .verify(&started.challenge_id, code.expose_secret())
        .await?;
    println!("instance B: verify -> {outcome:?}");
    let again = a
        .verify(&started.challenge_id, code.expose_secret())
        .await?;
    println!("instance A: verify again -> {again:?}");
    Ok(())
}
