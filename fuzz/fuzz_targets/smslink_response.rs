//! SMSLINK response bodies, success and error (see `adapter_body`).
#![no_main]

mod adapter_body;

use libfuzzer_sys::fuzz_target;
use phone_otp::provider::smslink;

fuzz_target!(|data: &[u8]| {
    adapter_body::check(data, smslink::parse_delivery, smslink::classify_error);
});
