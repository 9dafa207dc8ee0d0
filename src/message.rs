//! What gets delivered: channel, purpose, locale, the message itself and the provider's
//! receipt.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::phone::PhoneNumber;

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Channel {
    /// A text message.
    Sms,
    /// A phone call that reads the code aloud.
    Voice,
}

impl Channel {
    /// `"sms"` or `"voice"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }

    pub(crate) fn to_tag(self) -> u8 {
        match self {
            Self::Sms => 1,
            Self::Voice => 2,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::Sms),
            2 => Some(Self::Voice),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a code is for. It is bound into the stored digest, so a code issued for one
/// purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Purpose {
    /// Proving a phone number while creating an account.
    SignUp,
    /// A second factor at sign-in (MFA).
    SignIn,
    /// Unlocking a locked account.
    AccountUnlock,
    /// Resetting a password.
    PasswordReset,
    /// Approving one transaction (bind the amount and payee with a context).
    TransactionApproval,
}

impl Purpose {
    /// Every purpose, in tag order.
    pub const ALL: [Purpose; 5] = [
        Self::SignUp,
        Self::SignIn,
        Self::AccountUnlock,
        Self::PasswordReset,
        Self::TransactionApproval,
    ];

    /// A short lowercase name (`"sign_in"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::SignIn => "sign_in",
            Self::AccountUnlock => "account_unlock",
            Self::PasswordReset => "password_reset",
            Self::TransactionApproval => "transaction_approval",
        }
    }

    pub(crate) fn to_tag(self) -> u8 {
        match self {
            Self::SignUp => 1,
            Self::SignIn => 2,
            Self::AccountUnlock => 3,
            Self::PasswordReset => 4,
            Self::TransactionApproval => 5,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|purpose| purpose.to_tag() == tag)
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The language of the message. English and Japanese texts are built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Locale {
    /// English.
    #[default]
    En,
    /// Japanese.
    Ja,
}

impl Locale {
    /// The ISO 639-1 code (`"en"`, `"ja"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ja => "ja",
        }
    }

    /// A BCP 47 tag with a region, as speech engines want it (`"en-US"`, `"ja-JP"`).
    pub fn speech_tag(self) -> &'static str {
        match self {
            Self::En => "en-US",
            Self::Ja => "ja-JP",
        }
    }

    pub(crate) fn to_tag(self) -> u8 {
        match self {
            Self::En => 1,
            Self::Ja => 2,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::En),
            2 => Some(Self::Ja),
            _ => None,
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SMS or voice call to deliver.
///
/// The text contains the code, so it is a secret: `Debug` redacts it and adapters read it
/// with [`Message::text`] only to put it on the wire.
#[derive(Clone)]
pub struct Message {
    to: PhoneNumber,
    channel: Channel,
    text: SecretString,
    code: Option<SecretString>,
    locale: Locale,
    validity: Option<Duration>,
    reference: String,
    /// The service checked the destination policy before it charged any limit: a
    /// [`Router`](crate::Router) under it does not check again.
    policy_checked: bool,
}

impl Message {
    /// A text message with `text` (which should contain the code).
    pub fn sms(to: PhoneNumber, text: impl Into<String>) -> Self {
        Self::new(to, Channel::Sms, text.into())
    }

    /// A voice call that speaks `text`.
    pub fn voice(to: PhoneNumber, text: impl Into<String>) -> Self {
        Self::new(to, Channel::Voice, text.into())
    }

    fn new(to: PhoneNumber, channel: Channel, text: String) -> Self {
        Self {
            to,
            channel,
            text: SecretString::from(text),
            code: None,
            locale: Locale::default(),
            validity: None,
            reference: String::new(),
            policy_checked: false,
        }
    }

    /// Attaches the bare code, for adapters that build their own speech markup.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(SecretString::from(code.into()));
        self
    }

    /// Sets the language.
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = locale;
        self
    }

    /// How long the message is worth delivering: providers drop it after this, so a code
    /// that has already expired is never delivered late.
    pub fn with_validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }

    /// A caller-chosen id unique to this send, used by providers that deduplicate retried
    /// requests (NTT CPaaS `messageId`).
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = reference.into();
        self
    }

    /// Marks the destination policy as checked by the service that built this message.
    pub(crate) fn policy_checked(mut self) -> Self {
        self.policy_checked = true;
        self
    }

    /// Whether the service checked the destination policy already.
    pub(crate) fn is_policy_checked(&self) -> bool {
        self.policy_checked
    }

    /// The destination.
    pub fn to(&self) -> &PhoneNumber {
        &self.to
    }

    /// SMS or voice.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The text to deliver, code included.
    pub fn text(&self) -> &SecretString {
        &self.text
    }

    /// The bare code, if the sender attached it.
    pub fn code(&self) -> Option<&SecretString> {
        self.code.as_ref()
    }

    /// The language.
    pub fn locale(&self) -> Locale {
        self.locale
    }

    /// How long the message is worth delivering.
    pub fn validity(&self) -> Option<Duration> {
        self.validity
    }

    /// The per-send reference (empty if none was set).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The number of characters of text, for length checks without exposing it.
    pub fn text_chars(&self) -> usize {
        self.text.expose_secret().chars().count()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("text", &"[REDACTED]")
            .field("locale", &self.locale)
            .field("validity", &self.validity)
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}
