//! [`OtpService`]: start, resend and verify.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tracing::{debug, info, warn};

use super::account::Account;
use super::code::{
    self, DEFAULT_CODE_LENGTH, MAX_CODE_LENGTH, MIN_CODE_LENGTH, MIN_DANGER_CODE_LENGTH,
};
use super::keys::KeyRing;
use super::request::{ResendRequest, StartRequest, VerifyRequest};
use crate::challenge::{AccountId, Candidates, ChallengeId, VerifyOutcome};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{BuildError, ResendError, StartError, VerifyError};
use crate::limit::{
    Admission, FailureCap, Limit, LimitKey, LimitKind, Limits, SendKeys, SenderKeys,
};
use crate::message::{Channel, Locale, Message, Purpose};
use crate::phone::PhoneNumber;
use crate::policy::{DestinationPolicy, PolicyRefusal};
use crate::provider::{PhoneProvider, ProviderErrorKind};
use crate::store::{
    ChallengeRecord, MemoryStore, OtpStore, PendingChallenge, SendAdmission, StoreError,
    StoredDestination,
};
use crate::template::Templates;

/// Default code lifetime: 5 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime the safe setter accepts (NIST SP 800-63B: at most 10 minutes).
pub const MAX_SAFE_LIFETIME: Duration = Duration::from_secs(600);
/// Default wrong attempts per challenge (as Twilio Verify).
pub const DEFAULT_MAX_ATTEMPTS: u8 = 5;
/// A code is on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Keep this (e.g. in the session) and pass it to `verify`.
    pub challenge_id: ChallengeId,
    /// When the code stops working.
    pub expires_at: Timestamp,
    /// The channel it went out on.
    pub channel: Channel,
    /// The provider that accepted it.
    pub provider: String,
    /// The provider's message id.
    pub message_id: String,
    /// The destination, masked, safe to show the user ("sent to +8190****5678").
    pub masked_destination: String,
    /// For SMS, the parts the text is billed as (the price table's unit); `None` for a call.
    pub segments: Option<crate::template::SmsSegments>,
    /// Providers that failed or were skipped before one accepted (an audit trail's
    /// failovers).
    pub attempts: Vec<crate::provider::Attempt>,
}

/// Builds an [`OtpService`] with secure defaults. A key ring and a provider are required.
#[derive(Default)]
pub struct OtpServiceBuilder {
    keys: Option<KeyRing>,
    provider: Option<Arc<dyn PhoneProvider>>,
    store: Option<Arc<dyn OtpStore>>,
    clock: Option<Arc<dyn Clock>>,
    templates: Option<Templates>,
    limits: Limits,
    code_length: Option<(usize, usize)>,
    lifetime: Option<(Duration, Duration)>,
    max_attempts: Option<u8>,
    policy: Option<DestinationPolicy>,
    escalate_to_voice: bool,
    failure_cap: FailureCap,
    relay_texts: super::RelayTextPolicy,
}

