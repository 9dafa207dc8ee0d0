//! NTT CPaaS response bodies, success and both error envelopes (see `adapter_body`).
#![no_main]

mod adapter_body;

use libfuzzer_sys::fuzz_target;
use phone_otp::Channel;
use phone_otp::provider::ntt_cpaas;

fuzz_target!(|data: &[u8]| {
    adapter_body::check(
        data,
        |body| ntt_cpaas::parse_sent(body, Channel::Sms),
        ntt_cpaas::classify_error,
    );
});
