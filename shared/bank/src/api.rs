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
