//! Which destinations may be sent to at all, per channel: toll-fraud geo permissions and
//! number types.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use thiserror::Error;

use crate::message::Channel;
use crate::phone::{NumberType, PhoneNumber, Region};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// The country is on the deny list for this channel.
    #[error("{channel} to region {region} is denied by policy")]
    CountryDenied {
        /// The destination's region.
        region: String,
        /// The channel.
        channel: Channel,
    },
    /// An allow list is set for this channel and the country is not on it.
    #[error("{channel} to region {region} is not in the allowed countries")]
    CountryNotAllowed {
        /// The destination's region (`"001"` for non-geographic numbers).
        region: String,
        /// The channel.
        channel: Channel,
    },
    /// This kind of number may not receive this channel.
    #[error("{channel} to {number_type} numbers is not allowed by policy")]
    NumberType {
        /// The number's type.
        number_type: NumberType,
        /// The channel.
        channel: Channel,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ChannelRules {
    number_types: BTreeSet<NumberTypeKey>,
    allowed_countries: Option<BTreeSet<Region>>,
    denied_countries: BTreeSet<Region>,
}

/// `NumberType` ordered for a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct NumberTypeKey(&'static str);

impl From<NumberType> for NumberTypeKey {
    fn from(kind: NumberType) -> Self {
        Self(kind.as_str())
    }
}

/// Where codes may go, checked before any quota is spent or any provider is called.
///
/// The default blocks premium-rate, shared-cost, toll-free, VoIP and unknown numbers: SMS
/// goes to mobile (and fixed-or-mobile) numbers, voice also to fixed lines. No country is
/// denied until you say so.
///
/// ```
/// use phone_otp::{Channel, DestinationPolicy, NumberType, PhoneNumber};
///
/// let policy = DestinationPolicy::default().deny_country(Channel::Sms, "KP")?;
/// let landline = PhoneNumber::parse("+81312345678")?;
/// assert!(policy.check(&landline, Channel::Sms).is_err());
/// assert!(policy.check(&landline, Channel::Voice).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPolicy {
    rules: HashMap<Channel, ChannelRules>,
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        let mobile = [NumberType::Mobile, NumberType::FixedLineOrMobile];
        let sms = ChannelRules {
            number_types: mobile.into_iter().map(Into::into).collect(),
            ..ChannelRules::default()
        };
        let voice = ChannelRules {
            number_types: mobile
                .into_iter()
                .chain([NumberType::FixedLine])
                .map(Into::into)
                .collect(),
            ..ChannelRules::default()
        };
        Self {
            rules: HashMap::from([(Channel::Sms, sms), (Channel::Voice, voice)]),
        }
    }
}

impl DestinationPolicy {
    /// Lets `number_type` receive `channel` (e.g. VoIP numbers by SMS).
    pub fn allow_number_type(mut self, channel: Channel, number_type: NumberType) -> Self {
        self.rules_mut(channel)
            .number_types
            .insert(number_type.into());
        self
    }

    /// Stops `number_type` from receiving `channel`.
    pub fn block_number_type(mut self, channel: Channel, number_type: NumberType) -> Self {
        self.rules_mut(channel)
            .number_types
            .remove(&number_type.into());
        self
    }

    /// Refuses `channel` to a country (ISO code).
    ///
    /// # Errors
    /// An unknown region code.
    pub fn deny_country(
        mut self,
        channel: Channel,
        region: &str,
    ) -> Result<Self, crate::ParsePhoneError> {
        let region = Region::new(region)?;
        self.rules_mut(channel).denied_countries.insert(region);
        Ok(self)
    }

    /// Allows `channel` only to the listed countries (added to any earlier allow list).
    ///
    /// # Errors
    /// An unknown region code.
    pub fn allow_only_countries(
        mut self,
        channel: Channel,
        regions: &[&str],
    ) -> Result<Self, crate::ParsePhoneError> {
        let parsed = regions
            .iter()
            .map(|code| Region::new(code))
            .collect::<Result<BTreeSet<_>, _>>()?;
        self.rules_mut(channel)
            .allowed_countries
            .get_or_insert_with(BTreeSet::new)
            .extend(parsed);
        Ok(self)
    }

    fn rules_mut(&mut self, channel: Channel) -> &mut ChannelRules {
        self.rules.entry(channel).or_default()
    }

    /// Whether `to` may receive `channel`.
    ///
    /// # Errors
    /// A [`PolicyRefusal`] saying why not.
    pub fn check(&self, to: &PhoneNumber, channel: Channel) -> Result<(), PolicyRefusal> {
        let Some(rules) = self.rules.get(&channel) else {
            return Err(PolicyRefusal::NumberType {
                number_type: to.number_type(),
                channel,
            });
        };
        let region_label = to
            .region()
            .map_or_else(|| "001".to_owned(), |r| r.to_string());
        if let Some(region) = to.region()
            && rules.denied_countries.contains(&region)
        {
            return Err(PolicyRefusal::CountryDenied {
                region: region_label,
                channel,
            });
        }
        if let Some(allowed) = &rules.allowed_countries
            && !to.region().is_some_and(|region| allowed.contains(&region))
        {
            return Err(PolicyRefusal::CountryNotAllowed {
                region: region_label,
                channel,
            });
        }
        if !rules.number_types.contains(&to.number_type().into()) {
            return Err(PolicyRefusal::NumberType {
                number_type: to.number_type(),
                channel,
            });
        }
        Ok(())
    }
}

impl fmt::Display for NumberTypeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
