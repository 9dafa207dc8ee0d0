//! `[policy]`: destinations refused beyond the library's defaults.

use phone_otp::{Channel, DestinationPolicy};
use serde::Deserialize;

use super::{ConfigError, invalid};

/// Destination policy additions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Regions refused on every channel.
    #[serde(default)]
    pub deny_countries: Vec<String>,
    /// If set, only these regions are served.
    pub allow_only_countries: Option<Vec<String>>,
}

impl PolicyConfig {
    /// The destination policy the service enforces (the library's defaults plus these).
    pub(super) fn to_policy(&self) -> Result<DestinationPolicy, ConfigError> {
        let mut policy = DestinationPolicy::default();
        for channel in [Channel::Sms, Channel::Voice] {
            for region in &self.deny_countries {
                policy = policy
                    .deny_country(channel, region)
                    .map_err(|e| invalid("policy.deny_countries", e.to_string()))?;
            }
            if let Some(only) = &self.allow_only_countries {
                let only: Vec<&str> = only.iter().map(String::as_str).collect();
                policy = policy
                    .allow_only_countries(channel, &only)
                    .map_err(|e| invalid("policy.allow_only_countries", e.to_string()))?;
            }
        }
        Ok(policy)
    }
}
