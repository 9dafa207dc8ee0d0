//! SMSLINK (Nexway): Japanese domestic SMS through `POST /api/v1/delivery`, a `token`
//! header, JSON, HTTP/1.1 only (the service warns HTTP/2 may be unstable).
//!
//! Numbers must be Japanese mobiles; they are sent in domestic form (`09012345678`).
//! Anything else is refused before a request: another country is `ChannelUnsupported` (a
//! router moves on to an international provider), a Japanese number SMSLINK cannot text is
//! `RecipientCannotReceive` or `InvalidRecipient`. A `200` is checked contact by contact.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Receipt;
use super::http::{self, BaseUrl, ConfigError, HttpConfig};
use super::{PhoneProvider, ProviderError, ProviderErrorKind};
use crate::message::{Channel, Message};
use crate::phone::PhoneNumber;

const NAME: &str = "smslink";
const DEFAULT_BASE_URL: &str = "https://api.smslink.jp";
/// SMSLINK's limit on `text_message`, where a line break counts as two characters.
pub const MAX_TEXT_CHARS: usize = 660;

/// SMSLINK settings.
#[derive(Clone, Deserialize)]
pub struct SmslinkConfig {
    /// The API token (a UUID from the admin console), sent in the `token` header.
    pub api_token: SecretString,
    /// The API base URL (default `https://api.smslink.jp`; the sandbox is
    /// `https://sand-api-smslink.nexlink2.jp`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub http: HttpConfig,
}

impl fmt::Debug for SmslinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmslinkConfig")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SmslinkConfig {
    /// Reads `SMSLINK_API_TOKEN` and optionally `SMSLINK_BASE_URL`.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&http::process_env)
    }

    /// [`SmslinkConfig::from_env`] reading variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = http::EnvReader::new(lookup);
        let api_token = SecretString::from(env.required("SMSLINK_API_TOKEN"));
        let base_url = env.optional("SMSLINK_BASE_URL");
        env.finish()?;
        Ok(Self {
            api_token,
            base_url,
            http: HttpConfig::default(),
        })
    }
}

/// Delivers Japanese domestic SMS through SMSLINK. `Debug` shows no secret.
#[derive(Clone)]
pub struct SmslinkProvider {
    config: SmslinkConfig,
    base: BaseUrl,
    client: reqwest::Client,
}

impl fmt::Debug for SmslinkProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmslinkProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmslinkProvider {
    /// An adapter for `config`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an empty token or a non-https base URL.
    pub fn new(config: SmslinkConfig) -> Result<Self, ConfigError> {
        if config.api_token.expose_secret().is_empty() {
            return Err(ConfigError::Invalid {
                field: "api_token",
                reason: "empty",
            });
        }
        let base = BaseUrl::https(config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let client = http::client(&config.http, true)?;
        Ok(Self {
            config,
            base,
            client,
        })
    }

    /// From the environment (see [`SmslinkConfig::from_env`]).
    ///
    /// # Errors
    /// As [`SmslinkConfig::from_env`] and [`SmslinkProvider::new`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(SmslinkConfig::from_env()?)
    }

    /// Points the adapter at another server, e.g. a loopback mock (plain http only there).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a non-loopback plain http URL.
    pub fn danger_base_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.base = BaseUrl::danger(url)?;
        Ok(self)
    }

    /// The JSON body of a send, after every check SMSLINK would make.
    ///
    /// # Errors
    /// `ChannelUnsupported` for voice or a non-Japanese number; `InvalidRecipient` or
    /// `RecipientCannotReceive` for a Japanese number SMSLINK cannot text; `BadRequest` for
    /// a text over 660 characters or with 4-byte characters.
    pub fn delivery_body(message: &Message) -> Result<Value, ProviderError> {
        if message.channel() != Channel::Sms {
            return Err(refuse(ProviderErrorKind::ChannelUnsupported, "sms_only"));
        }
        let domestic = domestic_number(message.to())?;
        let text = message.text().expose_secret();
        check_text(text)?;
        Ok(json!({
            "contacts": [{"phone_number": domestic}],
            "text_message": text,
        }))
    }
}