impl OtpServiceBuilder {
    /// The HMAC keys (required).
    pub fn key_ring(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The delivery provider (required): an adapter, a `Router`, or a `StubProvider`.
    pub fn provider(mut self, provider: impl PhoneProvider + 'static) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// The store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl OtpStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Message texts (default: built-in English and Japanese naming the app "phone-otp").
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Send limits (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Code length, 6 to 10 digits (default 6).
    pub fn code_length(mut self, length: usize) -> Self {
        self.code_length = Some((length, MIN_CODE_LENGTH));
        self
    }

    /// Code length down to 4 digits. Shorter codes are easier to guess: only with a strict
    /// attempt limit and a reason.
    pub fn danger_code_length(mut self, length: usize) -> Self {
        self.code_length = Some((length, MIN_DANGER_CODE_LENGTH));
        self
    }

    /// How long a code works, at most 10 minutes (default 5 minutes).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some((lifetime, MAX_SAFE_LIFETIME));
        self
    }

    /// A lifetime over 10 minutes (up to a day), against NIST's advice.
    pub fn danger_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some((lifetime, Duration::from_secs(86_400)));
        self
    }

    /// Wrong attempts per challenge before it locks (default 5, at least 1).
    pub fn max_attempts(mut self, attempts: std::num::NonZeroU8) -> Self {
        self.max_attempts = Some(attempts.get());
        self
    }

    /// Where codes may go (default [`DestinationPolicy::default`]: no premium-rate,
    /// shared-cost, toll-free, VoIP or unknown numbers; SMS only to mobiles). Checked before
    /// any quota is spent.
    pub fn destination_policy(mut self, policy: DestinationPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// When SMS cannot reach the number (the provider says it cannot receive SMS, or the
    /// policy allows only voice for its number type, e.g. a landline), deliver the same
    /// code by voice if the policy allows voice there. Off by default.
    pub fn escalate_to_voice(mut self, escalate: bool) -> Self {
        self.escalate_to_voice = escalate;
        self
    }

    /// The cap on consecutive wrong codes per account across its challenges (default 100,
    /// forgotten 24 hours after the last failure: NIST SP 800-63B 5.2.2).
    pub fn failure_cap(mut self, cap: FailureCap) -> Self {
        self.failure_cap = cap;
        self
    }

    /// What texts [`OtpService::relay`] accepts from its callers (default: the code as a
    /// word of its own, no link or host name).
    pub fn relay_texts(mut self, policy: super::RelayTextPolicy) -> Self {
        self.relay_texts = policy;
        self
    }

    /// Checks the configuration and builds the service.
    ///
    /// # Errors
    /// A [`BuildError`] naming the missing or unsafe setting.
    pub fn build(self) -> Result<OtpService, BuildError> {
        let keys = self.keys.ok_or(BuildError::MissingKeyRing)?;
        let provider = self.provider.ok_or(BuildError::MissingProvider)?;
        let (code_length, min) = self
            .code_length
            .unwrap_or((DEFAULT_CODE_LENGTH, MIN_CODE_LENGTH));
        if !(min..=MAX_CODE_LENGTH).contains(&code_length) {
            return Err(BuildError::CodeLength {
                length: code_length,
                min,
                max: MAX_CODE_LENGTH,
            });
        }
        let (lifetime, max) = self
            .lifetime
            .unwrap_or((DEFAULT_LIFETIME, MAX_SAFE_LIFETIME));
        if lifetime < Duration::from_secs(1) || lifetime > max {
            return Err(BuildError::Lifetime { lifetime, max });
        }
        let guard = super::guard::Guard::new(self.limits.conversion_guard.clone());
        Ok(OtpService {
            inner: Arc::new(Inner {
                keys,
                provider,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                templates: self
                    .templates
                    .unwrap_or_else(|| Templates::new("phone-otp")),
                limits: self.limits,
                code_length,
                lifetime,
                max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
                policy: self.policy.unwrap_or_default(),
                escalate_to_voice: self.escalate_to_voice,
                failure_cap: self.failure_cap,
                relay_texts: self.relay_texts,
                guard,
            }),
        })
    }
}

pub(super) struct Inner {
    pub(super) keys: KeyRing,
    pub(super) provider: Arc<dyn PhoneProvider>,
    pub(super) store: Arc<dyn OtpStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) templates: Templates,
    pub(super) limits: Limits,
    pub(super) code_length: usize,
    pub(super) lifetime: Duration,
    pub(super) max_attempts: u8,
    pub(super) policy: DestinationPolicy,
    pub(super) escalate_to_voice: bool,
    pub(super) failure_cap: FailureCap,
    pub(super) relay_texts: super::RelayTextPolicy,
    pub(super) guard: super::guard::Guard,
}

/// Generates, hashes, rate-limits, delivers and verifies one-time codes.
///
/// Cheap to clone (one `Arc`); share one per process.
#[derive(Clone)]
pub struct OtpService {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for OtpService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_ids: Vec<u8> = self.keys().key_ids().map(|id| id.0).collect();
        f.debug_struct("OtpService")
            .field("provider", &self.inner.provider.name())
            .field("store", &self.inner.store)
            .field("key_ids", &key_ids)
            .field("code_length", &self.inner.code_length)
            .field("lifetime", &self.inner.lifetime)
            .field("max_attempts", &self.inner.max_attempts)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// A refusal by one of the limits, before anything was generated or sent.
pub(super) struct Refusal {
    pub(super) limit: LimitKind,
    pub(super) retry_after: Duration,
}

pub(super) enum LimitFailure {
    /// Too many consecutive failed verifications (only where the account was checked).
    AccountLocked,
    Refused(Refusal),
    Store(StoreError),
}

impl LimitFailure {
    pub(super) fn start(self) -> StartError {
        match self {
            Self::Refused(Refusal { limit, retry_after }) => {
                StartError::Limited { limit, retry_after }
            }
            Self::AccountLocked => StartError::AccountLocked,
            Self::Store(error) => StartError::Store(error),
        }
    }

