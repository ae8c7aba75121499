//! The reference application on eventfold: bank accounts and users.
//!
//! Everything here is domain or the domain's contract with the outside: the aggregates
//! ([`domain`]), the service with one method per command ([`service`]), the accounts read model
//! as a projection ([`read_model`]), the bank's problem types ([`problems`]), the HTTP request
//! bodies and OpenAPI document ([`api`]), and its table and environment names ([`names`]).
//! Storage, retries, idempotency, projection mechanics and HTTP plumbing are the library's.

pub mod api;
pub mod domain;
pub mod names;
pub mod problems;
pub mod read_model;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use eventfold::aggregate::Aggregate;
use eventfold::command::CommandService;
use eventfold::projection::{DynamoReadModel, Projector};
use eventfold::snapshot::Snapshotter;
use eventfold::store::EventStore;

use crate::domain::account::Account;
use crate::domain::user::User;
use crate::read_model::AccountsProjection;

/// The snapshotter for the bank's aggregates, by category.
pub fn snapshotter(commands: CommandService) -> Snapshotter {
    Snapshotter::new(commands)
        .register::<Account>()
        .register::<User>()
}

/// The categories whose streams get snapshots.
pub fn snapshot_categories() -> [&'static str; 2] {
    [Account::CATEGORY, User::CATEGORY]
}

/// The accounts read model on its table.
pub fn accounts_read_model(client: aws_sdk_dynamodb::Client, table: &str) -> DynamoReadModel {
    DynamoReadModel::new(client, table, names::accounts::ACCOUNT_ID)
}

/// The accounts projector over a read model, repairing gaps from `store`.
pub fn accounts_projector(
    read_model: Arc<dyn eventfold::projection::ReadModelStore>,
    store: Arc<dyn EventStore>,
) -> Projector<AccountsProjection> {
    Projector::new(AccountsProjection, read_model, store)
}
