//! What a send costs: a price per SMS segment and per voice call, by provider and
//! destination country, so usage can be reported (and, later, budgeted) in money.
//!
//! Prices are held in millionths of the currency unit: sums of many sends stay exact.

use std::fmt;

use crate::message::Channel;

/// An amount in millionths of a currency unit (`7_900` micro-USD is 0.0079 USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub u64);

impl Micros {
    /// From a decimal amount (`0.0079`), rounded to the nearest millionth; `None` for a
    /// negative, non-finite or absurdly large amount.
    pub fn from_decimal(amount: f64) -> Option<Self> {
        let micros = (amount * 1_000_000.0).round();
        // In range and integral, so the conversion is exact.
        (amount.is_finite() && (0.0..=1.0e15).contains(&micros)).then_some(Self(micros as u64))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// One rate: a provider (or `*`) to a country (ISO region, or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Rate {
    /// Provider name (`twilio`), or `*` for any.
    pub provider: String,
    /// ISO region (`JP`), `001` for numbers of no country, or `*` for any.
    pub country: String,
    /// Price of one SMS segment, if this rate covers SMS.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "decimal"))]
    pub sms: Option<Micros>,
    /// Price of one voice call, if this rate covers voice.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "decimal"))]
    pub voice: Option<Micros>,
}

/// Prices by provider, country and channel, in one currency.
///
/// The most specific rate wins: provider and country, then provider and any country,
/// then any provider and the country, then any and any.
///
/// ```
/// use phone_otp::{Channel, Micros, PriceTable, Rate};
///
/// let prices = PriceTable::new("USD")
///     .with(Rate { provider: "twilio".into(), country: "US".into(),
///                  sms: Micros::from_decimal(0.0079), voice: Micros::from_decimal(0.014) })
///     .with(Rate { provider: "*".into(), country: "*".into(),
///                  sms: Micros::from_decimal(0.05), voice: None });
/// assert_eq!(prices.cost("twilio", Some("US"), Channel::Sms, 2), Some(Micros(15_800)));
/// assert_eq!(prices.cost("smslink", Some("JP"), Channel::Sms, 1), Some(Micros(50_000)));
/// assert_eq!(prices.cost("smslink", Some("JP"), Channel::Voice, 1), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PriceTable {
    /// ISO 4217 code of every price (`USD`, `JPY`).
    pub currency: String,
    /// The rates.
    #[cfg_attr(feature = "serde", serde(default))]
    pub rates: Vec<Rate>,
}

impl PriceTable {
    /// An empty table in `currency`.
    pub fn new(currency: impl Into<String>) -> Self {
        Self {
            currency: currency.into(),
            rates: Vec::new(),
        }
    }

    /// Adds a rate.
    pub fn with(mut self, rate: Rate) -> Self {
        self.rates.push(rate);
        self
    }

    /// The price of one unit (an SMS segment or a call) by `provider` to `country`.
    pub fn unit_price(
        &self,
        provider: &str,
        country: Option<&str>,
        channel: Channel,
    ) -> Option<Micros> {
        let country = country.unwrap_or("001");
        let matches = |rate: &&Rate, p: bool, c: bool| {
            (if p {
                rate.provider == provider
            } else {
                rate.provider == "*"
            }) && (if c {
                rate.country == country
            } else {
                rate.country == "*"
            })
        };
        let price = |rate: &Rate| match channel {
            Channel::Voice => rate.voice,
            _ => rate.sms,
        };
        [(true, true), (true, false), (false, true), (false, false)]
            .into_iter()
            .find_map(|(p, c)| {
                self.rates
                    .iter()
                    .filter(|rate| matches(rate, p, c))
                    .find_map(price)
            })
    }

    /// What a send costs: `units` SMS segments, or calls. `None` when no rate covers it.
    pub fn cost(
        &self,
        provider: &str,
        country: Option<&str>,
        channel: Channel,
        units: u64,
    ) -> Option<Micros> {
        self.unit_price(provider, country, channel)
            .map(|unit| Micros(unit.0.saturating_mul(units)))
    }
}

#[cfg(feature = "serde")]
fn decimal<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Micros>, D::Error> {
    use serde::Deserialize as _;
    match Option::<f64>::deserialize(deserializer)? {
        None => Ok(None),
        Some(amount) => Micros::from_decimal(amount)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("a price must be a non-negative amount")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(provider: &str, country: &str, sms: f64) -> Rate {
        Rate {
            provider: provider.into(),
            country: country.into(),
            sms: Micros::from_decimal(sms),
            voice: None,
        }
    }

    #[test]
    fn the_most_specific_rate_wins() {
        let table = PriceTable::new("USD")
            .with(rate("*", "*", 0.05))
            .with(rate("*", "JP", 0.07))
            .with(rate("twilio", "*", 0.01))
            .with(rate("twilio", "JP", 0.08));
        let sms = |p, c| table.unit_price(p, Some(c), Channel::Sms);
        assert_eq!(sms("twilio", "JP"), Some(Micros(80_000)));
        assert_eq!(sms("twilio", "US"), Some(Micros(10_000)));
        assert_eq!(sms("smslink", "JP"), Some(Micros(70_000)));
        assert_eq!(sms("smslink", "US"), Some(Micros(50_000)));
        assert_eq!(
            table.cost("twilio", Some("JP"), Channel::Sms, 3),
            Some(Micros(240_000))
        );
        assert_eq!(table.cost("twilio", Some("JP"), Channel::Voice, 1), None);
        assert_eq!(
            PriceTable::new("USD").cost("twilio", None, Channel::Sms, 1),
            None
        );
    }

    #[test]
    fn decimal_amounts_round_to_millionths() {
        assert_eq!(Micros::from_decimal(0.0079), Some(Micros(7_900)));
        assert_eq!(Micros::from_decimal(1.5), Some(Micros(1_500_000)));
        assert_eq!(Micros::from_decimal(-0.01), None);
        assert_eq!(Micros::from_decimal(f64::NAN), None);
        assert_eq!(Micros(15_800).to_string(), "0.015800");
    }
}
