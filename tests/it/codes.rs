use std::time::Duration;

use phone_otp::{BuildError, KeyRing, OtpService, StubProvider};

use crate::support::{Harness, TestResult, jp_mobile, key};

#[tokio::test]
async fn generated_digits_are_uniform() -> TestResult {
    // 100,000 codes of 6 digits through the public API, chi-square over the 10 digit values
    // (9 degrees of freedom), overall and per position: 7 statistics. 49.35 is the critical
    // value for p = 1e-6 / 7, so a fair generator fails a run about once in a million (at
    // p = 1e-4 each, a fair run did fail once). `byte % 10` without rejection (a 4% bias)
    // scores about 200 overall, and a stuck position scores in the hundred thousands.
    const CRITICAL: f64 = 49.35;
    let h = Harness::unlimited();
    let to = jp_mobile();
    let mut counts = [0u64; 10];
    let mut per_position = [[0u64; 10]; 6];
    for i in 0..100_000 {
        let (_, code) = h.start(&to).await;
        assert_eq!(code.len(), 6);
        for (position, byte) in code.bytes().enumerate() {
            let digit = usize::from(byte - b'0');
            counts[digit] += 1;
            per_position[position][digit] += 1;
        }
        if i % 1000 == 0 {
            h.stub.clear();
        }
    }
    let chi_square = |counts: &[u64; 10]| {
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 10.0;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum::<f64>()
    };
    let overall = chi_square(&counts);
    assert!(
        overall < CRITICAL,
        "digits not uniform: chi-square {overall:.1}, counts {counts:?}"
    );
    for (position, counts) in per_position.iter().enumerate() {
        let score = chi_square(counts);
        assert!(
            score < CRITICAL,
            "position {position} not uniform: chi-square {score:.1}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn code_length_is_configurable_from_6_to_10() -> TestResult {
    for length in [6usize, 8, 10] {
        let h = Harness::with(|b| b.code_length(length));
        let (id, code) = h.start(&jp_mobile()).await;
        assert_eq!(code.len(), length);
        assert!(h.otp.verify(&id, &code).await?.is_verified());
    }
    let h = Harness::with(|b| b.danger_code_length(4));
    let (_, code) = h.start(&jp_mobile()).await;
    assert_eq!(code.len(), 4);
    Ok(())
}

#[test]
fn unsafe_settings_need_the_danger_setters() {
    let build = |configure: fn(phone_otp::OtpServiceBuilder) -> phone_otp::OtpServiceBuilder| {
        configure(
            OtpService::builder()
                .key_ring(KeyRing::new(key(1, 1)))
                .provider(StubProvider::new()),
        )
        .build()
        .map(|_| ())
    };
    assert_eq!(
        build(|b| b.code_length(5)),
        Err(BuildError::CodeLength {
            length: 5,
            min: 6,
            max: 10
        })
    );
    assert_eq!(
        build(|b| b.code_length(11)),
        Err(BuildError::CodeLength {
            length: 11,
            min: 6,
            max: 10
        })
    );
    assert_eq!(
        build(|b| b.danger_code_length(3)),
        Err(BuildError::CodeLength {
            length: 3,
            min: 4,
            max: 10
        })
    );
    assert_eq!(
        build(|b| b.lifetime(Duration::from_secs(601))),
        Err(BuildError::Lifetime {
            lifetime: Duration::from_secs(601),
            max: Duration::from_secs(600)
        })
    );
    assert_eq!(
        build(|b| b.danger_lifetime(Duration::from_secs(1800))),
        Ok(())
    );
    assert_eq!(
        build(|b| b.lifetime(Duration::ZERO))
            .unwrap_err()
            .to_string(),
        "code lifetime 0ns is outside 1s..=600s"
    );
    assert_eq!(
        OtpService::builder()
            .provider(StubProvider::new())
            .build()
            .map(|_| ()),
        Err(BuildError::MissingKeyRing)
    );
    assert_eq!(
        OtpService::builder()
            .key_ring(KeyRing::new(key(1, 1)))
            .build()
            .map(|_| ()),
        Err(BuildError::MissingProvider)
    );
}

#[tokio::test]
async fn lifetime_setting_controls_expiry() -> TestResult {
    let h = Harness::with(|b| b.lifetime(Duration::from_secs(120)));
    let (id, code) = h.start(&jp_mobile()).await;
    h.clock.advance(Duration::from_secs(120));
    assert_eq!(
        h.otp.verify(&id, &code).await?,
        phone_otp::VerifyOutcome::Expired
    );
    Ok(())
}

#[test]
fn challenge_ids_round_trip_through_text() {
    use phone_otp::ChallengeId;
    let id = ChallengeId::from_bytes([9u8; 33]);
    let text = id.to_string();
    assert_eq!(text.len(), 44);
    assert_eq!(text.parse::<ChallengeId>(), Ok(id));
    assert!("not-an-id".parse::<ChallengeId>().is_err());
    assert!("!".repeat(44).parse::<ChallengeId>().is_err());
}
