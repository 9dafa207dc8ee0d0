//! The whole flow offline: start a challenge, read the SMS the stub "delivered", verify a
//! wrong code and then the right one, and hit a rate limit.
//!
//! ```text
//! cargo run --example quickstart                   # automatic
//! cargo run --example quickstart -- --interactive  # type the code yourself
//! cargo run --example quickstart -- --provider twilio --to +81901234567X
//! ```
//!
//! With `--provider twilio|ntt-cpaas|smslink` and that provider's environment variables set
//! (`TWILIO_*`, `NTT_CPAAS_*`, `SMSLINK_API_TOKEN`; see each config's `from_env`), a real
//! SMS goes to `--to` and you type the code you received. Without the variables it says
//! which one is missing and stays offline.

use std::io::{BufRead, Write};
use std::sync::Arc;

use phone_otp::{
    HmacKey, KeyRing, NttCpaasProvider, OtpService, PhoneNumber, PhoneProvider, Purpose,
    SmslinkProvider, StartError, StartRequest, StubProvider, Templates, TwilioProvider,
    VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let interactive = args.iter().any(|arg| arg == "--interactive");
    let value_of = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
    if let Some(name) = value_of("--provider") {
        match real_provider(&name) {
            Ok(provider) => return send_for_real(provider, value_of("--to")).await,
            Err(why) => println!("--provider {name}: {why}; staying offline with the stub.\n"),
        }
    }

    // A real deployment loads this key from a secret manager; every instance needs the same.
    let key = HmacKey::new(
        1,
        &SecretSlice::from(b"quickstart-demo-key-32-bytes-long!".to_vec()),
    )?;
    let inbox = StubProvider::new();
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(inbox.clone())
        .templates(Templates::new("Acme").with_web_otp_origin("acme.example")?)
        .build()?;

    let to = PhoneNumber::parse_with_region("090-1234-5678", "JP")?;
    println!(
        "1. Parsed 090-1234-5678 (JP) as {to} ({} number, region {})",
        to.number_type(),
        to.region().map_or("none".into(), |r| r.to_string())
    );

    let started = otp
        .start(StartRequest::sms(to.clone(), Purpose::SignIn).subject("user-42"))
        .await?;
    println!("2. Started challenge {}", started.challenge_id);
    println!(
        "   sent by {} to {} (message {})",
        started.provider, started.masked_destination, started.message_id
    );

    let sms = inbox
        .last_message_to(&to)
        .ok_or("the stub recorded no SMS")?;
    println!("3. The SMS the stub delivered:");
    for line in sms.text().expose_secret().lines() {
        println!("   | {line}");
    }
    let code = inbox.last_code_for(&to).ok_or("the SMS carried no code")?;

    let wrong = if code.expose_secret() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let outcome = otp.verify(&started.challenge_id, wrong).await?;
    println!("4. verify({wrong}) -> {outcome:?}");

    let typed = if interactive {
        print!("   Type the code from the SMS above: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim().to_owned()
    } else {
        code.expose_secret().to_owned()
    };
    let outcome = otp.verify(&started.challenge_id, &typed).await?;
    println!("5. verify(<the code>) -> {outcome:?}");
    let again = otp.verify(&started.challenge_id, &typed).await?;
    println!("6. verify(<the code>) again -> {again:?}");

    match otp
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await
    {
        Err(error @ StartError::Limited { .. }) => {
            println!("7. A second send right away -> refused: {error}")
        }
        other => println!("7. A second send right away -> unexpected: {other:?}"),
    }

    if !matches!(outcome, VerifyOutcome::Verified { .. }) {
        println!("The code did not verify.");
        std::process::exit(1);
    }
    Ok(())
}

fn real_provider(name: &str) -> Result<Arc<dyn PhoneProvider>, String> {
    let provider: Arc<dyn PhoneProvider> = match name {
        "twilio" => Arc::new(TwilioProvider::from_env().map_err(|e| e.to_string())?),
        "ntt-cpaas" => Arc::new(NttCpaasProvider::from_env().map_err(|e| e.to_string())?),
        "smslink" => Arc::new(SmslinkProvider::from_env().map_err(|e| e.to_string())?),
        other => {
            return Err(format!(
                "unknown provider {other:?} (twilio, ntt-cpaas, smslink)"
            ));
        }
    };
    Ok(provider)
}

/// Sends a real SMS and verifies the code typed in.
async fn send_for_real(
    provider: Arc<dyn PhoneProvider>,
    to: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let to = PhoneNumber::parse(&to.ok_or("--to +<number> is required with --provider")?)?;
    let key = HmacKey::generate(1)?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(provider)
        .build()?;
    let started = otp.start(StartRequest::sms(to, Purpose::SignIn)).await?;
    println!(
        "Sent by {} to {} (message {}).",
        started.provider, started.masked_destination, started.message_id
    );
    print!("Type the code you received: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    println!(
        "verify -> {:?}",
        otp.verify(&started.challenge_id, line.trim()).await?
    );
    Ok(())
}
