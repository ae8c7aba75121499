//! Money: integer minor units and an ISO 4217 currency code. Never floats.
//!
//! [`Amount`] and [`Currency`] are parsed once, where input arrives (a request body, a stored
//! event): a value of either type is valid, so `decide` checks business rules only.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::InvalidValue;

/// The largest amount a single command may move: 10^15 − 1 minor units.
pub const MAX_AMOUNT: i64 = 999_999_999_999_999;

/// A three-letter ISO 4217 currency code (`EUR`, `USD`, …).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a code of exactly three ASCII capital letters.
    pub fn parse(code: &str) -> Result<Self, InvalidValue> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(InvalidValue(format!(
                "currency must be three capital letters (ISO 4217), got {:?}",
                code.chars().take(16).collect::<String>()
            ))),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII capitals are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidValue;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.as_str().to_owned()
    }
}

/// An amount a command may move: 1 ..= 10^15 − 1 minor units.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// Parses an amount in minor units.
    pub fn new(minor_units: i64) -> Result<Self, InvalidValue> {
        if (1..=MAX_AMOUNT).contains(&minor_units) {
            Ok(Self(minor_units))
        } else {
            Err(InvalidValue(format!(
                "amount must be an integer from 1 to {MAX_AMOUNT} minor units, got {minor_units}"
            )))
        }
    }

    /// The amount in minor units.
    pub fn minor_units(self) -> i64 {
        self.0
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// The largest integer an IEEE double holds exactly (2^53).
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

impl<'de> Deserialize<'de> for Amount {
    /// A JSON integer, or a number with no fractional part (`1200.0`, `1.2e3`), which JSON
    /// Schema also counts as an integer: what the OpenAPI document allows, the API takes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MinorUnits;

        impl serde::de::Visitor<'_> for MinorUnits {
            type Value = i64;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer number of minor units")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            #[allow(clippy::cast_possible_truncation)]
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
                if v.fract() == 0.0 && v.abs() <= EXACT_IN_F64 {
                    Ok(v as i64) // exact: integral and within f64's exact integers
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }

        let units = deserializer.deserialize_any(MinorUnits)?;
        Self::new(units).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_positive_and_bounded() {
        for bad in [0, -1, i64::MIN, MAX_AMOUNT + 1] {
            assert!(Amount::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Amount::new(MAX_AMOUNT).map(Amount::minor_units),
            Ok(MAX_AMOUNT)
        );
    }

    #[test]
    fn whole_numbers_in_any_notation_are_amounts() {
        for (text, units) in [("1250", 1250), ("1200.0", 1200), ("1.2e3", 1200)] {
            let amount: Amount = serde_json::from_str(text).expect(text);
            assert_eq!(amount.minor_units(), units);
        }
        for bad in ["12.5", "0", "-3", "\"5\"", "1e300", "null"] {
            assert!(serde_json::from_str::<Amount>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_are_three_capitals() {
        assert_eq!(
            Currency::parse("EUR").map(|c| c.to_string()),
            Ok("EUR".into())
        );
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
