//! NTT CPaaS, the Infobip platform under NTT's name: SMS through `POST /sms/3/messages` and
//! voice through `POST /tts/3/advanced`, `Authorization: App <key>`, JSON both ways.
//!
//! A `200` is not always a success: each message carries a status whose group may be
//! `REJECTED` or `UNDELIVERABLE`, which becomes an error of the matching kind. Errors come
//! in two envelopes (v3 `errorCode`/`violations`, legacy `requestError.serviceException`),
//! both parsed.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Receipt;
use super::http::{self, BaseUrl, ConfigError, HttpConfig};
use super::{PhoneProvider, ProviderError, ProviderErrorKind};
use crate::message::{Channel, Locale, Message};

const NAME: &str = "ntt-cpaas";
/// Infobip's limit on a caller-chosen `messageId`.
const MAX_MESSAGE_ID: usize = 200;

/// NTT CPaaS settings. The base URL is per account (shown after sign-up), so it is required.
#[derive(Clone, Deserialize)]
pub struct NttCpaasConfig {
    /// The account's API base URL (`https://….api.…`), required.
    pub base_url: String,
    /// The API key, sent as `Authorization: App <key>`.
    pub api_key: SecretString,
    /// The SMS sender (alphanumeric sender ID or number).
    pub sender: String,
    /// The numeric caller ID for voice calls; voice is off without it.
    #[serde(default)]
    pub voice_from: Option<String>,
    /// `"female"` (default) or `"male"`.
    #[serde(default)]
    pub voice_gender: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub http: HttpConfig,
}

impl fmt::Debug for NttCpaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NttCpaasConfig")
            .field("base_url", &self.base_url)
            .field("sender", &self.sender)
            .field("voice_from", &self.voice_from)
            .finish_non_exhaustive()
    }
}

impl NttCpaasConfig {
    /// Reads `NTT_CPAAS_BASE_URL`, `NTT_CPAAS_API_KEY`, `NTT_CPAAS_SENDER` and optionally
    /// `NTT_CPAAS_VOICE_FROM`.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&http::process_env)
    }

    /// [`NttCpaasConfig::from_env`] reading variables through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] naming every missing variable.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = http::EnvReader::new(lookup);
        let base_url = env.required("NTT_CPAAS_BASE_URL");
        let api_key = SecretString::from(env.required("NTT_CPAAS_API_KEY"));
        let sender = env.required("NTT_CPAAS_SENDER");
        let voice_from = env.optional("NTT_CPAAS_VOICE_FROM");
        env.finish()?;
        Ok(Self {
            base_url,
            api_key,
            sender,
            voice_from,
            voice_gender: None,
            http: HttpConfig::default(),
        })
    }
}

/// Delivers through NTT CPaaS. `Debug` shows no secret.
#[derive(Clone)]
pub struct NttCpaasProvider {
    config: NttCpaasConfig,
    base: BaseUrl,
    client: reqwest::Client,
}

impl fmt::Debug for NttCpaasProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NttCpaasProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NttCpaasProvider {
    /// An adapter for `config`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a non-https base URL or an empty key or sender.
    pub fn new(config: NttCpaasConfig) -> Result<Self, ConfigError> {
        if config.api_key.expose_secret().is_empty() {
            return Err(ConfigError::Invalid {
                field: "api_key",
                reason: "empty",
            });
        }
        if config.sender.is_empty() {
            return Err(ConfigError::Invalid {
                field: "sender",
                reason: "empty",
            });
        }
        let base = BaseUrl::https(&config.base_url)?;
        let client = http::client(&config.http, false)?;
        Ok(Self {
            config,
            base,
            client,
        })
    }

    /// From the environment (see [`NttCpaasConfig::from_env`]).
    ///
    /// # Errors
    /// As [`NttCpaasConfig::from_env`] and [`NttCpaasProvider::new`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(NttCpaasConfig::from_env()?)
    }

    /// Points the adapter at another server, e.g. a loopback mock (plain http only there).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a non-loopback plain http URL.
    pub fn danger_base_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.base = BaseUrl::danger(url)?;
        Ok(self)
    }

    /// The JSON body of an SMS.
    pub fn sms_body(&self, message: &Message) -> Value {
        let mut entry = json!({
            "sender": self.config.sender,
            "destinations": [{"to": message.to().e164_digits(), "messageId": message_id(message)}],
            "content": {"text": message.text().expose_secret()},
        });
        if let Some(validity) = message.validity() {
            entry["options"] = json!({
                "validityPeriod": {"amount": validity.as_secs().max(1), "timeUnit": "SECONDS"}
            });
        }
        json!({ "messages": [entry] })
    }

    /// The JSON body of a voice call: the code spaced with commas (each adds a pause).
    ///
    /// # Errors
    /// `ChannelUnsupported` without a `voice_from` number.
    pub fn voice_body(&self, message: &Message) -> Result<Value, ProviderError> {
        let from = self.config.voice_from.as_deref().ok_or_else(|| {
            ProviderError::new(ProviderErrorKind::ChannelUnsupported, NAME)
                .with_code("no_voice_from")
        })?;
        let (language, text) = match (message.locale(), message.code()) {
            (Locale::Ja, Some(code)) => {
                let spoken = spaced_with_commas(code.expose_secret());
                (
                    "ja",
                    format!("認証コードは,, {spoken},, です。繰り返します。,, {spoken}"),
                )
            }
            (_, Some(code)) => {
                let spoken = spaced_with_commas(code.expose_secret());
                (
                    "en",
                    format!("Your verification code is,, {spoken}. Again,, {spoken}"),
                )
            }
            (locale, None) => (locale.as_str(), message.text().expose_secret().to_owned()),
        };
        let mut entry = json!({
            "from": from.trim_start_matches('+'),
            "destinations": [{"to": message.to().e164_digits(), "messageId": message_id(message)}],
            "text": text,
            "language": language,
            "voice": {"gender": self.config.voice_gender.as_deref().unwrap_or("female")},
        });
        if let Some(validity) = message.validity() {
            entry["validityPeriod"] = json!(validity.as_secs().div_ceil(60).max(1));
        }
        Ok(json!({ "messages": [entry] }))
    }
}

