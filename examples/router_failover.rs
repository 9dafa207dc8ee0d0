//! Country routing and failover, offline: stub providers stand in for NTT CPaaS, SMSLINK
//! and Twilio, and NTT CPaaS is scripted to be down.
//!
//! ```text
//! cargo run --example router_failover
//! ```

use phone_otp::{
    Channel, Message, PhoneNumber, PhoneProvider, ProviderErrorKind, Router, StubProvider,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The message and its causes, never `Debug`.
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let ntt = StubProvider::named("ntt-cpaas");
    let smslink = StubProvider::with_channels("smslink", &[Channel::Sms]);
    let twilio = StubProvider::named("twilio");
    ntt.fail_always(ProviderErrorKind::Unavailable);

    let router = Router::builder()
        .provider(ntt.clone())
        .provider(smslink.clone())
        .provider(twilio.clone())
        .country("JP", Channel::Sms, &["ntt-cpaas", "smslink", "twilio"])
        .country("JP", Channel::Voice, &["ntt-cpaas", "twilio"])
        .default_chain(Channel::Sms, &["twilio"])
        .default_chain(Channel::Voice, &["twilio"])
        .build()?;

    // The code came from elsewhere (e.g. an Okta telephony hook); the router only delivers.
    let sends = [
        ("+81 90-1234-5678", Channel::Sms),
        ("+81 90-1234-5678", Channel::Voice),
        ("+1 415 555 0123", Channel::Sms),
    ];
    for (number, channel) in sends {
        let to = PhoneNumber::parse(number)?;
        let message = match channel {
            Channel::Voice => Message::voice(to.clone(), "Your code is 4, 8, 1, 5, 1, 6."),
            _ => Message::sms(to.clone(), "481516 is your code"),
        };
        match router.send(&message).await {
            Ok(receipt) => println!(
                "{channel:>5} to {to}: delivered by {} ({})",
                receipt.provider, receipt.message_id
            ),
            Err(error) => println!("{channel:>5} to {to}: failed: {error}"),
        }
    }

    println!("\nper provider:");
    let metrics = router.metrics();
    for provider in &metrics.providers {
        println!(
            "  {:<10} attempts {}  ok {}  failures {:?}  breaker {:?}  mean latency {:?}",
            provider.provider,
            provider.attempts,
            provider.successes,
            provider.failures,
            provider.breaker,
            provider.mean_latency
        );
    }
    println!("per country:");
    for country in &metrics.countries {
        println!(
            "  {:<3} sends {}  delivered {}  failed {}",
            country.region, country.sends, country.delivered, country.failed
        );
    }
    Ok(())
}
