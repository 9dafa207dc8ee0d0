//! `tracing` events mask numbers and never carry codes.
//!
//! A binary of its own: `tracing` caches per-callsite interest process-wide, so a capturing
//! subscriber in the shared `it` binary races the other tests that hit the same callsites
//! first with no subscriber at all.

// Tests state their expectations with unwrap/expect/panic; the library itself may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use phone_otp::{Purpose, StartRequest, VerifyOutcome};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

use support::{Harness, TestResult, jp_mobile, wrong};

fn assert_clean(text: &str, code: &str) {
    assert!(!text.contains(code), "code {code} leaked: {text}");
    assert!(!text.contains("819012345678"), "full number leaked: {text}");
    assert!(!text.contains("12345678"), "number digits leaked: {text}");
}

/// A minimal subscriber that formats every event's fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn tracing_events_mask_numbers_and_never_carry_codes() -> TestResult {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let h = Harness::new();
    let (id, code) = h.start(&jp_mobile()).await;
    assert!(matches!(
        h.otp.verify(&id, &wrong(&code)).await?,
        VerifyOutcome::Mismatch { .. }
    ));
    assert!(h.otp.verify(&id, &code).await?.is_verified());
    let _ = h
        .otp
        .start(StartRequest::sms(jp_mobile(), Purpose::SignIn))
        .await; // rate-limited
    h.stub.fail_next(phone_otp::ProviderErrorKind::Auth);
    let _ = h
        .otp
        .start(StartRequest::sms(support::jp_mobile_n(5), Purpose::SignIn))
        .await;

    let events = capture.0.lock().unwrap().clone();
    assert!(
        events.len() >= 5,
        "expected sent, checked x2, limited and failed events: {events:?}"
    );
    assert!(
        events.iter().any(|e| e.contains("+8190****5678")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.contains("one-time code sent")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.contains("rate limit")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.contains("delivery failed")),
        "{events:?}"
    );
    let id_text = id.to_string();
    for event in &events {
        assert_clean(event, &code);
        // Whoever holds an id can spend its attempts: logs name challenges by reference.
        assert!(!event.contains(&id_text), "challenge id leaked: {event}");
        assert!(!event.contains("00000005"), "second number leaked: {event}");
    }
    Ok(())
}
