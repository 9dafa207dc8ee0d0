//! TOTP verify through `TotpService` on `MemoryStore` (the attempt limit, account lookup,
//! the sealed secret opened, the window of codes computed and compared in constant time,
//! the failure counted) against totp-lite's bare computation of the same window (three
//! SHA-1 codes), in one run. Verifies run in a loop inside one task, as in a server and
//! as the SMS verify bench runs them; a second figure enters the runtime for each. The
//! code is wrong, so every iteration takes the whole path; the manual clock moves 1 ms per
//! iteration so the attempt limit (one a millisecond here) never refuses.
//!
//! `cargo bench --bench totp --features totp`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use phone_otp::totp::{TotpKeys, TotpOutcome, TotpSettings};
use phone_otp::{Clock, HmacKey, KeyRing, Limits, ManualClock, OtpService, Quota, StubProvider};
use secrecy::{ExposeSecret, SecretSlice};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(
            HmacKey::new(1, &SecretSlice::from(vec![3u8; 32])).unwrap(),
        ))
        .provider(StubProvider::new())
        .clock(clock.clone())
        .limits(Limits::danger_none())
        .build()
        .unwrap();
    let keys = TotpKeys::new(1, &SecretSlice::from(vec![4u8; 32])).unwrap();
    let settings = TotpSettings::new("Bench");
    let totp = otp
        .totp(settings.clone(), keys)
        .unwrap()
        .attempts(Quota::per_period(
            NonZeroU32::new(1000).unwrap(),
            Duration::from_secs(1),
        ));
    let enrollment = runtime
        .block_on(totp.enroll(None, "bench-user", "bench"))
        .unwrap();
    let secret = phone_otp::totp::base32_decode(enrollment.secret_base32.expose_secret()).unwrap();
    let now = clock.now().as_millis() / 1000;
    let code = settings.code_at(&secret, now);
    assert_eq!(
        runtime
            .block_on(totp.confirm(None, "bench-user", &code))
            .unwrap(),
        TotpOutcome::Verified
    );
    assert_eq!(
        runtime
            .block_on(totp.verify(None, "bench-user", &code))
            .unwrap(),
        TotpOutcome::AlreadyUsed
    );

    let mut group = c.benchmark_group("totp");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("bare totp-lite window (3 SHA-1 codes)", |b| {
        b.iter(|| {
            let step = now / 30;
            let mut found = false;
            for s in step - 1..=step + 1 {
                let candidate = totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &secret, s * 30);
                found |= candidate == code;
            }
            std::hint::black_box(found)
        });
    });
    let wrong = if code == "000000" { "111111" } else { "000000" };
    group.bench_function("TotpSettings::matching_step (the window alone)", |b| {
        b.iter(|| std::hint::black_box(settings.matching_step(&secret, wrong, now)));
    });
    // Every iteration takes the whole path: a wrong code, the clock 1 ms on so the attempt
    // limit (1,000 a second) never refuses.
    for _ in 0..200 {
        clock.advance(Duration::from_millis(1));
        let outcome = runtime
            .block_on(totp.verify(None, "bench-user", wrong))
            .unwrap();
        assert!(
            matches!(outcome, TotpOutcome::Mismatch | TotpOutcome::AccountLocked),
            "{outcome:?}"
        );
    }
    // As the SMS verify bench does: the iterations run in one task of the runtime, as a
    // server's requests do, so the runtime's entry and exit are not counted per verify.
    group.bench_function("TotpService::verify (memory store)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    clock.advance(Duration::from_millis(1));
                    std::hint::black_box(totp.verify(None, "bench-user", wrong).await.unwrap());
                }
                started.elapsed()
            })
        });
    });
    // The same with one `block_on` per verify (what this bench measured before), to show
    // what entering the runtime costs.
    group.bench_function("TotpService::verify (memory store, block_on each)", |b| {
        b.iter(|| {
            clock.advance(Duration::from_millis(1));
            std::hint::black_box(
                runtime
                    .block_on(totp.verify(None, "bench-user", wrong))
                    .unwrap(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
