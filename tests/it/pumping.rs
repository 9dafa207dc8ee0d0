//! The SMS-pumping simulation (`pumping_sim.rs`) as a test: the guard's targets on a
//! simulated day, and that without the guard the same attack goes through.

use phone_otp::ConversionGuard;

use crate::pumping_sim::{Bot, Scenario, run};
use crate::support::TestResult;

fn day(guard: Option<ConversionGuard>, bot: Bot) -> Scenario {
    Scenario {
        users: 10_000,
        guard,
        bot,
        seed: 20_261_128,
    }
}

#[tokio::test]
async fn the_guard_stops_a_pumping_bot_and_real_users_still_get_their_codes() -> TestResult {
    let guarded = run(&day(Some(ConversionGuard::default()), Bot::single_prefix())).await;
    assert_eq!(guarded.attack_tries, 8_640);
    assert!(
        guarded.blocked_after_100() >= 0.99,
        "blocked after the first 100: {:.3} ({guarded:?})",
        guarded.blocked_after_100()
    );
    assert!(guarded.served_share() >= 0.998, "{guarded:?}");
    assert_eq!(guarded.real_guard_refusals, 0, "{guarded:?}");
    let (nth, _) = guarded.first_block.expect("the guard reacted");
    assert!(nth <= 25, "first refusal at send {nth}");

    // 50 prefixes of one range, none reaching its prefix allowance quickly: the range's
    // probation catches them.
    let spread = run(&day(Some(ConversionGuard::default()), Bot::spread())).await;
    assert!(
        spread.blocked_after_100() >= 0.99,
        "blocked after the first 100: {:.3} ({spread:?})",
        spread.blocked_after_100()
    );
    assert_eq!(spread.real_guard_refusals, 0, "{spread:?}");

    let open = run(&day(None, Bot::single_prefix())).await;
    assert_eq!(open.attack_delivered, open.attack_tries, "{open:?}");
    assert!(open.served_share() >= 0.995, "{open:?}");
    Ok(())
}
