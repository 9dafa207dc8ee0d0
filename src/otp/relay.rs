//! Relaying a code generated elsewhere (Okta, Auth0, an internal system): the same
//! policy, limits, templates and routing as [`OtpService::start`], minus code and digest.
//!
//! An identity platform that owns the code only needs it delivered, but the number still
//! deserves the toll-fraud policy and the send limits, or the hook becomes the cheapest way
//! to pump SMS. [`OtpService::relay`] runs policy -> limits -> template -> provider exactly
//! as a start does; nothing is stored except the limit counters (and, with
//! [`RelayRequest::once`], the memory of the request key).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

use super::notice::Notice;
use super::relay_text::RelayTextPolicy;
use super::service::{LimitFailure, OtpService};
use crate::clock::Timestamp;
use crate::error::RelayError;
use crate::limit::{Limit, LimitKey, Quota, SendKeys, hex};
use crate::message::{Channel, Locale, Message, Purpose};
use crate::phone::PhoneNumber;
use crate::provider::{Attempt, ProviderError, ProviderErrorKind};
use crate::template::{SmsSegments, count_sms_segments};

/// The longest caller-rendered text a relay sends, in characters (ten UCS-2 SMS parts).
pub const MAX_RELAY_TEXT_CHARS: usize = 670;

/// The fewest digits a relayed code may have.
pub const MIN_RELAY_CODE_DIGITS: usize = 4;
/// The most digits a relayed code may have (Okta and Auth0 generate 4 to 10).
pub const MAX_RELAY_CODE_DIGITS: usize = 10;

/// The longest request key ([`RelayRequest::once`]) in bytes.
pub const MAX_REQUEST_KEY_BYTES: usize = 256;

/// A code generated elsewhere, to deliver under this service's policy and limits.
///
/// ```
/// use phone_otp::{PhoneNumber, Purpose, RelayRequest};
///
/// let to = PhoneNumber::parse("+14155550123")?;
/// let request = RelayRequest::sms(to, "48213", Purpose::SignIn)
///     .text("(Acme) Your code is 48213")
///     .subject("00uyxxSknGtK8022w0g3")
///     .client_ip("203.0.113.7".parse().unwrap())
///     .once("uS5871kJThSsU8qlA1LTcg");
/// assert_eq!(request.to.e164(), "+14155550123");
/// # Ok::<(), phone_otp::ParsePhoneError>(())
/// ```
#[derive(Clone)]
pub struct RelayRequest {
    /// The destination.
    pub to: PhoneNumber,
    /// SMS or voice.
    pub channel: Channel,
    /// The code to deliver (4 to 10 ASCII digits).
    pub code: SecretString,
    /// What the code is for (picks the template when no text is given).
    pub purpose: Purpose,
    /// The caller's own text, held to the service's [`RelayTextPolicy`] (by default: the
    /// code as a word of its own, separators between its digits allowed by voice, and no
    /// link or host name); the service's template otherwise.
    pub text: Option<SecretString>,
    /// The message language (default English).
    pub locale: Option<Locale>,
    /// The user it is for (rate-limited per subject).
    pub subject: Option<String>,
    /// The end user's IP (rate-limited per IP).
    pub client_ip: Option<IpAddr>,
    /// The tenant or calling system (rate-limited per tenant).
    pub tenant: Option<String>,
    /// When the code stops working: an expired code is never sent, and providers are told
    /// to drop the message after it. Default: now plus the service's lifetime.
    pub expires_at: Option<Timestamp>,
    /// A key naming this request (e.g. Okta's `eventId`): a repeat within the code's
    /// lifetime is refused as [`LimitKind::Duplicate`](crate::LimitKind::Duplicate) instead of sending a second message.
    pub request_key: Option<String>,
    /// The longest the provider may take, across failovers (e.g. 2.5 s under Okta's 3 s).
    pub deadline: Option<Duration>,
    /// A security notice instead of a code ([`RelayRequest::notice`]): the service's own
    /// text for it is sent, and `code` and `text` must be empty.
    pub notice: Option<Notice>,
    /// The caller's id for this send ([`StartRequest::reference`](crate::StartRequest::reference)):
    /// delivery receipts carry it back. Default: a random one.
    pub reference: Option<String>,
}

