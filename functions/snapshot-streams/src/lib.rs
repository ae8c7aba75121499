//! Snapshots long streams on request (the snapshot queue), with the bank's aggregates.
//! Duplicate and out-of-order requests are harmless (the conditional write keeps the newest);
//! a request that cannot be served is a batch item failure, and after the queue's receive
//! limit it moves to the dead-letter queue.

use std::sync::Arc;

use eventfold::StoreError;
use eventfold::aws::aws_config::SdkConfig;
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoSnapshots};
use eventfold::command::CommandService;
use eventfold::lambda::consumers::SnapshotFunction;
use eventfold::lambda::contract::{Contract, Runtime};

/// What this function needs from the template (checked against it): the snapshot runtime and
/// the key that signs snapshots.
pub const CONTRACT: Contract =
    Contract::new(Runtime::Snapshot).requires(&[eventfold::names::env::SNAPSHOT_KEY_ID]);

/// The snapshot function over DynamoDB, configured from the environment (which [`CONTRACT`]
/// has checked).
pub fn from_config(config: &Config, sdk: &SdkConfig) -> Result<SnapshotFunction, StoreError> {
    let config = &config.clone().with_upcasters(bank::upcasters());
    let client = Client::new(sdk);
    let store = Arc::new(config.event_store(client.clone()));
    let snapshots = Arc::new(DynamoSnapshots::new(client, &config.snapshots_table));
    let key = config
        .snapshot_key(sdk)
        .ok_or_else(|| StoreError::misuse("SNAPSHOT_KEY_ID is not set"))?;
    let commands = CommandService::new(store)
        .with_snapshots(snapshots)
        .with_snapshot_key(Arc::new(key));
    Ok(SnapshotFunction::new(bank::snapshotter(commands)?))
}
