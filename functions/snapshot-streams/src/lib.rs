//! Snapshots long streams on request (the snapshot queue): the library's
//! [`Snapshotter`](eventfold::snapshot::Snapshotter) with the bank's aggregates. Duplicate and
//! out-of-order requests are harmless (the conditional write keeps the newest); a request that
//! cannot be served is a batch item failure, and after the queue's receive limit it moves to
//! the dead-letter queue.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::SqsEventResponse;
use eventfold::command::CommandService;
use eventfold::config::Config;
use eventfold::names::env;
use eventfold::snapshot::{DynamoSnapshots, SnapshotStore, Snapshotter};
use eventfold::store::EventStore;
use lambda_runtime::{Error, LambdaEvent};

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE];

/// The snapshotter over a store and a snapshot store.
pub fn snapshotter(store: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore>) -> Snapshotter {
    bank::snapshotter(CommandService::new(store).with_snapshots(snapshots))
}

/// The snapshotter configured from the environment.
pub async fn from_env() -> Result<Snapshotter, Error> {
    let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
    Ok(from_config(&config, aws_sdk_dynamodb::Client::new(&sdk)))
}

/// The snapshotter over DynamoDB with a client built by the caller.
pub fn from_config(config: &Config, client: aws_sdk_dynamodb::Client) -> Snapshotter {
    let store = Arc::new(config.event_store(client.clone()));
    snapshotter(
        store,
        Arc::new(DynamoSnapshots::new(client, &config.snapshots_table)),
    )
}

/// The Lambda entry point.
pub async fn handle(
    snapshotter: &Snapshotter,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsEventResponse, Error> {
    Ok(snapshotter.process_batch(&event.payload.records).await)
}