impl RelayRequest {
    /// The security notice `notice` on `channel`, in the service's own words (no code, no
    /// caller text), under the same policy and limits as a code.
    pub fn notice(to: PhoneNumber, channel: Channel, notice: Notice) -> Self {
        let mut request = Self::new(to, channel, String::new(), Purpose::SignIn);
        request.notice = Some(notice);
        request
    }

    /// `code` by SMS.
    pub fn sms(to: PhoneNumber, code: impl Into<String>, purpose: Purpose) -> Self {
        Self::new(to, Channel::Sms, code, purpose)
    }

    /// `code` by voice call.
    pub fn voice(to: PhoneNumber, code: impl Into<String>, purpose: Purpose) -> Self {
        Self::new(to, Channel::Voice, code, purpose)
    }

    /// `code` on `channel`.
    pub fn new(
        to: PhoneNumber,
        channel: Channel,
        code: impl Into<String>,
        purpose: Purpose,
    ) -> Self {
        Self {
            to,
            channel,
            code: SecretString::from(code.into()),
            purpose,
            text: None,
            locale: None,
            subject: None,
            client_ip: None,
            tenant: None,
            expires_at: None,
            request_key: None,
            deadline: None,
            notice: None,
            reference: None,
        }
    }

    /// Sends `text` (which must contain the code) instead of the service's template.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(SecretString::from(text.into()));
        self
    }

    /// Sets the language.
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }

    /// Sets the subject (user id).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the end user's IP.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the tenant or calling system.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets when the code expires.
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sends at most one message for `key` while the code lives.
    pub fn once(mut self, key: impl Into<String>) -> Self {
        self.request_key = Some(key.into());
        self
    }

    /// Sets the send's reference ([`RelayRequest::reference`]).
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Bounds the provider's time, failovers included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Checks every field before anything is spent; the text against `texts` (a text
    /// without the code, or with a link, would make this a message relay for phishing).
    fn check(&self, texts: &RelayTextPolicy) -> Result<(), RelayError> {
        let code = self.code.expose_secret();
        if self.notice.is_some() {
            if !code.is_empty() || self.text.is_some() {
                return Err(RelayError::InvalidRequest(
                    "a notice carries neither a code nor the caller's text",
                ));
            }
            return self.check_labels();
        }
        if !(MIN_RELAY_CODE_DIGITS..=MAX_RELAY_CODE_DIGITS).contains(&code.len())
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(RelayError::InvalidRequest(
                "code must be 4 to 10 ASCII digits",
            ));
        }
        if let Some(text) = &self.text {
            let text = text.expose_secret();
            if text.chars().count() > MAX_RELAY_TEXT_CHARS {
                return Err(RelayError::InvalidRequest(
                    "text is longer than 670 characters",
                ));
            }
            if texts.uses_caller_text() {
                match self.channel {
                    Channel::Voice => texts.check_voice(text, code),
                    _ => texts.check_sms(text, code),
                }
                .map_err(RelayError::TextRefused)?;
            }
        }
        self.check_labels()
    }

    fn check_labels(&self) -> Result<(), RelayError> {
        let too_long =
            |label: &Option<String>, max: usize| label.as_ref().is_some_and(|l| l.len() > max);
        if too_long(&self.subject, crate::MAX_LABEL_BYTES) {
            return Err(RelayError::InvalidRequest(
                "subject is longer than 256 bytes",
            ));
        }
        if too_long(&self.tenant, crate::MAX_LABEL_BYTES) {
            return Err(RelayError::InvalidRequest(
                "tenant is longer than 256 bytes",
            ));
        }
        if too_long(&self.request_key, MAX_REQUEST_KEY_BYTES) {
            return Err(RelayError::InvalidRequest(
                "request key is longer than 256 bytes",
            ));
        }
        if self
            .reference
            .as_deref()
            .is_some_and(|r| !super::request::valid_reference(r))
        {
            return Err(RelayError::InvalidRequest(
                "reference must be 1-64 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for RelayRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayRequest")
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("code", &"[REDACTED]")
            .field("purpose", &self.purpose)
            .field("text", &self.text.as_ref().map(|_| "[REDACTED]"))
            .field("locale", &self.locale)
            .field("subject", &self.subject)
            .field("client_ip", &self.client_ip)
            .field("tenant", &self.tenant)
            .field("expires_at", &self.expires_at)
            .field("request_key", &self.request_key.as_ref().map(|_| "[SET]"))
            .field("deadline", &self.deadline)
            .field("notice", &self.notice)
            .field("reference", &self.reference)
            .finish()
    }
}

/// A relayed code is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The provider that accepted it.
    pub provider: String,
    /// The provider's message or call id.
    pub message_id: String,
    /// The channel it went out on.
    pub channel: Channel,
    /// The destination, masked (`+1415****0123`).
    pub masked_destination: String,
    /// The SMS encoding and parts it is billed as (`None` for a call).
    pub segments: Option<SmsSegments>,
    /// Providers that failed or were skipped before one accepted.
    pub attempts: Vec<Attempt>,
    /// How long delivery took, failovers included.
    pub elapsed: Duration,
}

