//! Events stream reader 1: keeps the accounts read model and totals, on the library's
//! projector runtime (records of one stream in order, streams concurrently, checkpoints,
//! duplicates, gap repair; a stream whose event cannot be applied parked in the feed's table,
//! any other failure reported in `batchItemFailures`).

use std::sync::Arc;

use bank::names::{accounts, env as bank_env};
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoReadModel};
use eventfold::lambda::consumers::ProjectorFunction;
use eventfold::lambda::contract::{Contract, Runtime};

/// What this function needs from the template (checked against it).
pub const CONTRACT: Contract =
    Contract::new(Runtime::Projector).read_models(&[bank_env::ACCOUNTS_TABLE]);

/// The accounts projector over DynamoDB, configured from the environment.
pub fn from_config(config: &Config, client: Client) -> ProjectorFunction {
    let config = &config.clone().with_upcasters(bank::upcasters());
    let store = Arc::new(config.event_store(client.clone()));
    let table = config.var(bank_env::ACCOUNTS_TABLE).unwrap_or_default();
    let read_model = Arc::new(DynamoReadModel::new(
        client.clone(),
        table,
        accounts::ACCOUNT_ID,
    ));
    ProjectorFunction::new(vec![Arc::new(bank::accounts_projector(read_model, store))])
        .parking_in(config, client)
}
