//! Two `OtpService` instances (as on two servers) sharing one Redis: a code sent by one
//! verifies on the other.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --features redis --example multi_instance
//! ```

use std::error::Error;
use std::process::ExitCode;

use phone_otp::store::{OtpStore, StoreError};
use phone_otp::{
    HmacKey, KeyRing, LimitKind, OtpService, PhoneNumber, Purpose, RedisStore, StartError,
    StartRequest, StubProvider,
};
use secrecy::{ExposeSecret, SecretSlice};

type Failure = Box<dyn Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), Failure> {
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
        async move {
            // The connection is made lazily: a ping says now whether Redis is there.
            let unreachable = |error: StoreError| {
                let cause = Error::source(&error).map(|c| format!(": {c}"));
                format!(
                    "cannot reach Redis at {url} ({error}{}): start one (`redis-server`) or \
                     set REDIS_URL",
                    cause.unwrap_or_default()
                )
            };
            let store = RedisStore::connect(url, "demo:")
                .await
                .map_err(unreachable)?;
            store.ping().await.map_err(unreachable)?;
            println!("{name}: connected to {url}");
            Ok::<_, Failure>(
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
    let started = match a
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await
    {
        Ok(started) => started,
        // Limits live in Redis, shared by every instance and by every run of this example.
        Err(StartError::Limited {
            limit: LimitKind::ResendCooldown,
            retry_after,
        }) => {
            return Err(format!(
                "a code went to this number less than 30 s ago (an earlier run: limits live \
                 in Redis, shared by every instance); run again in {} s",
                retry_after.as_secs() + 1
            )
            .into());
        }
        Err(error) => return Err(error.into()),
    };
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
