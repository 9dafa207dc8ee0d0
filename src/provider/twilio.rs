//! Twilio Programmable Messaging (SMS) and Voice (a call that reads the code), plus the
//! `X-Twilio-Signature` check for status callbacks.
//!
//! Wire format: form-encoded `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and
//! `Calls.json` (inline `Twiml`), HTTP Basic auth, `201` with a JSON resource on success and
//! `{code, message, more_info, status}` on failure.

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Receipt;
use super::http::{self, BaseUrl, ConfigError, HttpConfig};
use super::{PhoneProvider, ProviderError, ProviderErrorKind};
use crate::message::{Channel, Locale, Message};

const NAME: &str = "twilio";
const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// Twilio's limit on inline TwiML, counted after escaping.
pub const MAX_TWIML_CHARS: usize = 4000;
/// Twilio's range for `ValidityPeriod`, in seconds.
const VALIDITY_RANGE: (u64, u64) = (1, 36_000);

/// Twilio settings. Deserializes from the field names below.
#[derive(Clone, Deserialize)]
pub struct TwilioConfig {
    /// The Account SID (`AC…`), always in the URL path.
    pub account_sid: String,
    /// The Auth Token; or use `api_key_sid` and `api_key_secret`.
    #[serde(default)]
    pub auth_token: Option<SecretString>,
    /// An API key SID (`SK…`), used as the Basic auth user instead of the Account SID.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// The API key's secret.
    #[serde(default)]
    pub api_key_secret: Option<SecretString>,
    /// The sender number (required for voice).
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG…`) that picks the SMS sender; used instead of `from` for SMS.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The `<Say>` voice for English (default `Polly.Joanna`).
    #[serde(default)]
    pub voice_en: Option<String>,
    /// The `<Say>` voice for Japanese (default `Polly.Mizuki`; basic voices cannot speak it).
    #[serde(default)]
    pub voice_ja: Option<String>,
    /// Where Twilio posts each message's or call's status (`StatusCallback`, overriding a
    /// Messaging Service's own), with the send's reference added as `?ref=` so a receipt
    /// finds its record. `None`: whatever the account or service has configured.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub http: HttpConfig,
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("status_callback", &self.status_callback)
            .finish_non_exhaustive()
    }
}

impl TwilioConfig {
    /// Reads `TWILIO_ACCOUNT_SID` and either `TWILIO_AUTH_TOKEN` or `TWILIO_API_KEY_SID` plus
    /// `TWILIO_API_KEY_SECRET`; optionally `TWILIO_FROM`, `TWILIO_MESSAGING_SERVICE_SID` and
    /// `TWILIO_STATUS_CALLBACK`.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&http::process_env)
    }

    /// [`TwilioConfig::from_env`] reading variables through `lookup` (a secret manager, or
    /// a map in tests).
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = http::EnvReader::new(lookup);
        let account_sid = env.required("TWILIO_ACCOUNT_SID");
        let (auth_token, api_key_sid, api_key_secret) = match env.optional("TWILIO_API_KEY_SID") {
            Some(sid) => (
                None,
                Some(sid),
                Some(SecretString::from(env.required("TWILIO_API_KEY_SECRET"))),
            ),
            None => (
                Some(SecretString::from(env.required("TWILIO_AUTH_TOKEN"))),
                None,
                None,
            ),
        };
        let from = env.optional("TWILIO_FROM");
        let messaging_service_sid = env.optional("TWILIO_MESSAGING_SERVICE_SID");
        let status_callback = env.optional("TWILIO_STATUS_CALLBACK");
        if from.is_none() && messaging_service_sid.is_none() {
            env.missing("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID");
        }
        env.finish()?;
        Ok(Self {
            account_sid,
            auth_token,
            api_key_sid,
            api_key_secret,
            from,
            messaging_service_sid,
            voice_en: None,
            voice_ja: None,
            status_callback,
            http: HttpConfig::default(),
        })
    }
}

/// Delivers through Twilio. `Debug` shows no secret.
#[derive(Clone)]
pub struct TwilioProvider {
    config: TwilioConfig,
    user: String,
    password: SecretString,
    base: BaseUrl,
    client: reqwest::Client,
}

impl fmt::Debug for TwilioProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioProvider")
            .field("config", &self.config)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TwilioProvider {
    /// An adapter for `config`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if no credentials or no sender are configured.
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        let (user, password) = match (
            &config.api_key_sid,
            &config.api_key_secret,
            &config.auth_token,
        ) {
            (Some(sid), Some(secret), _) => (sid.clone(), secret.clone()),
            (None, None, Some(token)) => (config.account_sid.clone(), token.clone()),
            _ => {
                return Err(ConfigError::Invalid {
                    field: "credentials",
                    reason: "set auth_token, or both api_key_sid and api_key_secret",
                });
            }
        };
        if config.account_sid.is_empty() {
            return Err(ConfigError::Invalid {
                field: "account_sid",
                reason: "empty",
            });
        }
        if config.from.is_none() && config.messaging_service_sid.is_none() {
            return Err(ConfigError::Invalid {
                field: "from",
                reason: "set from or messaging_service_sid",
            });
        }
        if let Some(url) = &config.status_callback {
            check_status_callback(url)?;
        }
        let client = http::client(&config.http, false)?;
        Ok(Self {
            config,
            user,
            password,
            base: BaseUrl::https(DEFAULT_BASE_URL)?,
            client,
        })
    }

    /// From the environment (see [`TwilioConfig::from_env`]).
    ///
    /// # Errors
    /// As [`TwilioConfig::from_env`] and [`TwilioProvider::new`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(TwilioConfig::from_env()?)
    }

    /// Asks Twilio to post every status to `url` ([`TwilioConfig::status_callback`]).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a URL that is not `https://` (or `http://` on
    /// loopback, for tests).
    pub fn status_callback(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_status_callback(&url)?;
        self.config.status_callback = Some(url);
        Ok(self)
    }

