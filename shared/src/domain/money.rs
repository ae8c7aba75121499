//! Money: integer minor units and an ISO 4217 currency code. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest amount a single command may move: 10^15 − 1 minor units.
pub const MAX_AMOUNT: i64 = 999_999_999_999_999;

/// A three-letter ISO 4217 currency code (`EUR`, `USD`, …).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// A currency code that is not three capital letters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("currency must be three capital letters (ISO 4217), got {0:?}")]
pub struct InvalidCurrency(pub String);

impl Currency {
    /// Parses a code of exactly three ASCII capital letters.
    pub fn parse(code: &str) -> Result<Self, InvalidCurrency> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(InvalidCurrency(code.chars().take(16).collect())),
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
    type Error = InvalidCurrency;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.as_str().to_owned()
    }
}

/// Whether an amount is one a command may carry: 1 ..= 10^15 − 1.
pub fn is_valid_amount(amount: i64) -> bool {
    (1..=MAX_AMOUNT).contains(&amount)
}
