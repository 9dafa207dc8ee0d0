//! Which destinations may be sent to at all, per channel: toll-fraud geo permissions and
//! number types. The service checks it before charging any limit; a router checks it for
//! sends that did not come through a service (or a policy given to the router itself).

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
        /// The destination's region.
        region: String,
        /// The channel.
        channel: Channel,
    },
    /// The number belongs to no country (`+881` satellite phones, `+870` Inmarsat, other
    /// international services): refused unless its calling code is allowed.
    #[error(
        "{channel} to numbers of calling code +{calling_code}, which belong to no country, is not allowed by policy"
    )]
    NoCountry {
        /// The number's country calling code.
        calling_code: u16,
        /// The channel.
        channel: Channel,
    },
    /// The number's calling code is on the deny list for this channel.
    #[error("{channel} to calling code +{calling_code} is denied by policy")]
    CallingCodeDenied {
        /// The number's country calling code.
        calling_code: u16,
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
    /// Calling codes allowed beside the countries: the only way a number with no country
    /// passes.
    allowed_calling_codes: BTreeSet<u16>,
    denied_calling_codes: BTreeSet<u16>,
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
/// goes to mobile (and fixed-or-mobile) numbers, voice also to fixed lines. Numbers that
/// belong to no country (`+881` Iridium, `+870` Inmarsat: costly, and a toll-fraud
/// favourite) are refused unless their calling code is allowed. No country is denied until
/// you say so.
///
/// ```
/// use phone_otp::{Channel, DestinationPolicy, PhoneNumber};
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

    /// Allows `channel` to every number of a country calling code (e.g. `881` for Iridium),
    /// including numbers that belong to no country. With an allow list of countries, the
    /// calling code is allowed beside them.
    pub fn allow_calling_code(mut self, channel: Channel, calling_code: u16) -> Self {
        let rules = self.rules_mut(channel);
        rules.allowed_calling_codes.insert(calling_code);
        rules.denied_calling_codes.remove(&calling_code);
        self
    }

    /// Refuses `channel` to every number of a country calling code (e.g. `1` covers the
    /// whole North American numbering plan).
    pub fn deny_calling_code(mut self, channel: Channel, calling_code: u16) -> Self {
        let rules = self.rules_mut(channel);
        rules.denied_calling_codes.insert(calling_code);
        rules.allowed_calling_codes.remove(&calling_code);
        self
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
        let calling_code = to.calling_code();
        if rules.denied_calling_codes.contains(&calling_code) {
            return Err(PolicyRefusal::CallingCodeDenied {
                calling_code,
                channel,
            });
        }
        let code_allowed = rules.allowed_calling_codes.contains(&calling_code);
        let Some(region) = to.region() else {
            if code_allowed {
                return self.check_number_type(rules, to, channel);
            }
            return Err(PolicyRefusal::NoCountry {
                calling_code,
                channel,
            });
        };
        if rules.denied_countries.contains(&region) {
            return Err(PolicyRefusal::CountryDenied {
                region: region.to_string(),
                channel,
            });
        }
        if let Some(allowed) = &rules.allowed_countries
            && !allowed.contains(&region)
            && !code_allowed
        {
            return Err(PolicyRefusal::CountryNotAllowed {
                region: region.to_string(),
                channel,
            });
        }
        self.check_number_type(rules, to, channel)
    }

    fn check_number_type(
        &self,
        rules: &ChannelRules,
        to: &PhoneNumber,
        channel: Channel,
    ) -> Result<(), PolicyRefusal> {
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