    pub(super) fn resend(self) -> ResendError {
        match self {
            Self::Refused(Refusal { limit, retry_after }) => {
                ResendError::Limited { limit, retry_after }
            }
            Self::AccountLocked => ResendError::AccountLocked,
            Self::Store(error) => ResendError::Store(error),
        }
    }

    pub(super) fn relay(self) -> crate::error::RelayError {
        match self {
            Self::Refused(Refusal { limit, retry_after }) => {
                crate::error::RelayError::Limited { limit, retry_after }
            }
            Self::Store(error) => crate::error::RelayError::Store(error),
            // A relay passes no account to check.
            Self::AccountLocked => crate::error::RelayError::Store(StoreError::Corrupt(
                "a relay was refused for an account it did not name",
            )),
        }
    }
}

impl OtpService {
    /// A builder with secure defaults.
    pub fn builder() -> OtpServiceBuilder {
        OtpServiceBuilder::default()
    }

    /// The key ring. It is fixed for the service's life (no lock or reference count on the
    /// verify path); rotate by building a new service with the new ring over the same store.
    pub(super) fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The limit keys of who asks for a send, named by keyed fingerprints.
    pub(super) fn sender_keys(
        &self,
        tenant: Option<&str>,
        subject: Option<&str>,
        client_ip: Option<std::net::IpAddr>,
    ) -> SenderKeys {
        let keys = self.keys();
        SenderKeys::new(&self.inner.limits, tenant, subject, client_ip, |key| {
            keys.hide_limit_key(key)
        })
    }

    /// What a send of our own template is billed as, for budgets: its SMS segments (the
    /// text rendered with a stand-in code of the real length, the same characters' class
    /// and count), or one call. Only rendered when a budget needs it.
    fn billed_units(
        &self,
        channel: Channel,
        purpose: Purpose,
        locale: Locale,
        lifetime: Duration,
    ) -> u64 {
        let inner = &self.inner;
        if channel == Channel::Voice || inner.limits.budgets.is_none() {
            return 1;
        }
        let stand_in = "0".repeat(inner.code_length);
        let text = inner
            .templates
            .render(channel, purpose, locale, &stand_in, lifetime);
        u64::try_from(crate::template::count_sms_segments(text.expose_secret()).segments)
            .unwrap_or(u64::MAX)
    }

