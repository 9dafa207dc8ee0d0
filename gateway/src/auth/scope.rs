//! What a key or token may do. Each endpoint needs one scope.

use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `POST /v1/messages`.
    MessagesSend,
    /// `POST /v1/challenges` and resend.
    ChallengesStart,
    /// `POST /v1/challenges/{id}/verify`.
    ChallengesVerify,
    /// Okta's telephony hook.
    HooksOkta,
    /// Auth0 Actions.
    HooksAuth0,
    /// The calling system's own usage report.
    UsageRead,
    /// Every system's usage report (an administrator's or finance's scope).
    UsageReadAll,
    /// Managing keys.
    KeysAdmin,
    /// `POST /v1/totp/enroll`, `/confirm` and `/disable`: managing a user's authenticator.
    TotpEnroll,
    /// `POST /v1/totp/verify`: checking an authenticator or recovery code.
    TotpVerify,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 10] = [
        Self::MessagesSend,
        Self::ChallengesStart,
        Self::ChallengesVerify,
        Self::HooksOkta,
        Self::HooksAuth0,
        Self::UsageRead,
        Self::UsageReadAll,
        Self::KeysAdmin,
        Self::TotpEnroll,
        Self::TotpVerify,
    ];

    /// The wire name (`messages:send`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessagesSend => "messages:send",
            Self::ChallengesStart => "challenges:start",
            Self::ChallengesVerify => "challenges:verify",
            Self::HooksOkta => "hooks:okta",
            Self::HooksAuth0 => "hooks:auth0",
            Self::UsageRead => "usage:read",
            Self::UsageReadAll => "usage:read:all",
            Self::KeysAdmin => "keys:admin",
            Self::TotpEnroll => "totp:enroll",
            Self::TotpVerify => "totp:verify",
        }
    }

    /// The inverse of [`Scope::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u16);

impl Scopes {
    /// `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set lets its holder call an endpoint that needs `scope`: it contains it, or
    /// (for `usage:read`) `usage:read:all`, which reads every system's usage and so its own.
    pub fn allows(self, scope: Scope) -> bool {
        self.contains(scope) || (scope == Scope::UsageRead && self.contains(Scope::UsageReadAll))
    }

    /// No scope at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set of `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        scopes
            .iter()
            .fold(Self::default(), |set, scope| set.with(*scope))
    }

    /// Adds `scope`.
    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    /// Reads a space- or comma-separated list (`"messages:send usage:read"`, OAuth's
    /// `scope` claim); `Err` names the first unknown scope.
    ///
    /// # Errors
    /// The first word that is not a scope.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split([' ', ','])
            .filter(|word| !word.is_empty())
            .try_fold(Self::default(), |set, word| {
                Scope::parse(word)
                    .map(|scope| set.with(scope))
                    .ok_or_else(|| word.to_owned())
            })
    }

    /// Like [`Scopes::parse`], ignoring words that are not ours (an IdP's token carries
    /// other APIs' scopes too).
    pub fn parse_lenient(text: &str) -> Self {
        text.split([' ', ','])
            .filter_map(Scope::parse)
            .fold(Self::default(), Self::with)
    }

    /// The scopes, in order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_ones_are_named() {
        let scopes = Scopes::parse("messages:send, usage:read").unwrap_or_default();
        assert!(scopes.contains(Scope::MessagesSend) && scopes.contains(Scope::UsageRead));
        assert!(!scopes.contains(Scope::KeysAdmin));
        assert_eq!(scopes.to_string(), "messages:send usage:read");
        assert_eq!(Scopes::parse(&scopes.to_string()), Ok(scopes));
        assert_eq!(
            Scopes::parse("messages:send admin"),
            Err("admin".to_owned())
        );
        assert_eq!(
            Scopes::parse_lenient("openid read:users hooks:okta"),
            Scopes::default().with(Scope::HooksOkta)
        );
    }

    #[test]
    fn reading_all_usage_is_its_own_scope() {
        let own = Scopes::of(&[Scope::UsageRead]);
        let all = Scopes::parse("usage:read:all").unwrap_or_default();
        assert_eq!(all, Scopes::of(&[Scope::UsageReadAll]));
        assert!(own.allows(Scope::UsageRead) && !own.allows(Scope::UsageReadAll));
        assert!(all.allows(Scope::UsageRead) && all.allows(Scope::UsageReadAll));
        assert!(!all.allows(Scope::MessagesSend));
    }
}
