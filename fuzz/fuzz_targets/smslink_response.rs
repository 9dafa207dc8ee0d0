//! SMSLINK response bodies, success and error: never a panic, never a digit in a kept body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_otp::provider::smslink;

fuzz_target!(|data: &[u8]| {
    // Two bytes of HTTP status, then the body (as a client would read it, lossily).
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    let body = &String::from_utf8_lossy(body);
    if let Err(error) = smslink::parse_delivery(body) {
        assert!(error.body().is_none(), "a success body was kept");
    }
    let error = smslink::classify_error(status, &reqwest::header::HeaderMap::new(), body);
    if let Some(kept) = error.body() {
        assert!(!kept.chars().any(char::is_numeric), "digits survived: {kept}");
    }
    let _ = format!("{error} {error:?}");
});
