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
use eventfold::names::env;
use eventfold::projection::{
    BatchReport, Projector, ReadModelStore, batch_response, process_stream_batch,
};
use eventfold::store::EventStore;
use lambda_runtime::{Error, LambdaEvent};

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, bank_env::ACCOUNTS_TABLE];

/// The projector, built once per process.
#[derive(Debug)]
pub struct App {
    projector: Projector<AccountsProjection>,
}

impl App {
    /// An app over a read model and the event store it repairs gaps from.
    pub fn new(read_model: Arc<dyn ReadModelStore>, store: Arc<dyn EventStore>) -> Self {
        Self {
            projector: bank::accounts_projector(read_model, store),
        }
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

    /// Processes one batch of stream records.
    pub async fn process(&self, records: &[EventRecord]) -> BatchReport {
        process_stream_batch(&self.projector, records).await
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