    /// The configured code lifetime.
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// Validates, rate-limits, stores a new challenge and delivers its code.
    ///
    /// # Errors
    /// [`StartError::InvalidRequest`] for a subject or tenant over [`MAX_LABEL_BYTES`](crate::MAX_LABEL_BYTES);
    /// [`StartError::Limited`] with the limit and `retry_after`; a store, delivery or
    /// randomness failure. If delivery fails the challenge is removed, unless a provider
    /// may have delivered ([`StartError::DeliveryUnknown`]: it is kept).
    pub async fn start(&self, mut request: StartRequest) -> Result<Started, StartError> {
        let inner = &self.inner;
        request.check_labels()?;
        request.channel = self
            .allowed_channel(&request.to, request.channel)
            .map_err(StartError::Refused)?;
        if !inner.provider.supports(request.channel) {
            return Err(StartError::ChannelUnsupported(request.channel));
        }
        let now = inner.clock.now();
        let keys = self.keys();
        let fingerprint = keys.destination_fingerprint(request.to.e164());
        let account = keys.account_id(&Account::of(
            request.subject.as_deref(),
            request.tenant.as_deref(),
            &request.to,
        ));
        let locale = request.locale.unwrap_or_default();
        self.admit(
            SendKeys {
                to: &request.to,
                destination_fingerprint: fingerprint,
                subject: request.subject.as_deref(),
                tenant: request.tenant.as_deref(),
                sender: self.sender_keys(
                    request.tenant.as_deref(),
                    request.subject.as_deref(),
                    request.client_ip,
                ),
                channel: request.channel,
                units: self.billed_units(request.channel, request.purpose, locale, inner.lifetime),
                now,
            },
            Vec::new(),
            Some(account),
        )
        .await
        .map_err(LimitFailure::start)?;

        let code = code::generate(inner.code_length).map_err(StartError::Random)?;
        let random = ChallengeId::random_key().map_err(StartError::Random)?;
        let key = inner
            .store
            .reserve_key(random, now)
            .map_err(StartError::Store)?;
        let id = ChallengeId::new(key, request.purpose, fingerprint, account);
        let digest = keys.issue(&id, &request.context, code.expose_secret().as_bytes());
        let expires_at = now.saturating_add(inner.lifetime);
        let pending = PendingChallenge {
            destination: request.to,
            channel: request.channel,
            locale,
            purpose: request.purpose,
            subject: request.subject,
            tenant: request.tenant,
            client_ip_given: request.client_ip.is_some(),
            context_bound: !request.context.is_empty(),
            expires_at,
        };
        let sealed = keys
            .seal_destination(&id, &pending.destination)
            .ok_or(StartError::Store(StoreError::Corrupt(
                "could not seal the destination",
            )))?;
        let record = ChallengeRecord::new(id, digest, inner.max_attempts, &pending, sealed);
        inner
            .store
            .insert(record, now)
            .await
            .map_err(StartError::Store)?;
        let reference = request.reference.as_deref();
        let mut delivered = self
            .deliver(&id, &pending, request.channel, &code, now, reference)
            .await;
        if let Err(error) = &delivered
            && self.should_escalate(&pending.destination, request.channel, error.kind())
        {
            info!(challenge = %self.log_ref(&id), to = %pending.destination, "SMS cannot reach the number; calling instead");
            // A second send of the same request: its own reference, so a provider that
            // deduplicates by it does not drop the call as a repeat of the SMS.
            let voice_reference = reference.map(|r| format!("{r}-voice"));
            delivered = self
                .deliver(
                    &id,
                    &pending,
                    Channel::Voice,
                    &code,
                    now,
                    voice_reference.as_deref(),
                )
                .await;
        }
        match delivered {
            Ok(started) => Ok(started),
            // The code may arrive: the challenge stays verifiable (it counts as sent for
            // every limit already charged), and the caller is told the outcome is unknown.
            Err(error) if error.may_have_delivered() => {
                info!(challenge = %self.log_ref(&id), to = %pending.destination, "delivery outcome unknown: the challenge is kept");
                Err(StartError::DeliveryUnknown {
                    challenge_id: id,
                    expires_at,
                    error,
                })
            }
            Err(error) => {
                // Nobody can know a code that was not delivered, but a half-made challenge
                // must not linger as something verifiable.
                if let Err(store_error) = inner.store.remove(&id).await {
                    warn!(challenge = %self.log_ref(&id), error = %store_error, "could not withdraw undelivered challenge");
                }
                Err(StartError::Delivery(error))
            }
        }
    }

    /// The channel to use for `to`: the requested one if policy allows it, voice instead
    /// when escalation is on and only voice is allowed for this number type.
    pub(super) fn allowed_channel(
        &self,
        to: &PhoneNumber,
        channel: Channel,
    ) -> Result<Channel, PolicyRefusal> {
        let policy = &self.inner.policy;
        match policy.check(to, channel) {
            Ok(()) => Ok(channel),
            Err(PolicyRefusal::NumberType { .. })
                if self.inner.escalate_to_voice
                    && channel == Channel::Sms
                    && policy.check(to, Channel::Voice).is_ok() =>
            {
                Ok(Channel::Voice)
            }
            Err(refusal) => {
                info!(to = %to, reason = %refusal, "one-time code refused by destination policy");
                Err(refusal)
            }
        }
    }

