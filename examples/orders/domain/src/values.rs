//! Values parsed once, where input arrives: a value of these types is valid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

/// A stock-keeping unit: 1-32 of `A-Z`, `0-9` and `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "a SKU is 1-32 of A-Z, 0-9 and -, not {text:?}"
            )))
        }
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sku({})", self.0)
    }
}

impl TryFrom<String> for Sku {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Sku> for String {
    fn from(sku: Sku) -> Self {
        sku.0
    }
}

/// How many of an item one command adds: 1 to 1,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// Parses a quantity.
    pub fn new(n: u32) -> Result<Self, InvalidValue> {
        if (1..=1_000).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidValue(format!("a quantity is 1 to 1000, not {n}")))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = InvalidValue;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> Self {
        quantity.0
    }
}

/// A price or a payment in cents: 1 to 10^12 − 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Cents(u64);

impl Cents {
    /// Parses an amount of cents.
    pub fn new(n: u64) -> Result<Self, InvalidValue> {
        if (1..1_000_000_000_000).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidValue(format!(
                "an amount is 1 to 10^12 - 1 cents, not {n}"
            )))
        }
    }

    /// The number of cents.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Cents {
    type Error = InvalidValue;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<Cents> for u64 {
    fn from(cents: Cents) -> Self {
        cents.0
    }
}
