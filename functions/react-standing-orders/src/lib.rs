//! Runs standing orders: the bank's standing-orders reactor, following the global feed for
//! standing orders set and cancelled, and firing their timers, each run a transfer sent with an
//! id derived from the run's timer (so a run fired twice transfers once).

use std::sync::Arc;

use bank::standing::StandingOrders;
use eventfold::StoreError;
use eventfold::aws::aws_config::SdkConfig;
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoSnapshots};
use eventfold::command::CommandService;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::lambda::feed_consumer::FeedConsumerFunction;

/// What this function needs from the template (checked against it): the reactor runtime, and
/// the key that proves snapshots (the accounts it loads may have them).
pub const CONTRACT: Contract =
    Contract::new(Runtime::Reactor).requires(&[eventfold::names::env::SNAPSHOT_KEY_ID]);

/// The reactor's function over DynamoDB, configured from the environment (which [`CONTRACT`]
/// has checked).
pub fn from_config(config: &Config, sdk: &SdkConfig) -> Result<FeedConsumerFunction, StoreError> {
    let config = &config.clone().with_upcasters(bank::upcasters());
    let client = Client::new(sdk);
    let store = Arc::new(
        config
            .event_store(client.clone())
            .with_commands_table(&config.commands_table),
    );
    let snapshots = Arc::new(DynamoSnapshots::new(
        client.clone(),
        &config.snapshots_table,
    ));
    let key = config
        .snapshot_key(sdk)
        .ok_or_else(|| StoreError::misuse("SNAPSHOT_KEY_ID is not set"))?;
    let commands = CommandService::new(store)
        .with_snapshots(snapshots)
        .with_snapshot_key(Arc::new(key));
    FeedConsumerFunction::reactor_from_config(config, client, Arc::new(StandingOrders), commands)
}
