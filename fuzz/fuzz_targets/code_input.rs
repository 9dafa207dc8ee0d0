//! Whatever a user types as a code: verify never panics, never verifies a wrong code, and
//! counts exactly one attempt for anything that is not the code.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use phone_otp::{
    HmacKey, KeyRing, Limits, ManualClock, OtpService, PhoneNumber, Purpose, StartRequest,
    StubProvider, VerifyOutcome,
};
use secrecy::{ExposeSecret, SecretSlice};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    otp: OtpService,
    stub: StubProvider,
    clock: ManualClock,
    to: PhoneNumber,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let stub = StubProvider::new();
        let clock = ManualClock::new();
        let otp = OtpService::builder()
            .clock(clock.clone())
            .key_ring(KeyRing::new(
                HmacKey::new(1, &SecretSlice::from(vec![9u8; 32])).expect("key"),
            ))
            .provider(stub.clone())
            .limits(Limits::danger_none())
            .build()
            .expect("service");
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            otp,
            stub,
            clock,
            to: PhoneNumber::parse("+819012345678").expect("number"),
        }
    })
}

fuzz_target!(|typed: &str| {
    let f = fixture();
    // A day later each time: the last challenge and the number's failure count are gone,
    // so the store stays small and the account never locks.
    f.clock.advance(std::time::Duration::from_secs(25 * 3600));
    f.runtime.block_on(async {
        let started = f
            .otp
            .start(StartRequest::sms(f.to.clone(), Purpose::SignIn))
            .await
            .expect("start");
        let code = f.stub.last_code_for(&f.to).expect("sent");
        f.stub.clear();
        let typed_digits: String = typed
            .chars()
            .filter_map(|c| match c {
                '0'..='9' => Some(c),
                '\u{FF10}'..='\u{FF19}' => char::from_u32(u32::from(c) - 0xFF10 + u32::from('0')),
                _ => None,
            })
            .collect();
        let outcome = f
            .otp
            .verify(&started.challenge_id, typed)
            .await
            .expect("verify");
        match outcome {
            VerifyOutcome::Verified { .. } => {
                assert_eq!(typed_digits, code.expose_secret(), "a wrong code verified")
            }
            VerifyOutcome::Mismatch { attempts_left } => assert_eq!(attempts_left, 4),
            other => panic!("unexpected {other:?}"),
        }
    });
});