    fn should_escalate(
        &self,
        to: &PhoneNumber,
        channel: Channel,
        failure: ProviderErrorKind,
    ) -> bool {
        self.inner.escalate_to_voice
            && channel == Channel::Sms
            && failure == ProviderErrorKind::RecipientCannotReceive
            && self.inner.provider.supports(Channel::Voice)
            && self.inner.policy.check(to, Channel::Voice).is_ok()
    }

    /// Sends a new code for a live challenge on its original channel. The newest three
    /// codes stay valid until the challenge expires; the attempt budget is shared.
    ///
    /// A challenge started with a client IP or a context needs
    /// [`OtpService::resend_with`], which takes them.
    ///
    /// # Errors
    /// As [`OtpService::resend_with`].
    pub async fn resend(&self, id: &ChallengeId) -> Result<Started, ResendError> {
        self.resend_with(ResendRequest::new(*id)).await
    }

    /// Resends for a challenge started with [`StartRequest::context`]: the new code is bound
    /// to `context` like the first one.
    ///
    /// # Errors
    /// As [`OtpService::resend_with`].
    pub async fn resend_with_context(
        &self,
        id: &ChallengeId,
        context: &[u8],
    ) -> Result<Started, ResendError> {
        self.resend_with(ResendRequest::new(*id).context(context))
            .await
    }

    /// Like [`OtpService::resend`], on another channel (e.g. voice after SMS failed).
    ///
    /// # Errors
    /// As [`OtpService::resend_with`].
    pub async fn resend_via(
        &self,
        id: &ChallengeId,
        channel: Channel,
    ) -> Result<Started, ResendError> {
        self.resend_with(ResendRequest::new(*id).channel(channel))
            .await
    }

    /// Sends a new code as `request` says, charged to every limit a start is charged to:
    /// the challenge's number, subject and tenant, and the request's client IP.
    ///
    /// # Errors
    /// [`ResendError::InvalidRequest`] when the challenge was started with a client IP or
    /// a context and the request lacks it (or brings a context to an unbound challenge);
    /// [`ResendError::NotPending`] if the challenge is over; the resend cooldown or another
    /// limit; a store, delivery or randomness failure.
    pub async fn resend_with(&self, request: ResendRequest) -> Result<Started, ResendError> {
        let inner = &self.inner;
        request.check_reference()?;
        let id = &request.challenge_id;
        let now = inner.clock.now();
        let record = inner
            .store
            .pending(id, request.tenant.as_deref(), now)
            .await
            .map_err(ResendError::Store)?
            .map_err(ResendError::NotPending)?;
        let destination = match &record.destination {
            StoredDestination::Number(number) => number.clone(),
            StoredDestination::Sealed(sealed) => {
                self.keys()
                    .open_destination(id, sealed)
                    .ok_or(ResendError::Store(StoreError::Corrupt(
                        "the stored destination does not open under this key ring",
                    )))?
            }
        };
        let pending = record.with_destination(destination);
        if pending.context_bound && request.context.is_empty() {
            return Err(ResendError::InvalidRequest(
                "the challenge is bound to a context: resend with the same context",
            ));
        }
        if !pending.context_bound && !request.context.is_empty() {
            return Err(ResendError::InvalidRequest(
                "the challenge was started without a context",
            ));
        }
        if pending.client_ip_given && request.client_ip.is_none() {
            return Err(ResendError::InvalidRequest(
                "the challenge was started with a client IP: resend needs the requesting client's IP",
            ));
        }
        let channel = request.channel.unwrap_or(pending.channel);
        if let Err(refusal) = inner.policy.check(&pending.destination, channel) {
            return Err(ResendError::Refused(refusal));
        }
        if !inner.provider.supports(channel) {
            return Err(ResendError::ChannelUnsupported(channel));
        }
        self.admit(
            SendKeys {
                to: &pending.destination,
                destination_fingerprint: self
                    .keys()
                    .destination_fingerprint(pending.destination.e164()),
                subject: pending.subject.as_deref(),
                tenant: pending.tenant.as_deref(),
                sender: self.sender_keys(
                    pending.tenant.as_deref(),
                    pending.subject.as_deref(),
                    request.client_ip,
                ),
                channel,
                units: self.billed_units(
                    channel,
                    pending.purpose,
                    pending.locale,
                    pending.expires_at.saturating_duration_since(now),
                ),
                now,
            },
            Vec::new(),
            Some(id.account()),
        )
        .await
        .map_err(LimitFailure::resend)?;
        let code = code::generate(inner.code_length).map_err(ResendError::Random)?;
        let digest = self
            .keys()
            .issue(id, &request.context, code.expose_secret().as_bytes());
        inner
            .store
            .add_code(id, request.tenant.as_deref(), digest, now)
            .await
            .map_err(ResendError::Store)?
            .map_err(ResendError::NotPending)?;
        self.deliver(
            id,
            &pending,
            channel,
            &code,
            now,
            request.reference.as_deref(),
        )
        .await
        .map_err(ResendError::Delivery)
    }

