//! A provider that delivers nothing and remembers everything: for tests (yours too),
//! examples and offline development.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use secrecy::SecretString;

use super::Receipt;
use super::{PhoneProvider, ProviderError, ProviderErrorKind};
use crate::message::{Channel, Message};
use crate::phone::PhoneNumber;

#[derive(Debug, Default)]
struct Script {
    next_failures: VecDeque<ProviderErrorKind>,
    fail_always: Option<ProviderErrorKind>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    channels: Vec<Channel>,
    delivered: Mutex<Vec<Message>>,
    script: Mutex<Script>,
    attempts: AtomicU64,
}

/// Records every message instead of sending it, and fails when told to.
///
/// Clones share their records, so keep one clone in the test and give another to the
/// service.
///
/// ```
/// use phone_otp::{Message, PhoneNumber, PhoneProvider, ProviderErrorKind, StubProvider};
///
/// # tokio_test_block_on(async {
/// let stub = StubProvider::new();
/// let to = PhoneNumber::parse("+819012345678").unwrap();
/// stub.fail_next(ProviderErrorKind::Unavailable);
/// assert!(stub.send(&Message::sms(to.clone(), "hi")).await.is_err());
/// assert!(stub.send(&Message::sms(to, "hi")).await.is_ok());
/// assert_eq!((stub.attempts(), stub.delivered().len()), (2, 1));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StubProvider {
    inner: Arc<Inner>,
}

impl Default for StubProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl StubProvider {
    /// A stub named `"stub"` supporting SMS and voice.
    pub fn new() -> Self {
        Self::named("stub")
    }

    /// A stub with another name (to tell several apart behind a router).
    pub fn named(name: impl Into<String>) -> Self {
        Self::with_channels(name, &[Channel::Sms, Channel::Voice])
    }

    /// A stub that supports only `channels`.
    pub fn with_channels(name: impl Into<String>, channels: &[Channel]) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                channels: channels.to_vec(),
                delivered: Mutex::new(Vec::new()),
                script: Mutex::new(Script::default()),
                attempts: AtomicU64::new(0),
            }),
        }
    }

    /// The next send fails with `kind` (queued: call twice to fail twice).
    pub fn fail_next(&self, kind: ProviderErrorKind) {
        lock(&self.inner.script).next_failures.push_back(kind);
    }

    /// Every send fails with `kind` until [`StubProvider::recover`].
    pub fn fail_always(&self, kind: ProviderErrorKind) {
        lock(&self.inner.script).fail_always = Some(kind);
    }

    /// Stops failing.
    pub fn recover(&self) {
        let mut script = lock(&self.inner.script);
        script.fail_always = None;
        script.next_failures.clear();
    }

    /// Every message delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<Message> {
        lock(&self.inner.delivered).clone()
    }

    /// The last message delivered to `to`.
    pub fn last_message_to(&self, to: &PhoneNumber) -> Option<Message> {
        lock(&self.inner.delivered)
            .iter()
            .rev()
            .find(|message| message.to() == to)
            .cloned()
    }

    /// The code in the last message delivered to `to` (messages from `OtpService` carry
    /// it), so tests can complete a verification.
    pub fn last_code_for(&self, to: &PhoneNumber) -> Option<SecretString> {
        lock(&self.inner.delivered)
            .iter()
            .rev()
            .find(|message| message.to() == to)
            .and_then(|message| message.code().cloned())
    }

    /// Sends attempted, delivered or failed.
    pub fn attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::SeqCst)
    }

    /// Forgets delivered messages (long-running benchmarks).
    pub fn clear(&self) {
        *lock(&self.inner.delivered) = Vec::new();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl PhoneProvider for StubProvider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn supports(&self, channel: Channel) -> bool {
        self.inner.channels.contains(&channel)
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let attempt = self.inner.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.supports(message.channel()) {
            return Err(ProviderError::new(
                ProviderErrorKind::ChannelUnsupported,
                &self.inner.name,
            ));
        }
        let failure = {
            let mut script = lock(&self.inner.script);
            script.next_failures.pop_front().or(script.fail_always)
        };
        if let Some(kind) = failure {
            return Err(ProviderError::new(kind, &self.inner.name));
        }
        lock(&self.inner.delivered).push(message.clone());
        Ok(Receipt::new(
            self.inner.name.clone(),
            format!("{}-{attempt}", self.inner.name),
            message.channel(),
        ))
    }
}
