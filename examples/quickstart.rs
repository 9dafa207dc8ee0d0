//! The whole flow offline: start a challenge, read the SMS the stub "delivered", verify a
//! wrong code and then the right one, and hit a rate limit.
//!
//! ```text
//! cargo run --example quickstart                   # automatic
//! cargo run --example quickstart -- --interactive  # type the code yourself
//! cargo run --example quickstart -- --provider twilio --to +819012345678
//! ```
//!
//! With `--provider twilio|ntt-cpaas|smslink` and that provider's environment variables set
//! (`TWILIO_*`, `NTT_CPAAS_*`, `SMSLINK_API_TOKEN`; see each config's `from_env`), a real
//! SMS goes to `--to` and you type the code you received. A variable missing is an error
//! naming every missing one, never a silent fallback to the stub.

use std::error::Error;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use phone_otp::{
    HmacKey, KeyRing, NttCpaasProvider, OtpService, PhoneNumber, PhoneProvider, Purpose,
    SmslinkProvider, StartError, StartRequest, StubProvider, Templates, TwilioProvider,
    VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};

/// Start and verify a one-time passcode, offline or through a real provider.
#[derive(Parser)]
struct Args {
    /// Type the code yourself instead of reading it from the stub's inbox.
    #[arg(long)]
    interactive: bool,
    /// Send a real SMS through this provider (its environment variables must be set).
    #[arg(long, value_enum, requires = "to")]
    provider: Option<Provider>,
    /// The number a real SMS goes to, in international form (+81...).
    #[arg(long, requires = "provider")]
    to: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Provider {
    Twilio,
    NttCpaas,
    Smslink,
}

type Failure = Box<dyn Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (args.provider, args.to) {
        (Some(provider), Some(to)) => send_for_real(provider, &to).await,
        _ => offline(args.interactive).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(error.as_ref());
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as its message and the chain of causes (never `Debug`).
fn report(error: &dyn Error) {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
}

async fn offline(interactive: bool) -> Result<(), Failure> {
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
    println!("4. verify(\"{wrong}\") -> {outcome:?}");

    let (typed, label) = if interactive {
        print!("   Type the code from the SMS above: ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let typed = line.trim().to_owned();
        let label = format!("what you typed, \"{}\"", masked(&typed));
        (typed, label)
    } else {
        let label = format!(
            "the code from the SMS, \"{}\"",
            masked(code.expose_secret())
        );
        (code.expose_secret().to_owned(), label)
    };
    let outcome = otp.verify(&started.challenge_id, &typed).await?;
    println!("5. verify({label}) -> {outcome:?}");
    let again = otp.verify(&started.challenge_id, &typed).await?;
    println!("6. The same again -> {again:?}");

    match otp
        .start(StartRequest::sms(to.clone(), Purpose::SignIn))
        .await
    {
        Err(error @ StartError::Limited { .. }) => {
            println!("7. A second send right away -> refused: {error}");
        }
        Ok(_) => return Err("7. a second send right away was not limited".into()),
        Err(other) => return Err(other.into()),
    }

    if !matches!(outcome, VerifyOutcome::Verified { .. }) {
        return Err(format!("the code did not verify: {}", outcome.as_str()).into());
    }
    Ok(())
}

/// The first two characters, the rest as `*`: enough to spot a typo, not to replay it.
fn masked(typed: &str) -> String {
    typed
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 { c } else { '*' })
        .collect()
}

fn real_provider(provider: Provider) -> Result<Arc<dyn PhoneProvider>, Failure> {
    Ok(match provider {
        Provider::Twilio => Arc::new(TwilioProvider::from_env()?),
        Provider::NttCpaas => Arc::new(NttCpaasProvider::from_env()?),
        Provider::Smslink => Arc::new(SmslinkProvider::from_env()?),
    })
}

/// Sends a real SMS and verifies the code typed in.
async fn send_for_real(provider: Provider, to: &str) -> Result<(), Failure> {
    let provider = real_provider(provider)?;
    let to = PhoneNumber::parse(to).map_err(|e| format!("--to {to:?}: {e}"))?;
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(HmacKey::generate(1)?))
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
    let outcome = otp.verify(&started.challenge_id, line.trim()).await?;
    println!("verify -> {outcome:?}");
    if matches!(outcome, VerifyOutcome::Verified { .. }) {
        Ok(())
    } else {
        Err(format!("the code did not verify: {}", outcome.as_str()).into())
    }
}