    async fn deliver(
        &self,
        id: &ChallengeId,
        pending: &PendingChallenge,
        channel: Channel,
        code: &SecretString,
        now: Timestamp,
        reference: Option<&str>,
    ) -> Result<Started, crate::ProviderError> {
        let inner = &self.inner;
        let remaining = pending.expires_at.saturating_duration_since(now);
        let text = inner.templates.render(
            channel,
            pending.purpose,
            pending.locale,
            code.expose_secret(),
            remaining,
        );
        let base = match channel {
            Channel::Voice => Message::voice(pending.destination.clone(), text.expose_secret()),
            _ => Message::sms(pending.destination.clone(), text.expose_secret()),
        };
        let segments = (channel == Channel::Sms)
            .then(|| crate::template::count_sms_segments(text.expose_secret()));
        let message = base
            .with_code(code.expose_secret())
            .with_locale(pending.locale)
            .with_validity(remaining)
            // Unique per send (providers such as NTT CPaaS deduplicate by it): the
            // caller's, or one shared by the sends of one challenge that reveals nothing
            // of its id.
            .with_reference(reference.map_or_else(
                || format!("{}-{}", self.keys().provider_reference(id), now.as_millis()),
                str::to_owned,
            ))
            .policy_checked();
        match inner.provider.send(&message).await {
            Ok(receipt) => {
                info!(
                    challenge = %self.log_ref(id),
                    to = %pending.destination,
                    channel = %channel,
                    purpose = %pending.purpose,
                    provider = %receipt.provider,
                    "one-time code sent"
                );
                Ok(Started {
                    challenge_id: *id,
                    expires_at: pending.expires_at,
                    channel: receipt.channel,
                    provider: receipt.provider,
                    message_id: receipt.message_id,
                    masked_destination: pending.destination.masked(),
                    segments,
                    attempts: receipt.attempts,
                })
            }
            Err(error) => {
                warn!(
                    challenge = %self.log_ref(id),
                    to = %pending.destination,
                    channel = %channel,
                    error = %error,
                    "one-time code delivery failed"
                );
                Err(error)
            }
        }
    }

    /// Checks `code` against the challenge. A code works once; wrong or malformed input
    /// counts as an attempt. Full-width digits and spaces or hyphens between digits, as
    /// users type and paste codes, are accepted.
    ///
    /// # Errors
    /// [`VerifyError::Store`] if the store failed: never treat that as verified.
    pub async fn verify(&self, id: &ChallengeId, code: &str) -> Result<VerifyOutcome, VerifyError> {
        self.verify_with_context(id, code, &[]).await
    }

