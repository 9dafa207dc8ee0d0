//! What a relayed text may say. The caller of [`OtpService::relay`](crate::OtpService::relay)
//! chooses both the code and the text, so "the text contains the code" alone lets anyone
//! with a hook's credentials send "Your account is locked. Visit evil.example/login" with
//! a code of their choosing. A relayed text must carry the code as its own token and no
//! link or host name unless one was allowed; or the service's own templates are used.

/// The rules relayed texts are held to (set with
/// [`OtpServiceBuilder::relay_texts`](crate::OtpServiceBuilder::relay_texts)).
///
/// ```
/// use phone_otp::RelayTextPolicy;
///
/// // The caller's text, but links only to our own domain (and its subdomains).
/// let policy = RelayTextPolicy::default().allow_host("example.com");
/// assert!(policy.check_sms("Your code is 482913. Help: example.com/help", "482913").is_ok());
/// assert!(policy.check_sms("Locked! Visit evil.example/login 482913", "482913").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RelayTextPolicy {
    mode: Mode,
    allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    /// The caller's text, checked.
    #[default]
    Checked,
    /// The service's templates; the caller's text is ignored.
    TemplatesOnly,
    /// The caller's text with the code in it, links and hosts allowed.
    DangerAnyLinks,
}

/// Why a relayed text was refused (the `Display` is the reason the caller is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextRefusal {
    /// The code does not stand in the text as a token of its own.
    #[error("text does not contain the code as a word of its own")]
    NoCode,
    /// The text holds a link, or a host name that was not allowed.
    #[error("text contains a link or a host name")]
    Link,
}

impl RelayTextPolicy {
    /// Hosts (e.g. `example.com`) that may appear in a relayed text, with their
    /// subdomains; every other link or host name is refused.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        let host: String = host.into();
        self.allowed_hosts
            .push(host.trim_matches('.').to_ascii_lowercase());
        self
    }

    /// Ignores the caller's text and renders the service's own template for every relay
    /// (per channel, purpose and locale), so nothing but a code is ever relayed.
    pub fn templates_only(mut self) -> Self {
        self.mode = Mode::TemplatesOnly;
        self
    }

    /// Lets relayed texts carry any link or host name. A hook's caller can then send a
    /// phishing text to any number, with a code of its choosing as the excuse.
    pub fn danger_allow_links(mut self) -> Self {
        self.mode = Mode::DangerAnyLinks;
        self
    }

    /// Whether a relay uses the caller's text at all (else the service's template).
    pub(crate) fn uses_caller_text(&self) -> bool {
        self.mode != Mode::TemplatesOnly
    }

    /// Checks an SMS text: the code as a token of its own (no ASCII letter or digit right
    /// before or after it), and no link or host name that was not allowed.
    ///
    /// # Errors
    /// The reason the text is refused.
    pub fn check_sms(&self, text: &str, code: &str) -> Result<(), TextRefusal> {
        if !has_code_token(text, code) {
            return Err(TextRefusal::NoCode);
        }
        self.check_links(text)
    }

    /// Checks a voice text: the code's digits in order, with separators between them (a
    /// call spells it out: "1. 2. 3. 4. 5. 6."), and no link or host name.
    ///
    /// # Errors
    /// The reason the text is refused.
    pub fn check_voice(&self, text: &str, code: &str) -> Result<(), TextRefusal> {
        let compact: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
        if !compact.contains(code) {
            return Err(TextRefusal::NoCode);
        }
        self.check_links(text)
    }

    fn check_links(&self, text: &str) -> Result<(), TextRefusal> {
        // No dot of any kind: no host name and no scheme (a URL needs a host, an IPv4
        // address dots too); most code texts stop here without allocating.
        if self.mode == Mode::DangerAnyLinks || !text.contains(['.', '\u{FF0E}', '\u{FF61}', ':']) {
            return Ok(());
        }
        // A scheme must lead to an allowed host name (`http://localhost/x` has none).
        let scheme_to_allowed_host = |(at, scheme): (usize, &str)| {
            let rest = &text[at + scheme.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.'))
                .unwrap_or(rest.len());
            let host = rest[..end].trim_matches('.').to_lowercase();
            looks_like_host(&host) && self.allowed(&host)
        };
        if !text.match_indices("://").all(scheme_to_allowed_host)
            || host_names(text).any(|host| !self.allowed(&host))
        {
            return Err(TextRefusal::Link);
        }
        Ok(())
    }

    fn allowed(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|allowed| {
            host == allowed
                || host
                    .strip_suffix(allowed.as_str())
                    .is_some_and(|sub| sub.ends_with('.'))
        })
    }
}

