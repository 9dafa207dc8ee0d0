//! Wire names shared by the gateway's own JSON contracts: channels, purposes, numbers.

use axum::http::StatusCode;
use phone_otp::{Channel, PhoneNumber, Purpose};
use serde::Deserialize;

use crate::problem::Problem;

/// `"sms"` (default) or `"voice"`.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Channel)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WireChannel {
    #[default]
    Sms,
    Voice,
}

impl From<WireChannel> for Channel {
    fn from(channel: WireChannel) -> Self {
        match channel {
            WireChannel::Sms => Channel::Sms,
            WireChannel::Voice => Channel::Voice,
        }
    }
}

/// `"sign_in"` (default), `"sign_up"`, `"account_unlock"`, `"password_reset"`,
/// `"transaction_approval"`.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = Purpose)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WirePurpose {
    SignUp,
    #[default]
    SignIn,
    AccountUnlock,
    PasswordReset,
    TransactionApproval,
}

impl From<WirePurpose> for Purpose {
    fn from(purpose: WirePurpose) -> Self {
        match purpose {
            WirePurpose::SignUp => Purpose::SignUp,
            WirePurpose::SignIn => Purpose::SignIn,
            WirePurpose::AccountUnlock => Purpose::AccountUnlock,
            WirePurpose::PasswordReset => Purpose::PasswordReset,
            WirePurpose::TransactionApproval => Purpose::TransactionApproval,
        }
    }
}

/// The one reading of a phone number for every route: with `+`, E.164; without (Okta's
/// samples send `9876543210`, providers' receipts send international digits), national in
/// the default region first, then international digits.
pub(crate) fn number(raw: &str, default_region: Option<&str>) -> Result<PhoneNumber, &'static str> {
    let raw = raw.trim();
    if raw.starts_with('+') {
        return PhoneNumber::parse(raw).map_err(|_| "not a valid phone number");
    }
    if let Some(region) = default_region
        && let Ok(number) = PhoneNumber::parse_with_region(raw, region)
    {
        return Ok(number);
    }
    PhoneNumber::parse(&format!("+{raw}")).map_err(|_| {
        if default_region.is_some() {
            "not a valid phone number in the default region or with a country code"
        } else {
            "not a valid international phone number (no default region is configured)"
        }
    })
}

/// [`number`], refused as 422 `invalid_number`.
pub(crate) fn parse_number(raw: &str, region: Option<&str>) -> Result<PhoneNumber, Problem> {
    number(raw, region)
        .map_err(|reason| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_number", reason))
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_with_and_without_plus() {
        let us = |raw| number(raw, Some("US")).map(|n| n.e164().to_owned());
        assert_eq!(us("+14155550123").as_deref(), Ok("+14155550123"));
        assert_eq!(us("4155550123").as_deref(), Ok("+14155550123"));
        // Not a US number, but valid with its country code.
        assert_eq!(us("819012345678").as_deref(), Ok("+819012345678"));
        assert!(us("12").is_err());
        assert!(number("4155550123", None).is_err());
        assert_eq!(
            number("819012345678", None).map(|n| n.e164().to_owned()),
            Ok("+819012345678".to_owned())
        );
    }
}
