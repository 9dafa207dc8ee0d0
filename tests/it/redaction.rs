//! Codes, keys and whole numbers never reach `Debug` output or `tracing` events.

use phone_otp::{KeyRing, MemoryStore, Message, Purpose, StartRequest};

use crate::support::{Harness, TestResult, jp_mobile, key, record};

const FULL_NUMBER: &str = "819012345678";

pub fn assert_clean(text: &str, code: &str) {
    assert!(!text.contains(code), "code {code} leaked: {text}");
    assert!(!text.contains(FULL_NUMBER), "full number leaked: {text}");
    assert!(!text.contains("12345678"), "number digits leaked: {text}");
    assert!(!text.contains("7, 7, 7"), "key bytes leaked: {text}");
}

#[tokio::test]
async fn debug_output_holds_no_code_key_or_whole_number() -> TestResult {
    let h = Harness::new();
    let started = h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn).subject("u1"))
        .await?;
    let message = h.stub.last_message_to(&jp_mobile()).unwrap();
    let code = {
        use secrecy::ExposeSecret;
        message.code().unwrap().expose_secret().to_owned()
    };
    let record = record(started.challenge_id, 0xAB, started.expires_at);
    let sms_with_code = Message::sms(jp_mobile(), format!("code {code}")).with_code(code.clone());
    let outputs = [
        format!("{:?}", h.otp),
        format!("{:?}", key(1, 7)),
        format!("{:?}", KeyRing::new(key(1, 7))),
        format!("{message:?}"),
        format!("{sms_with_code:?}"),
        format!("{record:?}"),
        format!("{started:?}"),
        format!("{:?}", StartRequest::sms(jp_mobile(), Purpose::SignIn)),
        format!("{:?}", h.stub),
        format!("{:?}", MemoryStore::new()),
    ];
    for output in &outputs {
        assert_clean(output, &code);
    }
    assert!(!outputs[5].contains("171, 171") && !outputs[5].to_lowercase().contains("abab"));
    Ok(())
}