fn refuse(kind: ProviderErrorKind, code: &str) -> ProviderError {
    ProviderError::new(kind, NAME).with_code(code)
}

/// `+819012345678` as `09012345678`; only numbers SMSLINK can text (PROVIDERS.md 6.5).
pub fn domestic_number(to: &PhoneNumber) -> Result<String, ProviderError> {
    if to.calling_code() != 81 {
        return Err(refuse(ProviderErrorKind::ChannelUnsupported, "japan_only"));
    }
    let domestic = format!("0{}", to.national_number());
    let mobile = matches!(&domestic[..3], "070" | "080" | "090") && domestic.len() == 11;
    let iot = domestic.starts_with("020") && (domestic.len() == 11 || domestic.len() == 14);
    if domestic.starts_with("0800") || !(mobile || iot) {
        let kind = if domestic.starts_with("0120")
            || domestic.starts_with("0570")
            || domestic.starts_with("0800")
        {
            ProviderErrorKind::InvalidRecipient
        } else {
            // Landlines and IP phones: valid numbers that cannot receive SMS here.
            ProviderErrorKind::RecipientCannotReceive
        };
        return Err(refuse(kind, "not_sms_capable"));
    }
    Ok(domestic)
}

/// SMSLINK counts a line break as two characters and refuses 4-byte (non-BMP) characters.
fn check_text(text: &str) -> Result<(), ProviderError> {
    if text.chars().any(|c| c.len_utf8() == 4) {
        return Err(refuse(ProviderErrorKind::BadRequest, "four_byte_character"));
    }
    let length: usize = text.chars().map(|c| if c == '\n' { 2 } else { 1 }).sum();
    if length > MAX_TEXT_CHARS {
        return Err(refuse(ProviderErrorKind::BadRequest, "text_too_long"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Contact {
    result_code: String,
}

#[derive(Deserialize)]
struct DeliveryResponse {
    delivery_id: String,
    contacts: Vec<Contact>,
}

/// The kind of a per-contact `result_code` (PROVIDERS.md 6.4), or `None` if accepted.
pub fn kind_for_result(code: &str) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    match code {
        "RST200001" => None,
        "RST200002" | "RST200003" | "RST200005" => Some(K::InvalidRecipient),
        _ => Some(K::BadRequest),
    }
}

/// Reads a `200` body, contact by contact.
///
/// # Errors
/// The kind of a rejected contact, or `Protocol` for an unreadable body.
pub fn parse_delivery(body: &str) -> Result<Receipt, ProviderError> {
    let parsed: DeliveryResponse =
        serde_json::from_str(body).map_err(|error| http::unreadable(NAME, &error))?;
    let contact = parsed
        .contacts
        .first()
        .ok_or_else(|| ProviderError::new(ProviderErrorKind::Protocol, NAME))?;
    if let Some(kind) = kind_for_result(&contact.result_code) {
        return Err(ProviderError::new(kind, NAME).with_code(contact.result_code.clone()));
    }
    Ok(Receipt::new(NAME, parsed.delivery_id, Channel::Sms))
}

/// Classifies a non-2xx response (SMSLINK documents no error body; the status decides).
pub fn classify_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ProviderError {
    http::with_response(
        ProviderError::new(http::kind_for_status(status), NAME),
        status,
        headers,
        body,
    )
}

#[async_trait]
impl PhoneProvider for SmslinkProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let body = Self::delivery_body(message)?;
        let request = self
            .client
            .post(self.base.join("/api/v1/delivery"))
            .header("token", self.config.api_token.expose_secret())
            .header("accept", "application/json")
            .json(&body);
        http::execute(NAME, request, message, parse_delivery, classify_error).await
    }
}
