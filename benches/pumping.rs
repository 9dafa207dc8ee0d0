//! The SMS-pumping simulation, printed as a table: every attack of `pumping_sim.rs` on a
//! simulated day beside 20,000 real users (and a first day of real users alone), with the
//! recommended guard and without it. Also times each simulated day (what the guard costs
//! the service) and prints how far the bot that verifies a fifth of its codes drags its
//! country's conversion.
//!
//! `cargo bench --bench pumping` (`PUMPING_ONLY=spread` runs only the attacks so named)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/pumping_sim.rs"]
mod pumping_sim;

use std::time::Instant;

use pumping_sim::{Attack, Report, Scenario, run};

fn row(name: &str, guarded: bool, report: &Report, seconds: f64) {
    let first = report.first_block.map_or_else(
        || "never".to_owned(),
        |(nth, at)| format!("send {nth}, {} min", at.as_secs() / 60),
    );
    let levels = if report.guard_levels.is_empty() {
        "-".to_owned()
    } else {
        report
            .guard_levels
            .iter()
            .map(|(level, n)| format!("{} {n}", level.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let special = ["corporate", "new market"]
        .iter()
        .map(|g| report.group(g).guard_refused)
        .sum::<u64>();
    println!(
        "| {name} | {} | {} / {} | {:.1}% | {:.1}% | ${:.2} | {first} | {levels} | {:.2}% | {} ({special}) | {seconds:.2} s |",
        if guarded { "guard" } else { "none" },
        report.attack_delivered,
        report.attack_tries,
        100.0 * report.blocked(),
        100.0 * report.blocked_after_100(),
        report.attack_cost_dollars(),
        100.0 * report.served_share(),
        report.real_guard_refusals,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| attack | guard | delivered / sent | blocked | blocked after the first 100 | attack cost | first refusal | refusals by level | real users served | real sends refused by the guard (corporate, new market) | time for two days |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let attacks = [
        ("none (real users alone)", Attack::none()),
        ("one prefix (GB, 8,640)", Attack::one_prefix()),
        (
            "50 prefixes of one range (GB, 2,880)",
            Attack::fifty_prefixes(),
        ),
        (
            "empty country, random numbers (UZ, 5,000)",
            Attack::empty_country(),
        ),
        (
            "empty country, 120 priming then 3,000 on one prefix (KG)",
            Attack::priming_then_burst(),
        ),
        ("ramp on one prefix (BR, 5,115)", Attack::ramp()),
        (
            "slow spread, 200 prefixes in 10 countries (960)",
            Attack::slow_spread(),
        ),
        (
            "verifies a fifth, 10 prefixes (IN, 4,320)",
            Attack::verifies_a_fifth(),
        ),
    ];
    // `PUMPING_ONLY=<text>`: only the attacks whose name contains it (profiling one).
    let only = std::env::var("PUMPING_ONLY").unwrap_or_default();
    let mut india = Vec::new();
    for (name, attack) in attacks.into_iter().filter(|(name, _)| name.contains(&only)) {
        let mut times = [0.0; 2];
        for guarded in [false, true] {
            let scenario = Scenario::standard(attack.clone(), guarded);
            let started = Instant::now();
            let report = runtime.block_on(run(&scenario));
            let seconds = started.elapsed().as_secs_f64();
            times[usize::from(guarded)] = seconds;
            row(name, guarded, &report, seconds);
            if guarded && (attack.verifies > 0.0 || attack.waves.is_empty()) {
                india.push((name, report.country("IN")));
            }
        }
        println!(
            "|  | guard / none | | | | | | | | | {:.2} |",
            times[1] / times[0]
        );
    }
    println!();
    for (name, tally) in india {
        println!(
            "India's conversion on the day, {name}: {:.1}% ({} verified of {} sent)",
            100.0 * tally.rate(),
            tally.verified,
            tally.sends
        );
    }
}
