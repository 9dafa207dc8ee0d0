//! The SMS-pumping simulation, printed as a table: a simulated day of 10,000 real users
//! (Japan, the US, Great Britain; 85% verify after 5-60 s, some resend) and a bot, with
//! and without the conversion guard, for a bot on one prefix and one spread over 50. Also
//! times a simulated day (how much the guard costs the service).
//!
//! `cargo bench --bench pumping`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/pumping_sim.rs"]
mod pumping_sim;

use std::time::Instant;

use phone_otp::ConversionGuard;
use pumping_sim::{Bot, Report, Scenario, run};

fn row(name: &str, report: &Report, seconds: f64) {
    let first = report.first_block.map_or_else(
        || "never".to_owned(),
        |(nth, at)| format!("send {nth}, {} s", at.as_secs()),
    );
    println!(
        "| {name} | {} / {} | {:.1}% | {:.1}% | ${:.2} | {} | {:.2}% | {} | {seconds:.2} s |",
        report.attack_delivered,
        report.attack_tries,
        100.0 * (1.0 - report.attack_delivered as f64 / report.attack_tries.max(1) as f64),
        100.0 * report.blocked_after_100(),
        report.attack_cost_dollars(),
        first,
        100.0 * report.served_share(),
        report.real_refusals,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| scenario | attack delivered | blocked | blocked after the first 100 | attack cost | first refusal | users served | real users' refused sends | time for the day |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let scenarios = [
        ("one prefix, no guard", None, Bot::single_prefix()),
        (
            "one prefix, guard",
            Some(ConversionGuard::default()),
            Bot::single_prefix(),
        ),
        ("50 prefixes, no guard", None, Bot::spread()),
        (
            "50 prefixes, guard",
            Some(ConversionGuard::default()),
            Bot::spread(),
        ),
    ];
    for (name, guard, bot) in scenarios {
        let scenario = Scenario {
            users: 10_000,
            guard,
            bot,
            seed: 20_261_128,
        };
        let started = Instant::now();
        let report = runtime.block_on(run(&scenario));
        row(name, &report, started.elapsed().as_secs_f64());
    }
}
