//! Challenge id text: parsing never panics, and an accepted id prints back as the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_otp::ChallengeId;

fuzz_target!(|input: &str| {
    if let Ok(id) = input.parse::<ChallengeId>() {
        assert_eq!(id.to_string(), input);
        assert_eq!(
            ChallengeId::from_bytes(id.as_bytes().try_into().expect("33 bytes")),
            id
        );
    }
});