    /// Points the adapter at another server, e.g. a loopback mock (plain http only there).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a non-loopback plain http URL.
    pub fn danger_base_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.base = BaseUrl::danger(url)?;
        Ok(self)
    }

    fn path(&self, resource: &str) -> String {
        self.base.join(&format!(
            "/2010-04-01/Accounts/{}/{resource}.json",
            self.config.account_sid
        ))
    }

    /// The form fields of an SMS.
    pub fn sms_form(&self, message: &Message) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", message.to().e164().to_owned()),
            ("Body", message.text().expose_secret().to_owned()),
        ];
        match (&self.config.messaging_service_sid, &self.config.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service.clone())),
            (None, Some(from)) => form.push(("From", from.clone())),
            (None, None) => {}
        }
        if let Some(validity) = message.validity() {
            let seconds = validity.as_secs().clamp(VALIDITY_RANGE.0, VALIDITY_RANGE.1);
            form.push(("ValidityPeriod", seconds.to_string()));
        }
        self.push_status_callback(&mut form, message);
        form
    }

    /// `StatusCallback`, when configured: the URL with `ref=<reference>` added.
    fn push_status_callback(&self, form: &mut Vec<(&'static str, String)>, message: &Message) {
        let Some(url) = &self.config.status_callback else {
            return;
        };
        let reference = message.reference();
        let url = if reference.is_empty() {
            url.clone()
        } else {
            let joiner = if url.contains('?') { '&' } else { '?' };
            let encoded: String =
                url::form_urlencoded::byte_serialize(reference.as_bytes()).collect();
            format!("{url}{joiner}ref={encoded}")
        };
        form.push(("StatusCallback", url));
    }

    /// The form fields of a voice call.
    ///
    /// # Errors
    /// `BadRequest` (code `twiml_too_long`) if the TwiML would exceed 4000 characters;
    /// `ChannelUnsupported` without a `from` number.
    pub fn voice_form(
        &self,
        message: &Message,
    ) -> Result<Vec<(&'static str, String)>, ProviderError> {
        let from = self.config.from.clone().ok_or_else(|| {
            ProviderError::new(ProviderErrorKind::ChannelUnsupported, NAME)
                .with_code("no_from_number")
        })?;
        let voice = match message.locale() {
            Locale::Ja => self.config.voice_ja.as_deref().unwrap_or("Polly.Mizuki"),
            _ => self.config.voice_en.as_deref().unwrap_or("Polly.Joanna"),
        };
        let twiml = twiml(message, voice);
        if twiml.chars().count() > MAX_TWIML_CHARS {
            return Err(
                ProviderError::new(ProviderErrorKind::BadRequest, NAME).with_code("twiml_too_long")
            );
        }
        let mut form = vec![
            ("To", message.to().e164().to_owned()),
            ("From", from),
            ("Twiml", twiml),
        ];
        self.push_status_callback(&mut form, message);
        Ok(form)
    }
}

fn check_status_callback(url: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|_| ConfigError::Invalid {
        field: "status_callback",
        reason: "not a URL",
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ConfigError::Invalid {
            field: "status_callback",
            reason: "must be https:// (http:// only on loopback)",
        }),
    }
}

