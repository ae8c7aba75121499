//! The reference application on eventfold: bank accounts and users.
//!
//! Everything here is domain or the domain's contract with the outside: the aggregates
//! ([`domain`]), the service with one method per command ([`service`]), the accounts read model
//! as a projection ([`read_model`]), the bank's problem types ([`problems`]), the HTTP request
//! bodies and OpenAPI document ([`api`]), and its table and environment names ([`names`]).
//! Storage, retries, idempotency, projection mechanics and HTTP plumbing are the library's; this
//! crate depends on its core alone, so nothing here can reach AWS.

pub mod access;
pub mod api;
pub mod domain;
pub mod names;
pub mod problems;
pub mod read_model;
pub mod service;
pub mod standing;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use eventfold::command::CommandService;
use eventfold::projection::{Projector, ReadModelStore};
use eventfold::snapshot::Snapshotter;
use eventfold::store::EventStore;
use eventfold::{Aggregate, StoreError};

use crate::domain::account::Account;
use crate::domain::user::User;
use crate::read_model::AccountsProjection;
pub use crate::service::upcasters;

/// The snapshotter for the bank's aggregates, by category (`commands` needs a snapshot store).
pub fn snapshotter(commands: CommandService) -> Result<Snapshotter, StoreError> {
    Ok(Snapshotter::new(commands)?
        .register::<Account>()
        .register::<User>())
}

/// The categories whose streams get snapshots.
pub fn snapshot_categories() -> [&'static str; 2] {
    [Account::CATEGORY, User::CATEGORY]
}

/// The accounts projector over a read model, repairing gaps from `store`.
pub fn accounts_projector(
    read_model: Arc<dyn ReadModelStore>,
    store: Arc<dyn EventStore>,
) -> Projector<AccountsProjection> {
    Projector::new(AccountsProjection, read_model, store)
}
