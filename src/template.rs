//! Message texts: built-in defaults per channel, purpose and locale, custom templates, the
//! WebOTP and Android SMS Retriever lines, SMS segment counting and voice digit spacing.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use thiserror::Error;

use crate::message::{Channel, Locale, Purpose};

/// A template was refused when it was built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template has no `{code}` placeholder, so the message would not carry the code.
    #[error("template has no {{code}} placeholder")]
    MissingCode,
    /// The template names a placeholder other than `{code}`, `{app}` and `{minutes}`.
    #[error("template has an unknown placeholder {{{0}}}; known: {{code}}, {{app}}, {{minutes}}")]
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    #[error("template has an unclosed '{{'")]
    Unclosed,
    /// The WebOTP origin is not a bare host name.
    #[error("WebOTP origin must be a host name such as \"example.com\" (no scheme, path or port)")]
    InvalidWebOtpOrigin,
    /// The Android app hash is not 11 characters of base64.
    #[error("Android app hash must be 11 base64 characters")]
    InvalidAppHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Code,
    App,
    Minutes,
}

/// A message text with `{code}`, `{app}` and `{minutes}` placeholders, checked when built.
///
/// ```
/// use phone_otp::{Template, TemplateError};
///
/// assert!(Template::new("Your {app} code: {code}").is_ok());
/// assert_eq!(Template::new("Your code is ready").unwrap_err(), TemplateError::MissingCode);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    code_count: usize,
}

impl Template {
    /// Parses a template. Write `{{` and `}}` for literal braces.
    ///
    /// # Errors
    /// [`TemplateError::MissingCode`] without `{code}`, or an unknown or unclosed placeholder.
    pub fn new(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            match ch {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for inner in chars.by_ref() {
                        if inner == '}' {
                            closed = true;
                            break;
                        }
                        name.push(inner);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed);
                    }
                    let piece = match name.as_str() {
                        "code" => Piece::Code,
                        "app" => Piece::App,
                        "minutes" => Piece::Minutes,
                        _ => return Err(TemplateError::UnknownPlaceholder(name)),
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                _ => literal.push(ch),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let code_count = pieces.iter().filter(|p| **p == Piece::Code).count();
        if code_count == 0 {
            return Err(TemplateError::MissingCode);
        }
        Ok(Self { pieces, code_count })
    }

    fn render(&self, code: &str, app: &str, minutes: u64) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Code => out.push_str(code),
                Piece::App => out.push_str(app),
                Piece::Minutes => out.push_str(&minutes.to_string()),
            }
        }
        out
    }
}

/// The texts an [`OtpService`](crate::OtpService) sends: built-in English and Japanese
/// defaults, per-(channel, purpose, locale) overrides, and the SMS autofill lines.
#[derive(Debug, Clone)]
pub struct Templates {
    app_name: String,
    custom: HashMap<(Channel, Purpose, Locale), Template>,
    web_otp_origin: Option<String>,
    android_app_hash: Option<String>,
}

impl Templates {
    /// Default texts naming the app `app_name`.
    pub fn new(app_name: impl Into<String>) -> Self {
        Self {
            app_name: app_name.into(),
            custom: HashMap::new(),
            web_otp_origin: None,
            android_app_hash: None,
        }
    }

    /// Uses `template` instead of the default for this channel, purpose and locale.
    pub fn with_template(
        mut self,
        channel: Channel,
        purpose: Purpose,
        locale: Locale,
        template: Template,
    ) -> Self {
        self.custom.insert((channel, purpose, locale), template);
        self
    }

    /// Appends the WebOTP line (`@example.com #123456`) to every SMS, so browsers can offer
    /// the code to that origin only.
    ///
    /// # Errors
    /// [`TemplateError::InvalidWebOtpOrigin`] unless `host` is a bare host name.
    pub fn with_web_otp_origin(mut self, host: &str) -> Result<Self, TemplateError> {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !host.starts_with(['.', '-'])
            && !host.ends_with(['.', '-']);
        if !valid {
            return Err(TemplateError::InvalidWebOtpOrigin);
        }
        self.web_otp_origin = Some(host.to_ascii_lowercase());
        Ok(self)
    }

    /// Adds the Android SMS Retriever app hash (11 characters) to every SMS.
    ///
    /// # Errors
    /// [`TemplateError::InvalidAppHash`] unless `hash` is 11 base64 characters.
    pub fn with_android_app_hash(mut self, hash: &str) -> Result<Self, TemplateError> {
        let valid = hash.len() == 11
            && hash
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
        if !valid {
            return Err(TemplateError::InvalidAppHash);
        }
        self.android_app_hash = Some(hash.to_owned());
        Ok(self)
    }

    /// The app name used for `{app}`.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// Renders the text for one send. `lifetime` fills `{minutes}` (rounded up).
    pub fn render(
        &self,
        channel: Channel,
        purpose: Purpose,
        locale: Locale,
        code: &str,
        lifetime: Duration,
    ) -> SecretString {
        let minutes = lifetime.as_secs().div_ceil(60).max(1);
        let text = match self.custom.get(&(channel, purpose, locale)) {
            Some(template) => self.render_custom(template, channel, locale, code, minutes),
            None => {
                let template = default_template(channel, purpose, locale);
                match channel {
                    Channel::Voice => {
                        template.render(&spaced_digits(code, locale), &self.app_name, minutes)
                    }
                    _ => self.add_sms_lines(template.render(code, &self.app_name, minutes), code),
                }
            }
        };
        SecretString::from(text)
    }