    /// Checks `code` for a challenge started with [`StartRequest::context`]: the same bytes
    /// must be given, or the code does not match.
    ///
    /// # Errors
    /// As [`OtpService::verify`].
    pub async fn verify_with_context(
        &self,
        id: &ChallengeId,
        code: &str,
        context: &[u8],
    ) -> Result<VerifyOutcome, VerifyError> {
        self.verify_with(VerifyRequest::new(*id, code).context(context))
            .await
    }

    /// Checks a code as `request` says: with the challenge's context, and for the tenant
    /// it was started for (a challenge of another tenant is `NotFound` and counts no
    /// attempt, so an id that leaks from one tenant is of no use to another).
    ///
    /// # Errors
    /// As [`OtpService::verify`].
    pub async fn verify_with(
        &self,
        request: VerifyRequest<'_>,
    ) -> Result<VerifyOutcome, VerifyError> {
        let VerifyRequest {
            challenge_id,
            code,
            context,
            tenant,
        } = request;
        let id = &challenge_id;
        let mut prepare = || {
            // Six ASCII digits, the usual input, go straight to the HMAC; anything else
            // is folded first (full-width digits, spaces, hyphens), so a pasted code does
            // not cost an attempt.
            let candidates = if code::is_well_formed(code) {
                self.keys().candidates(id, context, code.as_bytes())
            } else if let Some(typed) = code::normalize(code) {
                self.keys().candidates(id, context, typed.as_bytes())
            } else {
                Candidates::none()
            };
            (candidates, self.inner.clock.now())
        };
        // An in-memory store answers at once, fetching the record while the HMAC runs.
        let cap = self.inner.failure_cap;
        let outcome = match self
            .inner
            .store
            .check_prepared(id, tenant, cap, &mut prepare)
        {
            Some(outcome) => outcome,
            None => {
                let (candidates, now) = prepare();
                self.inner
                    .store
                    .check(id, tenant, candidates.as_slice(), cap, now)
                    .await
            }
        }
        .map_err(VerifyError::Store)?;
        debug!(challenge = %self.log_ref(id), outcome = outcome.as_str(), "one-time code checked");
        if outcome.is_verified() && self.inner.guard.converts() {
            self.credit_guard(id, self.inner.clock.now()).await;
        }
        Ok(outcome)
    }

    /// The account's consecutive failed verifications now (across its challenges).
    ///
    /// # Errors
    /// If the store failed.
    pub async fn failures(&self, account: Account<'_>) -> Result<u32, StoreError> {
        let id = self.keys().account_id(&account);
        self.inner.store.failures(id, self.inner.clock.now()).await
    }

    /// Unlocks an account that reached the [`FailureCap`]: forgets its failures (e.g. after
    /// support confirmed the user another way).
    ///
    /// # Errors
    /// If the store failed.
    pub async fn reset_failures(&self, account: Account<'_>) -> Result<(), StoreError> {
        let id = self.keys().account_id(&account);
        self.inner.store.reset_failures(id).await
    }

    /// How logs name a challenge: the keyed reference providers also see, never the id
    /// (whoever holds an id can spend its attempts).
    fn log_ref(&self, id: &ChallengeId) -> String {
        self.keys().provider_reference(id)
    }

    /// Whether `event` (e.g. `twilio:<MessageSid>:delivered`) is seen for the first time
    /// within `window`: remembered in the store by a keyed fingerprint, so on Redis every
    /// instance agrees, and a repeated or replayed callback is counted once.
    ///
    /// # Errors
    /// If the store failed (the event is then neither counted nor remembered).
    pub async fn first_sighting(&self, event: &[u8], window: Duration) -> Result<bool, StoreError> {
        let fingerprint = self.keys().request_fingerprint(None, event);
        let once = Limit::new(
            LimitKey::sighting(fingerprint),
            crate::limit::Quota::one_every(window.max(Duration::from_secs(1))),
        );
        let now = self.inner.clock.now();
        Ok(matches!(
            self.inner.store.throttle(&[once], now).await?,
            Admission::Allowed
        ))
    }

    /// Whether the store answers now (for readiness probes).
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ping_store(&self) -> Result<(), StoreError> {
        self.inner.store.ping().await
    }

