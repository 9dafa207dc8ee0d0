//! Phone number parsing: never panics; an accepted number is valid, normalises to itself,
//! and never prints whole; a refusal never repeats the input; the region, validity and
//! type this crate finds agree with `phonenumber`'s own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_otp::PhoneNumber;

fuzz_target!(|input: &str| {
    // Region, validity and type as this crate finds them agree with `phonenumber`'s own.
    phone_otp::fuzz_classification_agrees(input, "JP");
    phone_otp::fuzz_classification_agrees(input, "US");
    for parsed in [
        PhoneNumber::parse(input),
        PhoneNumber::parse_with_region(input, "JP"),
        PhoneNumber::parse_with_region(input, "US"),
    ] {
        match parsed {
            Ok(number) => {
                let again =
                    PhoneNumber::parse(number.e164()).expect("E.164 of a valid number parses");
                assert_eq!(again, number, "normalisation is idempotent");
                let digits = number.e164_digits();
                assert!(!number.to_string().contains(digits));
                assert!(!format!("{number:?}").contains(digits));
            }
            Err(error) => {
                let shown = format!("{error} {error:?}");
                let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 6 {
                    assert!(
                        !shown.contains(&digits),
                        "the error repeats the input: {shown}"
                    );
                }
            }
        }
    }
});