/// TwiML that reads the code digit by digit with pauses, twice. Without a bare code on the
/// message it reads the message text, twice.
pub fn twiml(message: &Message, voice: &str) -> String {
    let language = message.locale().speech_tag();
    let say = |text: &str| {
        format!(
            "<Say language=\"{}\" voice=\"{}\">{}</Say>",
            xml_escape(language),
            xml_escape(voice),
            xml_escape(text)
        )
    };
    let mut xml = String::from("<Response>");
    match message.code() {
        Some(code) => {
            let (intro, again) = match message.locale() {
                Locale::Ja => ("認証コードをお知らせします。", "繰り返します。"),
                _ => ("Your verification code is:", "Again, your code is:"),
            };
            for (round, lead) in [intro, again].into_iter().enumerate() {
                if round > 0 {
                    xml.push_str("<Pause length=\"1\"/>");
                }
                xml.push_str(&say(lead));
                for digit in code.expose_secret().chars() {
                    xml.push_str("<Pause length=\"1\"/>");
                    xml.push_str(&say(&digit.to_string()));
                }
            }
        }
        None => {
            let text = message.text().expose_secret();
            xml.push_str(&say(text));
            xml.push_str("<Pause length=\"1\"/>");
            xml.push_str(&say(text));
        }
    }
    xml.push_str("</Response>");
    xml
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<i64>,
}

/// Reads a `201` body into a receipt.
///
/// # Errors
/// `Protocol` if the body is not a Twilio resource with a `sid`.
pub fn parse_created(body: &str, channel: Channel) -> Result<Receipt, ProviderError> {
    let created: Created =
        serde_json::from_str(body).map_err(|error| http::unreadable(NAME, &error))?;
    Ok(Receipt::new(NAME, created.sid, channel))
}

/// The kind of a Twilio error code (see PROVIDERS.md 1.5 and 2.1).
pub fn kind_for_code(code: i64) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    Some(match code {
        20003 => K::Auth,
        20429 | 21611 | 10004 | 22005 => K::RateLimited,
        21211 | 21217 | 13224 => K::InvalidRecipient,
        21610 => K::RecipientBlocked,
        21614 | 21635 | 21214 => K::RecipientCannotReceive,
        // Sender, geo permission, routing or trial-account problems: another provider
        // (or another sender) may well deliver.
        21212 | 21210 | 21216 | 21408 | 21606 | 21608 | 21612 | 21659 | 21660 => K::NotPermitted,
        21602 | 21604 | 21617 => K::BadRequest,
        _ => return None,
    })
}

/// Classifies a non-2xx response.
pub fn classify_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ProviderError {
    let code = serde_json::from_str::<TwilioErrorBody>(body)
        .ok()
        .and_then(|b| b.code);
    let kind = code
        .and_then(kind_for_code)
        .unwrap_or_else(|| http::kind_for_status(status));
    let mut error = ProviderError::new(kind, NAME);
    if let Some(code) = code {
        error = error.with_code(code.to_string());
    }
    http::with_response(error, status, headers, body)
}

#[async_trait]
impl PhoneProvider for TwilioProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => true,
            Channel::Voice => self.config.from.is_some(),
        }
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let (url, form) = match message.channel() {
            Channel::Voice => (self.path("Calls"), self.voice_form(message)?),
            _ => (self.path("Messages"), self.sms_form(message)),
        };
        let request = self
            .client
            .post(url)
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .form(&form);
        let channel = message.channel();
        http::execute(
            NAME,
            request,
            message,
            |body| parse_created(body, channel),
            classify_error,
        )
        .await
    }
}

/// Checks `X-Twilio-Signature` on a form-encoded callback: base64 HMAC-SHA1, keyed with
/// the Auth Token, of the full URL followed by each parameter name and value sorted by
/// name. Like Twilio's own validators it accepts the URL with the default port stripped or
/// added. Compared in constant time.
pub fn validate_signature(
    auth_token: &SecretString,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut valid = subtle::Choice::from(0u8);
    for candidate in url_variants(url) {
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(auth_token.expose_secret().as_bytes())
        else {
            return false;
        };
        mac.update(candidate.as_bytes());
        for (name, value) in &sorted {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        let computed = mac.finalize().into_bytes();
        valid |= computed.as_slice().ct_eq(&expected);
    }
    valid.into()
}

/// The URL as given, plus the variant with the default port stripped or added.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Ok(mut parsed) = url::Url::parse(url) {
        let default = parsed.port_or_known_default();
        let other = if url_has_explicit_port(url) {
            parsed.set_port(None).ok().map(|()| parsed.to_string())
        } else {
            default.and_then(|port| {
                // `Url` hides default ports, so splice it into the authority by hand.
                let host = parsed.host_str()?.to_owned();
                let with_port = format!("{host}:{port}");
                Some(url.replacen(&host, &with_port, 1))
            })
        };
        if let Some(other) = other.filter(|o| o != url) {
            variants.push(other);
        }
    }
    variants
}

fn url_has_explicit_port(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty())
}
