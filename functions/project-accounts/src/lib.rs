//! Events stream reader 1: keeps the accounts read model and totals.
//!
//! The library's projector runtime does the work (records of one stream in order, streams
//! concurrently, checkpoints, duplicates, gap repair, the earliest failure reported in
//! `batchItemFailures`); this crate only wires the bank's projection to its table.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use bank::names::env as bank_env;
use bank::read_model::AccountsProjection;
use eventfold::config::Config;
use eventfold::metrics::{Metric, Metrics};
use eventfold::names::env;
use eventfold::projection::{
    BatchReport, Projector, ReadModelStore, ages_millis, batch_response, process_stream_batch,
};
use eventfold::store::EventStore;
use lambda_runtime::{Error, LambdaEvent};

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, bank_env::ACCOUNTS_TABLE];

/// The `Function` dimension of this function's metrics outside Lambda (deployed, it is the
/// function's name).
pub const FUNCTION: &str = "project-accounts";

/// The projector, built once per process.
#[derive(Debug)]
pub struct App {
    projector: Projector<AccountsProjection>,
    metrics: Metrics,
}

impl App {
    /// An app over a read model and the event store it repairs gaps from.
    pub fn new(read_model: Arc<dyn ReadModelStore>, store: Arc<dyn EventStore>) -> Self {
        Self {
            projector: bank::accounts_projector(read_model, store),
            metrics: Metrics::for_lambda(FUNCTION),
        }
    }

    /// The same app, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The app over DynamoDB, configured from the environment.
    pub async fn from_env() -> Result<Self, Error> {
        let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
        Ok(Self::from_config(
            &config,
            aws_sdk_dynamodb::Client::new(&sdk),
        ))
    }

    /// The app over DynamoDB with a client built by the caller.
    pub fn from_config(config: &Config, client: aws_sdk_dynamodb::Client) -> Self {
        let store = Arc::new(config.event_store(client.clone()));
        let table = config.var(bank_env::ACCOUNTS_TABLE).unwrap_or_default();
        Self::new(Arc::new(bank::accounts_read_model(client, table)), store)
    }

    /// The projector (for rebuilds and redrives, which apply events outside a stream batch).
    pub fn projector(&self) -> &Projector<AccountsProjection> {
        &self.projector
    }

    /// Processes one batch of stream records; its metrics record: events projected,
    /// duplicates, each event's lag from its own time, and the records to be retried.
    pub async fn process(&self, records: &[EventRecord]) -> BatchReport {
        let report = process_stream_batch(&self.projector, records).await;
        self.metrics.emit(
            &[],
            &[
                Metric::count("EventsProjected", report.applied + report.repaired),
                Metric::count("DuplicatesIgnored", report.duplicates),
                Metric::count("GapsRepaired", report.repaired),
                Metric::millis("ProjectionLag", ages_millis(records)),
                Metric::count(
                    "BatchItemFailures",
                    usize::from(report.first_failure.is_some()),
                ),
            ],
        );
        report
    }
}

/// The Lambda entry point.
pub async fn handle(
    app: &App,
    event: LambdaEvent<DynamoDbEvent>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = &event.payload.records;
    let report = app.process(records).await;
    Ok(batch_response(records, report.first_failure))
}
