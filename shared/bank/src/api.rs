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

/// Seconds between a standing order's runs: 1 to [`Period::MAX`] (a leap year).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Period(u32);

impl Period {
    /// The longest period, in seconds.
    pub const MAX: u32 = 31_622_400;

    /// The seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for Period {
    type Error = String;

    fn try_from(seconds: u64) -> Result<Self, Self::Error> {
        u32::try_from(seconds)
            .ok()
            .filter(|s| (1..=Self::MAX).contains(s))
            .map(Self)
            .ok_or_else(|| format!("every_seconds is from 1 to {}, not {seconds}", Self::MAX))
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
