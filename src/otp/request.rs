//! What callers ask for: a new challenge ([`StartRequest`]), a new code for a live one
//! ([`ResendRequest`]), or a check of a typed code ([`VerifyRequest`]).

use std::fmt;
use std::net::IpAddr;

use crate::challenge::ChallengeId;
use crate::error::StartError;
use crate::message::{Channel, Locale, Purpose};
use crate::phone::PhoneNumber;

/// The longest subject or tenant a [`StartRequest`] may carry, in bytes. Both are stored
/// with the challenge and become rate-limit keys, so their size is bounded.
pub const MAX_LABEL_BYTES: usize = 256;

/// The longest send reference ([`StartRequest::reference`]), in bytes.
pub const MAX_REFERENCE_BYTES: usize = 64;

/// Whether `reference` may go to providers as it is: 1 to [`MAX_REFERENCE_BYTES`] of
/// `A-Z a-z 0-9 . _ -` (it becomes an NTT CPaaS `messageId` and a query parameter of
/// Twilio's status callback URL).
pub(crate) fn valid_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE_BYTES
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const BAD_REFERENCE: &str = "reference must be 1-64 characters of A-Z a-z 0-9 . _ -";

/// What to send, to whom, and why.
///
/// ```
/// use phone_otp::{PhoneNumber, Purpose, StartRequest};
///
/// let to = PhoneNumber::parse("+819012345678")?;
/// let request = StartRequest::sms(to, Purpose::SignIn)
///     .subject("user-42")
///     .client_ip("203.0.113.7".parse().unwrap());
/// assert_eq!(request.subject.as_deref(), Some("user-42"));
/// # Ok::<(), phone_otp::ParsePhoneError>(())
/// ```
#[derive(Clone)]
pub struct StartRequest {
    /// The destination.
    pub to: PhoneNumber,
    /// SMS or voice.
    pub channel: Channel,
    /// What the code is for.
    pub purpose: Purpose,
    /// The user it is for (rate-limited per subject, returned on `Verified`).
    pub subject: Option<String>,
    /// The requesting client's IP (rate-limited per IP).
    pub client_ip: Option<IpAddr>,
    /// The tenant (rate-limited per tenant).
    pub tenant: Option<String>,
    /// The message language (default English).
    pub locale: Option<Locale>,
    /// Caller bytes bound into the digest, e.g. amount and payee of a payment to approve;
    /// verify must pass the same bytes.
    pub context: Vec<u8>,
    /// The caller's id for this send, given to providers that carry one back in their
    /// delivery receipts (NTT CPaaS `messageId`, Twilio's status callback URL), so a
    /// receipt finds the caller's own record. Default: one made from the challenge.
    pub reference: Option<String>,
}

impl StartRequest {
    /// Refuses a subject or tenant too long to store or to key a rate limit with.
    pub(super) fn check_labels(&self) -> Result<(), StartError> {
        let too_long =
            |label: &Option<String>| label.as_ref().is_some_and(|l| l.len() > MAX_LABEL_BYTES);
        if too_long(&self.subject) {
            return Err(StartError::InvalidRequest(
                "subject is longer than 256 bytes",
            ));
        }
        if too_long(&self.tenant) {
            return Err(StartError::InvalidRequest(
                "tenant is longer than 256 bytes",
            ));
        }
        if self
            .reference
            .as_deref()
            .is_some_and(|r| !valid_reference(r))
        {
            return Err(StartError::InvalidRequest(BAD_REFERENCE));
        }
        Ok(())
    }

    /// A code by SMS.
    pub fn sms(to: PhoneNumber, purpose: Purpose) -> Self {
        Self::new(to, Channel::Sms, purpose)
    }

    /// A code by voice call.
    pub fn voice(to: PhoneNumber, purpose: Purpose) -> Self {
        Self::new(to, Channel::Voice, purpose)
    }

    /// A code on `channel`.
    pub fn new(to: PhoneNumber, channel: Channel, purpose: Purpose) -> Self {
        Self {
            to,
            channel,
            purpose,
            subject: None,
            client_ip: None,
            tenant: None,
            locale: None,
            context: Vec::new(),
            reference: None,
        }
    }

    /// Sets the subject (user id).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the client IP.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the language.
    pub fn locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }

    /// Binds caller bytes (e.g. `b"amount=120.00 EUR;payee=ACME"`) into the digest.
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = context.into();
        self
    }

    /// Sets the send's reference ([`StartRequest::reference`]).
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

