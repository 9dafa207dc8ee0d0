//! Security notices: messages with no code that an identity platform still expects
//! delivered (Auth0 sends `blocked_account`, `change_password` and `password_breach` to a
//! custom phone provider). The text is always the service's own, per notice and locale,
//! never the caller's: a notice relay must not become a free-text relay.

use std::fmt;

use crate::message::{Channel, Locale};

/// A security notice to a user's phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Notice {
    /// The account was blocked (e.g. after too many failed sign-ins).
    BlockedAccount,
    /// The account's password was changed.
    ChangePassword,
    /// The account's password was found in a breach and must be changed.
    PasswordBreach,
}

impl Notice {
    /// Auth0's name (`blocked_account`, `change_password`, `password_breach`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlockedAccount => "blocked_account",
            Self::ChangePassword => "change_password",
            Self::PasswordBreach => "password_breach",
        }
    }

    /// The inverse of [`Notice::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::BlockedAccount,
            Self::ChangePassword,
            Self::PasswordBreach,
        ]
        .into_iter()
        .find(|notice| notice.as_str() == name)
    }

    /// The service's text for this notice, naming the app `app`. SMS and voice texts are
    /// the same words (nothing to spell out); none holds a link.
    pub fn text(self, _channel: Channel, locale: Locale, app: &str) -> String {
        match (self, locale) {
            (Self::BlockedAccount, Locale::Ja) => format!(
                "【{app}】不審なログインが続いたため、アカウントをロックしました。心当たりがない場合はサポートにご連絡ください。"
            ),
            (Self::ChangePassword, Locale::Ja) => format!(
                "【{app}】パスワードが変更されました。心当たりがない場合は、すぐにサポートにご連絡ください。"
            ),
            (Self::PasswordBreach, Locale::Ja) => format!(
                "【{app}】お使いのパスワードが外部の漏えい情報に含まれていました。次回ログイン時にパスワードを変更してください。"
            ),
            (Self::BlockedAccount, _) => format!(
                "{app}: your account was blocked after suspicious sign-in attempts. If this was not you, contact support."
            ),
            (Self::ChangePassword, _) => format!(
                "{app}: your password was changed. If you did not do this, contact support now."
            ),
            (Self::PasswordBreach, _) => format!(
                "{app}: your password appeared in a data breach elsewhere. Change it the next time you sign in."
            ),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_has_a_text_without_links_in_each_locale() {
        for notice in [
            Notice::BlockedAccount,
            Notice::ChangePassword,
            Notice::PasswordBreach,
        ] {
            assert_eq!(Notice::parse(notice.as_str()), Some(notice));
            for locale in [Locale::En, Locale::Ja] {
                let text = notice.text(Channel::Sms, locale, "Acme");
                assert!(text.contains("Acme"), "{text}");
                let policy = crate::RelayTextPolicy::default();
                // No host name or link in the service's own words.
                assert_ne!(
                    policy.check_sms(&format!("{text} 1234"), "1234"),
                    Err(crate::TextRefusal::Link),
                    "{text}"
                );
            }
        }
        assert_eq!(Notice::parse("password_reset"), None);
    }
}
