//! Wire names shared by the gateway's own JSON contracts: channels, purposes, numbers.

use axum::http::StatusCode;
use phone_otp::{Channel, PhoneNumber, Purpose};
use serde::Deserialize;

use crate::problem::Problem;

/// `"sms"` (default) or `"voice"`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, Deserialize)]
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

/// A number in E.164, or national in the default region.
pub(crate) fn parse_number(raw: &str, region: Option<&str>) -> Result<PhoneNumber, Problem> {
    let parsed = match region {
        Some(region) if !raw.trim_start().starts_with('+') => {
            PhoneNumber::parse_with_region(raw, region)
        }
        _ => PhoneNumber::parse(raw),
    };
    parsed.map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_number",
            format!("not a valid phone number: {e}"),
        )
    })
}