/// `code` appears in `text` with no ASCII letter or digit touching it on either side.
fn has_code_token(text: &str, code: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(code).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + code.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// Everything in `text` that reads as a host name, lowercased: runs of letters, digits
/// and hyphens joined by dots (ASCII or full-width), ending in a label of two or more
/// ASCII letters after one that is not all digits (`evil.example`, `bit.ly`,
/// `ｅｖｉｌ．ｅｘａｍｐｌｅ`, `еvil.example` with a Cyrillic `е`), and dotted IPv4
/// addresses. `Example App.`, `2.5`, `482913.Thanks` and two Japanese sentences joined by
/// `。` are not.
fn host_names(text: &str) -> impl Iterator<Item = String> + '_ {
    let folded: String = text
        .chars()
        .map(|c| match c {
            '\u{FF0E}' | '\u{FF61}' => '.',
            // Full-width ASCII (U+FF01..U+FF5E) to ASCII.
            c @ '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect();
    let runs: Vec<String> = folded
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.'))
        .map(|run| run.trim_matches('.').to_lowercase())
        .filter(|run| looks_like_host(run))
        .collect();
    runs.into_iter()
}

fn looks_like_host(run: &str) -> bool {
    let labels: Vec<&str> = run.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
        return false;
    }
    let numeric = |label: &&str| label.bytes().all(|b| b.is_ascii_digit());
    if labels.len() == 4 && labels.iter().all(numeric) {
        return true;
    }
    let (last, before) = (labels[labels.len() - 1], labels[labels.len() - 2]);
    last.len() >= 2 && last.bytes().all(|b| b.is_ascii_alphabetic()) && !numeric(&before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_must_be_a_token_of_its_own() {
        let policy = RelayTextPolicy::default();
        assert_eq!(
            policy.check_sms("(HOOK)Your code is 11111", "11111"),
            Ok(())
        );
        assert_eq!(policy.check_sms("認証コードは123456です", "123456"), Ok(()));
        assert_eq!(policy.check_sms("123456 is your code.", "123456"), Ok(()));
        for text in [
            "Call 1234567 now",
            "ref A123456",
            "123456789",
            "no code here",
        ] {
            assert_eq!(
                policy.check_sms(text, "123456"),
                Err(TextRefusal::NoCode),
                "{text}"
            );
        }
        assert_eq!(
            policy.check_voice("Your code is 1. 2. 3. 4.", "1234"),
            Ok(())
        );
        assert_eq!(
            policy.check_voice("Your code is 1. 2. 3.", "1234"),
            Err(TextRefusal::NoCode)
        );
    }

    #[test]
    fn links_and_host_names_are_refused_unless_allowed() {
        let policy = RelayTextPolicy::default();
        for text in [
            "Your bank account is locked. Click https://evil.example/login 482913",
            "Locked: evil.example/login 482913",
            "482913 see bit.ly/x",
            "482913 www.evil.example",
            "482913 http://203.0.113.5/x",
            "482913 visit 203.0.113.5 now",
            "482913 ｅｖｉｌ．ｅｘａｍｐｌｅ",
            "482913 こちらevil.example/loginへ",
            "482913 \u{435}vil.example",
            "482913 mail support@evil.example",
            "482913 ftp://x",
        ] {
            assert_eq!(
                policy.check_sms(text, "482913"),
                Err(TextRefusal::Link),
                "{text}"
            );
            assert_eq!(
                policy.check_voice(text, "482913"),
                Err(TextRefusal::Link),
                "{text}"
            );
        }
        for text in [
            "482913 is your verification code for Example App.",
            "Your code is 482913. It expires in 2.5 minutes.",
            "482913 ist Ihr Code. Gültig 5 Min.",
            "Your code is 482913.Thanks",
            "【Acme】認証コードは482913です。有効期限は5分です。他人に教えないでください。",
            "アカウントをロックしました。心当たりがない場合は482913をお伝えください。",
        ] {
            assert_eq!(policy.check_sms(text, "482913"), Ok(()), "{text}");
        }
        let ours = RelayTextPolicy::default().allow_host("Example.com");
        assert_eq!(ours.check_sms("482913 login.example.com", "482913"), Ok(()));
        assert_eq!(
            ours.check_sms("482913 @example.com #482913", "482913"),
            Ok(())
        );
        assert_eq!(
            ours.check_sms("482913 badexample.com", "482913"),
            Err(TextRefusal::Link)
        );
        assert_eq!(
            ours.check_sms("482913 https://example.com/help", "482913"),
            Ok(())
        );
        for text in [
            "482913 http://localhost/x",
            "482913 https://example.com.evil.example",
        ] {
            assert_eq!(
                ours.check_sms(text, "482913"),
                Err(TextRefusal::Link),
                "{text}"
            );
        }
        let any = RelayTextPolicy::default().danger_allow_links();
        assert_eq!(
            any.check_sms("482913 https://evil.example", "482913"),
            Ok(())
        );
        assert_eq!(
            any.check_sms("no code https://evil.example", "482913"),
            Err(TextRefusal::NoCode)
        );
    }
}