impl OtpService {
    /// After a keyed relay failed to deliver and nothing went out (no provider was left
    /// without an answer: see [`ProviderError::may_have_delivered`]), the caller's retry of
    /// this request (Okta retries once) must be sent, not answered as a duplicate. The
    /// first failure releases the request key and the number's cooldown (charged for a
    /// message that never left; every other charge stands); the retry's own failure does
    /// not, so a request is attempted twice at most. Only failures pay for this: the
    /// common path charges one key per request.
    async fn release_for_retry(
        &self,
        once: LimitKey,
        retry: LimitKey,
        window: Duration,
        destination_fingerprint: [u8; 8],
        now: Timestamp,
    ) {
        let store = &self.inner.store;
        let first_failure = Limit::new(retry, Quota::one_every(window));
        match store.throttle(&[first_failure], now).await {
            Ok(crate::limit::Admission::Allowed) => {
                let release = [once, LimitKey::resend_cooldown(destination_fingerprint)];
                if let Err(error) = store.release_limits(&release).await {
                    warn!(error = %error, "could not release a failed request for its retry");
                }
            }
            Ok(_) => info!("relayed request failed on its retry too: not released again"),
            Err(error) => {
                warn!(error = %error, "could not release a failed request for its retry");
            }
        }
    }

    /// Delivers a code generated elsewhere under this service's destination policy and
    /// send limits, through its templates and provider. Nothing is stored but the limit
    /// counters; the code is not verifiable here (its owner verifies it).
    ///
    /// # Errors
    /// [`RelayError::InvalidRequest`] or [`RelayError::Expired`] before anything is
    /// spent; [`RelayError::Refused`] by policy; [`RelayError::Limited`] (including
    /// [`LimitKind::Duplicate`](crate::LimitKind::Duplicate) for a repeated request key) with nothing charged;
    /// [`RelayError::Delivery`] when no provider accepted in time.
    pub async fn relay(&self, mut request: RelayRequest) -> Result<Relayed, RelayError> {
        let inner = &self.inner;
        request.check(&inner.relay_texts)?;
        if !inner.relay_texts.uses_caller_text() {
            request.text = None;
        }
        let now = inner.clock.now();
        let expires_at = request
            .expires_at
            .unwrap_or_else(|| now.saturating_add(inner.lifetime));
        let remaining = expires_at.saturating_duration_since(now);
        if remaining.is_zero() {
            info!(to = %request.to, "relayed code refused: already expired");
            return Err(RelayError::Expired);
        }
        request.channel = self
            .allowed_channel(&request.to, request.channel)
            .map_err(RelayError::Refused)?;
        if !inner.provider.supports(request.channel) {
            return Err(RelayError::ChannelUnsupported(request.channel));
        }

        let keys = self.keys();
        let destination_fingerprint = keys.destination_fingerprint(request.to.e164());
        let mut limits = Vec::with_capacity(11);
        let mut request_keys = None;
        if let Some(key) = &request.request_key {
            let fingerprint = keys.request_fingerprint(request.tenant.as_deref(), key.as_bytes());
            // One in flight or delivered per lifetime (at least a second, so a repeat in
            // the same instant counts). A failed one is released for one retry (below).
            let window = remaining.max(Duration::from_secs(1));
            let once = LimitKey::request(fingerprint);
            limits.push(Limit::new(once.clone(), Quota::one_every(window)));
            request_keys = Some((once, LimitKey::request_retry(fingerprint), window));
        }
        // The text first: budgets count its SMS segments.
        let locale = request.locale.unwrap_or_default();
        let code = request.code.expose_secret();
        let text = match (&request.text, request.notice) {
            (_, Some(notice)) => {
                SecretString::from(notice.text(request.channel, locale, inner.templates.app_name()))
            }
            (Some(text), None) => text.clone(),
            (None, None) => {
                inner
                    .templates
                    .render(request.channel, request.purpose, locale, code, remaining)
            }
        };
        let segments =
            (request.channel == Channel::Sms).then(|| count_sms_segments(text.expose_secret()));
        self.admit(
            SendKeys {
                to: &request.to,
                destination_fingerprint,
                subject: request.subject.as_deref(),
                tenant: request.tenant.as_deref(),
                sender: self.sender_keys(
                    request.tenant.as_deref(),
                    request.subject.as_deref(),
                    request.client_ip,
                ),
                channel: request.channel,
                units: segments.map_or(1, |s| u64::try_from(s.segments).unwrap_or(u64::MAX)),
                now,
            },
            limits,
            None,
        )
        .await
        .map_err(LimitFailure::relay)?;

        let base = match request.channel {
            Channel::Voice => Message::voice(request.to.clone(), text.expose_secret()),
            _ => Message::sms(request.to.clone(), text.expose_secret()),
        };
        let mut reference = [0u8; 12];
        crate::random::fill(&mut reference).map_err(RelayError::Random)?;
        let base = if request.notice.is_some() {
            base
        } else {
            base.with_code(code)
        };
        let reference = request
            .reference
            .clone()
            .unwrap_or_else(|| format!("r{}-{}", hex(&reference), now.as_millis()));
        let message = base
            .with_locale(locale)
            .with_validity(remaining)
            .with_reference(reference)
            .policy_checked();

        let started = tokio::time::Instant::now();
        let sent = match request.deadline {
            Some(deadline) => tokio::time::timeout(deadline, inner.provider.send(&message))
                .await
                .unwrap_or_else(|_| {
                    Err(ProviderError::new(
                        ProviderErrorKind::Timeout,
                        inner.provider.name(),
                    ))
                }),
            None => inner.provider.send(&message).await,
        };
        let elapsed = started.elapsed();
        match sent {
            Ok(receipt) => {
                info!(
                    to = %request.to,
                    channel = %receipt.channel,
                    purpose = %request.purpose,
                    provider = %receipt.provider,
                    "relayed code sent"
                );
                Ok(Relayed {
                    provider: receipt.provider,
                    message_id: receipt.message_id,
                    channel: receipt.channel,
                    masked_destination: request.to.masked(),
                    segments,
                    attempts: receipt.attempts,
                    elapsed,
                })
            }
            Err(error) => {
                warn!(to = %request.to, channel = %request.channel, error = %error, "relayed code delivery failed");
                // A provider that was reached and did not answer may still deliver: the
                // request key stands, so a retry of this request is a duplicate, not a
                // second code.
                if error.may_have_delivered() {
                    info!(to = %request.to, "relayed code may have been delivered: its request key is kept");
                } else if let Some((once, retry, window)) = request_keys {
                    self.release_for_retry(once, retry, window, destination_fingerprint, now)
                        .await;
                }
                Err(RelayError::Delivery(error))
            }
        }
    }
}
