//! The HTTP contract: request bodies, parsed into domain types as they are read (so a body
//! that parses is valid), and the OpenAPI document that describes them.

use eventfold::EntityId;
use serde::{Deserialize, Serialize};

use crate::domain::Name;
use crate::domain::money::{Amount, Currency};
use crate::domain::user::Email;

/// The OpenAPI 3.1 description of the API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `POST /users`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterUser {
    /// The address (normalised as parsed).
    pub email: Email,
    /// The display name.
    pub name: Name,
}

/// `POST /accounts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccount {
    /// Whose account.
    pub owner: Name,
    /// Its currency.
    pub currency: Currency,
}

/// `POST /accounts/{id}/deposits` and `/withdrawals`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveMoney {
    /// How much, in minor units.
    pub amount: Amount,
}

/// `POST /accounts/{id}/standing-orders`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStandingOrder {
    /// The receiving account.
    pub to: EntityId,
    /// How much each run transfers, in minor units.
    pub amount: Amount,
    /// Seconds between runs.
    pub every_seconds: Period,
}

/// Seconds between a standing order's runs: 1 to [`Period::MAX`] (a leap year), any JSON
/// number with that whole value (`60` and `60.0` alike, as JSON Schema's `integer` has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Number", into = "u64")]
pub struct Period(u32);

impl Period {
    /// The longest period, in seconds.
    pub const MAX: u32 = 31_622_400;

    /// The seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl TryFrom<serde_json::Number> for Period {
    type Error = String;

    // The float is checked whole and within 1..=MAX before it is cast: the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn try_from(seconds: serde_json::Number) -> Result<Self, Self::Error> {
        let whole = seconds.as_u64().or_else(|| {
            seconds
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (1.0..=f64::from(Self::MAX)).contains(f))
                .map(|f| f as u64)
        });
        whole
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| (1..=Self::MAX).contains(s))
            .map(Self)
            .ok_or_else(|| {
                format!(
                    "every_seconds is a whole number from 1 to {}, not {seconds}",
                    Self::MAX
                )
            })
    }
}

impl From<Period> for u64 {
    fn from(period: Period) -> Self {
        u64::from(period.0)
    }
}

/// `POST /accounts/{id}/standing-orders/{to}/cancel` (the body, if any, is `{}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelStandingOrder {}

/// `POST /accounts/{id}/close` (the body, if any, is `{}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseAccount {}

/// `DELETE /users/{id}` (the body, if any, is `{}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetUser {}

/// `POST /transfers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferMoney {
    /// The sending account.
    pub from: EntityId,
    /// The receiving account.
    pub to: EntityId,
    /// How much, in minor units.
    pub amount: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_a_whole_number_of_seconds_in_range() {
        for good in ["1", "60", "60.0", "6e1", "31622400"] {
            let period: Period = serde_json::from_str(good).expect(good);
            assert!(period.seconds() >= 1, "{good}");
        }
        for bad in ["0", "-1", "1.5", "31622401", "1e20", "\"60\""] {
            assert!(serde_json::from_str::<Period>(bad).is_err(), "{bad}");
        }
    }
}
