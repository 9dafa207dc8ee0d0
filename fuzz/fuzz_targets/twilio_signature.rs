//! `X-Twilio-Signature` validation over arbitrary URLs, parameters and signatures: never a
//! panic, and an arbitrary signature essentially never validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phone_otp::provider::twilio;
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    // Lines: the URL, the signature, then `name=value` parameters.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let (url, signature) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let params: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let token = SecretString::from("fuzz-auth-token");
    // A 160-bit HMAC cannot be guessed by a fuzzer: acceptance would mean a broken check.
    assert!(!twilio::validate_signature(&token, url, &params, signature));
});
