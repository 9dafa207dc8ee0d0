//! Twilio response bodies, success and error (see `adapter_body`).
#![no_main]

mod adapter_body;

use libfuzzer_sys::fuzz_target;
use phone_otp::Channel;
use phone_otp::provider::twilio;

fuzz_target!(|data: &[u8]| {
    adapter_body::check(
        data,
        |body| twilio::parse_created(body, Channel::Sms),
        twilio::classify_error,
    );
});