impl fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartRequest")
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("purpose", &self.purpose)
            .field("subject", &self.subject)
            .field("client_ip", &self.client_ip)
            .field("tenant", &self.tenant)
            .field("locale", &self.locale)
            .field("context_bytes", &self.context.len())
            .field("reference", &self.reference)
            .finish()
    }
}

/// A new code for a live challenge.
///
/// A resend is charged to every limit its start was: the challenge's number, subject and
/// tenant are stored with it, and the client IP is the resending request's own. A challenge
/// started with a client IP or a context needs them again here, or the resend is refused.
///
/// ```
/// use phone_otp::{ChallengeId, Channel, ResendRequest};
///
/// /// After SMS failed: the same challenge by voice, charged to this client's address.
/// fn by_voice(id: ChallengeId) -> ResendRequest {
///     ResendRequest::new(id)
///         .client_ip("203.0.113.7".parse().unwrap())
///         .channel(Channel::Voice)
/// }
/// # let _ = by_voice;
/// ```
#[derive(Clone)]
pub struct ResendRequest {
    /// The challenge to send a new code for.
    pub challenge_id: ChallengeId,
    /// Another channel than the challenge's own (e.g. voice after SMS failed).
    pub channel: Option<Channel>,
    /// The resending client's IP (rate-limited per IP, like a start).
    pub client_ip: Option<IpAddr>,
    /// The caller bytes the challenge was started with ([`StartRequest::context`]).
    pub context: Vec<u8>,
    /// The tenant the caller acts for: a challenge started for another tenant (or for
    /// one, when this is `None`) is [`NotPending::NotFound`](crate::NotPending::NotFound),
    /// and nothing is sent or charged.
    pub tenant: Option<String>,
    /// The caller's id for this send ([`StartRequest::reference`]).
    pub reference: Option<String>,
}

impl ResendRequest {
    /// A resend for `challenge_id` on its own channel.
    pub fn new(challenge_id: ChallengeId) -> Self {
        Self {
            challenge_id,
            channel: None,
            client_ip: None,
            context: Vec::new(),
            tenant: None,
            reference: None,
        }
    }

    /// Acts for `tenant`, the tenant the challenge was started for.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sends on `channel` instead of the challenge's own.
    pub fn channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Sets the resending client's IP.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// The context bytes the challenge was started with.
    pub fn context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.context = context.into();
        self
    }

    /// Sets the send's reference ([`StartRequest::reference`]).
    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Refuses a reference providers cannot carry.
    pub(super) fn check_reference(&self) -> Result<(), crate::error::ResendError> {
        match &self.reference {
            Some(reference) if !valid_reference(reference) => {
                Err(crate::error::ResendError::InvalidRequest(BAD_REFERENCE))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ResendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResendRequest")
            .field("challenge_id", &self.challenge_id)
            .field("channel", &self.channel)
            .field("client_ip", &self.client_ip)
            .field("context_bytes", &self.context.len())
            .field("tenant", &self.tenant)
            .field("reference", &self.reference)
            .finish()
    }
}

/// A typed code to check against a challenge.
///
/// ```
/// use phone_otp::{ChallengeId, VerifyRequest};
///
/// /// The code a user of tenant `acme` typed.
/// fn for_acme(id: ChallengeId, typed: &str) -> VerifyRequest<'_> {
///     VerifyRequest::new(id, typed).tenant("acme")
/// }
/// # let _ = for_acme;
/// ```
#[derive(Clone)]
pub struct VerifyRequest<'a> {
    /// The challenge.
    pub challenge_id: ChallengeId,
    /// What the user typed.
    pub code: &'a str,
    /// The caller bytes the challenge was started with ([`StartRequest::context`]).
    pub context: &'a [u8],
    /// The tenant the caller acts for: a challenge started for another tenant (or for
    /// one, when this is `None`) is [`VerifyOutcome::NotFound`](crate::VerifyOutcome::NotFound)
    /// and no attempt is counted.
    pub tenant: Option<&'a str>,
}

impl<'a> VerifyRequest<'a> {
    /// A check of `code` for `challenge_id`, without context or tenant.
    pub fn new(challenge_id: ChallengeId, code: &'a str) -> Self {
        Self {
            challenge_id,
            code,
            context: &[],
            tenant: None,
        }
    }

    /// The context bytes the challenge was started with.
    pub fn context(mut self, context: &'a [u8]) -> Self {
        self.context = context;
        self
    }

    /// Acts for `tenant`, the tenant the challenge was started for.
    pub fn tenant(mut self, tenant: &'a str) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

impl fmt::Debug for VerifyRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("challenge_id", &self.challenge_id)
            .field("context_bytes", &self.context.len())
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}