/// Our own id per destination, so a retried request cannot double-send.
fn message_id(message: &Message) -> String {
    let reference = message.reference();
    if reference.is_empty() {
        format!("otp-{}", message.to().e164_digits())
    } else {
        reference.chars().take(MAX_MESSAGE_ID).collect()
    }
}

fn spaced_with_commas(code: &str) -> String {
    code.chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(",, ")
}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "groupName")]
    group_name: String,
    id: i64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct SentMessage {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
    status: Status,
}

#[derive(Deserialize)]
struct SendResponse {
    messages: Vec<SentMessage>,
}

/// The kind of a per-message status in a `200` (PROVIDERS.md 5.5), or `None` if accepted.
pub fn kind_for_status(group: &str, id: i64) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    match group {
        "PENDING" | "DELIVERED" | "ACCEPTED" | "OK" => None,
        "REJECTED" => Some(match id {
            10 | 14 => K::RecipientBlocked,
            8 | 51 | 52 => K::InvalidRecipient,
            20 => K::RateLimited,
            6 | 21 => K::Unavailable,
            25 | 23 | 53..=64 | 91 => K::BadRequest,
            // Sender, credits, package, route, trial, anti-fraud: this account cannot.
            _ => K::NotPermitted,
        }),
        "UNDELIVERABLE" | "EXPIRED" => Some(K::Unavailable),
        _ => Some(K::Protocol),
    }
}

/// Reads a `200` body: the receipt, or the rejection it carries.
///
/// # Errors
/// The kind of a rejected status, or `Protocol` for an unreadable body.
pub fn parse_sent(body: &str, channel: Channel) -> Result<Receipt, ProviderError> {
    let parsed: SendResponse =
        serde_json::from_str(body).map_err(|error| http::unreadable(NAME, &error))?;
    let first = parsed
        .messages
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::new(ProviderErrorKind::Protocol, NAME))?;
    if let Some(kind) = kind_for_status(&first.status.group_name, first.status.id) {
        let code = first
            .status
            .name
            .unwrap_or_else(|| first.status.id.to_string());
        return Err(ProviderError::new(kind, NAME).with_code(code));
    }
    let id = first
        .message_id
        .ok_or_else(|| ProviderError::new(ProviderErrorKind::Protocol, NAME))?;
    Ok(Receipt::new(NAME, id, channel))
}

/// Classifies a non-2xx response from either error envelope.
pub fn classify_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ProviderError {
    use ProviderErrorKind as K;
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let v3_code = parsed
        .as_ref()
        .and_then(|v| v["errorCode"].as_str())
        .map(str::to_owned);
    let legacy = parsed
        .as_ref()
        .map(|v| &v["requestError"]["serviceException"]);
    let legacy_code = legacy
        .and_then(|e| e["messageId"].as_str())
        .map(str::to_owned);
    // Does any violation point at the destination number?
    let about_destination = parsed.as_ref().is_some_and(|v| {
        let v3 = v["violations"].as_array().is_some_and(|list| {
            list.iter()
                .any(|item| item["property"].as_str().is_some_and(is_destination_field))
        });
        let old = legacy
            .and_then(|e| e["validationErrors"].as_object())
            .is_some_and(|map| map.keys().any(|key| is_destination_field(key)));
        v3 || old
    });
    let code = v3_code.or(legacy_code);
    let kind = match code.as_deref() {
        Some("E401" | "UNAUTHORIZED") => K::Auth,
        Some("E403" | "FORBIDDEN") => K::NotPermitted,
        Some("E429" | "TOO_MANY_REQUESTS") => K::RateLimited,
        Some("E500" | "GENERAL_ERROR") => K::Unavailable,
        Some("E400" | "BAD_REQUEST") if about_destination => K::InvalidRecipient,
        Some("E400" | "BAD_REQUEST" | "E404" | "NOT_FOUND") => K::BadRequest,
        _ => http::kind_for_status(status),
    };
    let mut error = ProviderError::new(kind, NAME);
    if let Some(code) = code {
        error = error.with_code(code);
    }
    http::with_response(error, status, headers, body)
}

fn is_destination_field(property: &str) -> bool {
    property.ends_with(".to") || property.ends_with("].to")
}

#[async_trait]
impl PhoneProvider for NttCpaasProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => true,
            Channel::Voice => self.config.voice_from.is_some(),
        }
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        let (path, body) = match message.channel() {
            Channel::Voice => ("/tts/3/advanced", self.voice_body(message)?),
            _ => ("/sms/3/messages", self.sms_body(message)),
        };
        let request = self
            .client
            .post(self.base.join(path))
            .header(
                "authorization",
                format!("App {}", self.config.api_key.expose_secret()),
            )
            .header("accept", "application/json")
            .json(&body);
        let channel = message.channel();
        http::execute(
            NAME,
            request,
            message,
            |text| parse_sent(text, channel),
            classify_error,
        )
        .await
    }
}
