//! The SMS-pumping simulation (`pumping_sim.rs`) as tests: each attack on a simulated day
//! beside 20,000 real users, with the recommended guard. The targets: at least 99% of a
//! concentrated attack's sends blocked after its first 100, 90% of a slow spread's, 80%
//! of a bot's that verifies a fifth of its codes; real users served at least 99.8%, and no
//! user of a corporate block or a new market refused by the guard.

use crate::pumping_sim::{Attack, Report, Scenario, run};

/// What must hold for real users on every guarded day.
fn real_users_get_their_codes(report: &Report) {
    assert!(
        report.served_share() >= 0.998,
        "served {:.4} ({report:?})",
        report.served_share()
    );
    for group in ["corporate", "new market", "never verify", "night"] {
        let users = report.group(group);
        assert!(users.users > 0, "no {group} users simulated");
        if group == "corporate" || group == "new market" {
            assert_eq!(users.guard_refused, 0, "{group}: {users:?}");
            assert_eq!(users.served, users.users, "{group}: {users:?}");
        }
    }
}

async fn blocked_after_100(attack: Attack, target: f64) -> Report {
    let report = run(&Scenario::standard(attack, true)).await;
    assert!(
        report.blocked_after_100() >= target,
        "blocked after the first 100: {:.4} ({report:?})",
        report.blocked_after_100()
    );
    real_users_get_their_codes(&report);
    report
}

#[tokio::test]
async fn real_users_alone_are_never_refused_by_the_guard() {
    let report = run(&Scenario::standard(Attack::none(), true)).await;
    real_users_get_their_codes(&report);
    assert_eq!(report.real_guard_refusals, 0, "{report:?}");
    assert_eq!(report.users, 20_800);
}

#[tokio::test]
async fn one_prefix() {
    let report = blocked_after_100(Attack::one_prefix(), 0.99).await;
    assert_eq!(report.attack_tries, 8_640);
    let (nth, _) = report.first_block.expect("the guard reacted");
    assert!(nth <= 21, "first refusal at send {nth}");
}

#[tokio::test]
async fn fifty_prefixes_of_one_range() {
    blocked_after_100(Attack::fifty_prefixes(), 0.99).await;
}

#[tokio::test]
async fn an_empty_country_with_random_numbers() {
    let report = blocked_after_100(Attack::empty_country(), 0.99).await;
    // Its probation: five a day, and nothing more without a verified code.
    assert!(report.attack_delivered <= 6, "{report:?}");
}

#[tokio::test]
async fn an_empty_country_primed_then_burst() {
    let report = blocked_after_100(Attack::priming_then_burst(), 0.99).await;
    assert_eq!(report.attack_tries, 3_120);
}

#[tokio::test]
async fn a_ramp_on_one_prefix() {
    let report = blocked_after_100(Attack::ramp(), 0.99).await;
    assert_eq!(report.attack_tries, 5_115);
}

#[tokio::test]
async fn a_slow_spread_over_ten_countries() {
    let report = blocked_after_100(Attack::slow_spread(), 0.90).await;
    // Caught within hours, not at the end of the day.
    let (_, at) = report.first_block.expect("the guard reacted");
    assert!(at.as_secs() <= 4 * 3600, "first refusal after {at:?}");
}

#[tokio::test]
async fn a_bot_verifying_a_fifth_of_its_codes() {
    let report = blocked_after_100(Attack::verifies_a_fifth(), 0.80).await;
    // Its verified codes do not drag India's conversion far (real users alone: ~80%).
    assert!(report.country("IN").rate() >= 0.7, "{report:?}");
}

#[tokio::test]
async fn without_the_guard_the_attacks_go_through() {
    let report = run(&Scenario::standard(Attack::empty_country(), false)).await;
    assert_eq!(report.attack_delivered, report.attack_tries, "{report:?}");
    assert!(report.served_share() >= 0.998, "{report:?}");
}