    fn render_custom(
        &self,
        template: &Template,
        channel: Channel,
        locale: Locale,
        code: &str,
        minutes: u64,
    ) -> String {
        match channel {
            Channel::Voice => {
                let spoken = spaced_digits(code, locale);
                let mut text = template.render(&spoken, &self.app_name, minutes);
                // A code heard once is easy to miss: say it again if the template did not.
                if template.code_count < 2 {
                    text.push_str(match locale {
                        Locale::Ja => " 繰り返します。",
                        Locale::En => " Again, your code is ",
                    });
                    text.push_str(&spoken);
                    text.push_str(match locale {
                        Locale::Ja => "。",
                        Locale::En => ".",
                    });
                }
                text
            }
            _ => self.add_sms_lines(template.render(code, &self.app_name, minutes), code),
        }
    }

    /// The Android hash goes on its own line; the WebOTP line must be the last line.
    fn add_sms_lines(&self, mut text: String, code: &str) -> String {
        if let Some(hash) = &self.android_app_hash {
            text.push('\n');
            text.push_str(hash);
        }
        if let Some(origin) = &self.web_otp_origin {
            text.push_str("\n@");
            text.push_str(origin);
            text.push_str(" #");
            text.push_str(code);
        }
        text
    }
}

/// The built-in text for a channel, purpose and locale.
fn default_template(channel: Channel, purpose: Purpose, locale: Locale) -> Template {
    let text = match (channel, locale) {
        (Channel::Voice, Locale::Ja) => {
            let what = match purpose {
                Purpose::SignUp => "登録用の",
                Purpose::SignIn => "ログイン用の",
                Purpose::AccountUnlock => "アカウントロック解除用の",
                Purpose::PasswordReset => "パスワード再設定用の",
                Purpose::TransactionApproval => "取引承認用の",
            };
            format!(
                "{{app}}です。{what}認証コードは、{{code}}、です。繰り返します。認証コードは、{{code}}、です。"
            )
        }
        (Channel::Voice, _) => {
            let what = match purpose {
                Purpose::SignUp => "sign-up",
                Purpose::SignIn => "sign-in",
                Purpose::AccountUnlock => "account unlock",
                Purpose::PasswordReset => "password reset",
                Purpose::TransactionApproval => "transaction approval",
            };
            format!(
                "This is {{app}}. Your {what} code is: {{code}}. Again, your code is: {{code}}."
            )
        }
        (_, Locale::Ja) => {
            let what = match purpose {
                Purpose::SignUp => "登録",
                Purpose::SignIn => "ログイン",
                Purpose::AccountUnlock => "ロック解除",
                Purpose::PasswordReset => "パスワード再設定",
                Purpose::TransactionApproval => "取引承認",
            };
            format!(
                "【{{app}}】{what}の認証コード: {{code}}（{{minutes}}分間有効）。他人に教えないでください。"
            )
        }
        (_, _) => {
            let what = match purpose {
                Purpose::SignUp => "sign-up",
                Purpose::SignIn => "sign-in",
                Purpose::AccountUnlock => "account unlock",
                Purpose::PasswordReset => "password reset",
                Purpose::TransactionApproval => "transaction approval",
            };
            format!(
                "{{code}} is your {{app}} {what} code. It expires in {{minutes}} minutes. Do not share it."
            )
        }
    };
    // The built-in texts all contain {code}; parsing cannot fail, but stay total anyway.
    Template::new(&text).unwrap_or(Template {
        pieces: vec![Piece::Code],
        code_count: 1,
    })
}

/// Digits separated so speech engines read them one by one ("1, 2, 3" / "1、2、3")
/// instead of as a number ("one hundred twenty-three thousand ...").
pub fn spaced_digits(code: &str, locale: Locale) -> String {
    let separator = match locale {
        Locale::Ja => "、",
        Locale::En => ", ",
    };
    let mut spoken = String::with_capacity(code.len() * 4);
    for (index, ch) in code.chars().enumerate() {
        if index > 0 {
            spoken.push_str(separator);
        }
        spoken.push(ch);
    }
    spoken
}

/// How an SMS text is encoded on the air interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit alphabet: 160 characters in one SMS, 153 per part when split.
    Gsm7,
    /// UCS-2 (UTF-16): 70 characters in one SMS, 67 per part. Any Japanese text.
    Ucs2,
}

/// The encoding and size of an SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsSegments {
    /// GSM-7 or UCS-2.
    pub encoding: SmsEncoding,
    /// Septets (GSM-7, extension characters count two) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// How many SMS parts the text is sent (and billed) as.
    pub segments: usize,
}

/// Counts the encoding and number of parts of an SMS text.
///
/// ```
/// use phone_otp::{SmsEncoding, count_sms_segments};
///
/// let english = count_sms_segments("123456 is your code");
/// assert_eq!((english.encoding, english.segments), (SmsEncoding::Gsm7, 1));
/// let japanese = count_sms_segments(&"認".repeat(71));
/// assert_eq!((japanese.encoding, japanese.segments), (SmsEncoding::Ucs2, 2));
/// ```
pub fn count_sms_segments(text: &str) -> SmsSegments {
    let mut septets = 0usize;
    let mut gsm = true;
    for ch in text.chars() {
        if GSM7_BASIC.contains(ch) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(ch) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    let (encoding, units, single, part) = if gsm {
        (SmsEncoding::Gsm7, septets, 160, 153)
    } else {
        (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67)
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    SmsSegments {
        encoding,
        units,
        segments,
    }
}

/// GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape plus one septet each).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{0C}";