    /// Sends refused so far by each limit (this process), e.g. for a metrics endpoint.
    pub fn refusals(&self) -> Vec<(LimitKind, u64)> {
        self.inner.guard.refusals()
    }

    /// Conversion refusals so far by the guard level that refused (this process): the
    /// prefix, its range, or the country over the short or the long window.
    pub fn guard_refusals_by_level(&self) -> Vec<(crate::GuardLevel, u64)> {
        self.inner.guard.level_refusals()
    }

    /// Whether the conversion guard is on ([`Limits::conversion_guard`]).
    pub fn guards_conversion(&self) -> bool {
        self.inner.guard.converts()
    }

    /// The prefixes the conversion guard refused lately in this process, one entry each
    /// (the latest 64), newest first: the prefix, its country, its sends and verified
    /// codes in the window and the floor its conversion fell below.
    pub fn guard_refusals(&self) -> Vec<super::GuardRefusal> {
        self.inner.guard.recent_refusals()
    }

    /// The conversion guard's floor for a send to `to` (0 with the guard off).
    pub(super) async fn guard_floor(&self, to: &PhoneNumber, now: Timestamp) -> u32 {
        self.inner.guard.floor(&*self.inner.store, to, now).await
    }

    /// Credits a verified code to its number's prefix and country (the number is read
    /// back from the challenge, opened with this service's keys).
    async fn credit_guard(&self, id: &ChallengeId, now: Timestamp) {
        let destination = match self.inner.store.destination(id).await {
            Ok(Some(StoredDestination::Number(number))) => Some(number),
            Ok(Some(StoredDestination::Sealed(sealed))) => {
                self.keys().open_destination(id, &sealed)
            }
            Ok(None) => None,
            Err(error) => {
                warn!(error = %error, "verified code not credited to the conversion guard");
                return;
            }
        };
        if let Some(to) = destination {
            self.inner.guard.credit(&*self.inner.store, &to, now).await;
        }
    }

    /// One send's admission, the step start, resend and relay share: the send is charged
    /// to `first` (the request's own limits, such as its key) and to every limit `send`
    /// names, at the conversion guard's floor for its country: all of them, or none.
    pub(super) async fn admit(
        &self,
        send: SendKeys<'_>,
        mut first: Vec<Limit>,
        account: Option<AccountId>,
    ) -> Result<(), LimitFailure> {
        let floor = self.guard_floor(send.to, send.now).await;
        first.extend(self.inner.limits.charges(&send, floor));
        self.enforce(&first, send.to, send.now, account).await
    }

    pub(super) async fn enforce(
        &self,
        limits: &[Limit],
        to: &PhoneNumber,
        now: Timestamp,
        account: Option<AccountId>,
    ) -> Result<(), LimitFailure> {
        let store = &self.inner.store;
        // The account's failures are read in the same step as the limits (one script on
        // one Redis server); a locked account is refused before any limit is charged.
        let admission = match account {
            Some(account) => {
                let cap = self.inner.failure_cap.max_consecutive.get();
                store.admit_send(account, cap, limits, now).await
            }
            None => store.throttle(limits, now).await.map(SendAdmission::Limits),
        };
        match admission {
            Ok(SendAdmission::AccountLocked) => {
                info!("one-time code refused: account locked after too many failed verifications");
                Err(LimitFailure::AccountLocked)
            }
            Ok(SendAdmission::Limits(Admission::Allowed)) => Ok(()),
            Ok(SendAdmission::Limits(Admission::Limited {
                limit,
                retry_after,
                index,
            })) => {
                info!(
                    to = %to,
                    limit = %limit,
                    retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
                    "one-time code send refused by rate limit"
                );
                self.inner.guard.count_refusal(limit);
                if let Some(refused) = limits.get(index).filter(|_| limit == LimitKind::Conversion)
                {
                    self.inner
                        .guard
                        .report_refusal(&*self.inner.store, to, &refused.key, now)
                        .await;
                }
                Err(LimitFailure::Refused(Refusal { limit, retry_after }))
            }
            Err(error) => Err(LimitFailure::Store(error)),
        }
    }
}
