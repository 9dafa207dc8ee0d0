//! NTT CPaaS response bodies, success and both error envelopes: never a panic, never a
//! digit in a kept body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_otp::Channel;
use phone_otp::provider::ntt_cpaas;

fuzz_target!(|data: &[u8]| {
    // Two bytes of HTTP status, then the body (as a client would read it, lossily).
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    let body = &String::from_utf8_lossy(body);
    if let Err(error) = ntt_cpaas::parse_sent(body, Channel::Sms) {
        assert!(error.body().is_none(), "a success body was kept");
    }
    let error = ntt_cpaas::classify_error(status, &reqwest::header::HeaderMap::new(), body);
    if let Some(kept) = error.body() {
        assert!(!kept.chars().any(char::is_numeric), "digits survived: {kept}");
    }
    let _ = format!("{error} {error:?}");
});
