//! Snapshots long streams on request (the snapshot queue): the library's
//! [`Snapshotter`](eventfold::snapshot::Snapshotter) with the bank's aggregates. Duplicate and
//! out-of-order requests are harmless (the conditional write keeps the newest); a request that
//! cannot be served is a batch item failure, and after the queue's receive limit it moves to
//! the dead-letter queue.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_lambda_events::streams::SqsEventResponse;
use eventfold::command::CommandService;
use eventfold::config::Config;
use eventfold::metrics::{Metric, Metrics};
use eventfold::names::env;
use eventfold::snapshot::{DynamoSnapshots, SnapshotStore, Snapshotter};
use eventfold::store::EventStore;
use lambda_runtime::{Error, LambdaEvent};

/// The `Function` dimension of this function's metrics outside Lambda (deployed, it is the
/// function's name).
pub const FUNCTION: &str = "snapshot-streams";

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE];

/// The snapshotter over a store and a snapshot store.
pub fn snapshotter(store: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore>) -> Snapshotter {
    bank::snapshotter(CommandService::new(store).with_snapshots(snapshots))
}

/// The app configured from the environment.
pub async fn from_env() -> Result<App, Error> {
    let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
    Ok(from_config(&config, aws_sdk_dynamodb::Client::new(&sdk)))
}

/// The app over DynamoDB with a client built by the caller.
pub fn from_config(config: &Config, client: aws_sdk_dynamodb::Client) -> App {
    let store = Arc::new(config.event_store(client.clone()));
    App::new(snapshotter(
        store,
        Arc::new(DynamoSnapshots::new(client, &config.snapshots_table)),
    ))
}

/// The snapshotter and its metrics, built once per process.
#[derive(Debug, Clone)]
pub struct App {
    snapshotter: Snapshotter,
    metrics: Metrics,
}

impl App {
    /// An app over a snapshotter, its metrics on standard output.
    pub fn new(snapshotter: Snapshotter) -> Self {
        Self {
            snapshotter,
            metrics: Metrics::for_lambda(FUNCTION),
        }
    }

    /// The same app, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Serves one batch of snapshot requests; its metrics record: snapshots written, requests
    /// already current, and requests that failed (bound for the dead-letter queue).
    pub async fn process(&self, messages: &[SqsMessage]) -> SqsEventResponse {
        let (response, report) = self.snapshotter.process_batch(messages).await;
        self.metrics.emit(
            &[],
            &[
                Metric::count("SnapshotsWritten", report.written),
                Metric::count("SnapshotsCurrent", report.up_to_date),
                Metric::count("SnapshotRequestsFailed", report.failed),
            ],
        );
        response
    }
}

/// The Lambda entry point.
pub async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsEventResponse, Error> {
    Ok(app.process(&event.payload.records).await)
}
