//! Events stream reader 1: keeps the accounts read model and totals.
//!
//! Records of one stream are applied in order; different streams concurrently. Non-INSERT
//! records and events this projection does not know are skipped and counted. If a record
//! fails, the response names it in `batchItemFailures` (the earliest failure in the batch), so
//! Lambda retries from there; everything before it is done, and anything after it that was
//! applied is a harmless duplicate on retry.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use eventfold::config::Config;
use eventfold::envelope::RecordedEvent;
use eventfold::names::env;
use eventfold::projection::accounts::{
    AccountsProjector, AccountsReadModel, DynamoAccounts, Projected,
};
use eventfold::projection::{StreamRecord, batch_response, decode_stream_record};
use eventfold::store::EventStore;
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};

/// Streams processed at once within a batch.
const STREAM_CONCURRENCY: usize = 16;

/// What a batch did, for the log line and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub applied: usize,
    pub duplicates: usize,
    pub repaired: usize,
    pub skipped: usize,
    pub ignored: usize,
    /// Index of the earliest record that failed.
    pub first_failure: Option<usize>,
}

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::ACCOUNTS_TABLE];

/// The projector, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    projector: AccountsProjector,
    store: Arc<dyn EventStore>,
}

impl App {
    /// An app over a read model and the event store it repairs gaps from.
    pub fn new(read_model: Arc<dyn AccountsReadModel>, store: Arc<dyn EventStore>) -> Self {
        Self {
            projector: AccountsProjector::new(read_model, store.clone()),
            store,
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
        Self::new(
            Arc::new(DynamoAccounts::new(client, &config.accounts_table)),
            store,
        )
    }

    /// The projector (for rebuilds and redrives, which apply events outside a stream batch).
    pub fn projector(&self) -> &AccountsProjector {
        &self.projector
    }

    /// Processes one batch of stream records.
    pub async fn process(&self, records: &[EventRecord]) -> BatchReport {
        let mut report = BatchReport::default();
        let mut by_stream: BTreeMap<String, Vec<(usize, RecordedEvent)>> = BTreeMap::new();
        let upcasters = &self.store.settings().upcasters;
        for (index, record) in records.iter().enumerate() {
            match decode_stream_record(record, upcasters) {
                Ok(StreamRecord::Appended(event)) => by_stream
                    .entry(event.stream_id.to_string())
                    .or_default()
                    .push((index, *event)),
                Ok(StreamRecord::Ignored(kind)) => {
                    tracing::debug!(index, kind, "ignored record");
                    report.ignored += 1;
                }
                Err(error) => {
                    tracing::error!(index, %error, "record does not decode");
                    report.first_failure =
                        Some(report.first_failure.map_or(index, |f| f.min(index)));
                }
            }
        }
        let results: Vec<_> = futures::stream::iter(by_stream.into_values())
            .map(|events| self.project_stream(events))
            .buffer_unordered(STREAM_CONCURRENCY)
            .collect()
            .await;
        for (outcomes, failure) in results {
            for outcome in outcomes {
                match outcome {
                    Projected::Applied => report.applied += 1,
                    Projected::Duplicate => report.duplicates += 1,
                    Projected::Repaired { .. } => report.repaired += 1,
                    Projected::Skipped(reason) => {
                        tracing::info!(%reason, "skipped event");
                        report.skipped += 1;
                    }
                }
            }
            if let Some(index) = failure {
                report.first_failure = Some(report.first_failure.map_or(index, |f| f.min(index)));
            }
        }
        tracing::info!(
            records = records.len(),
            applied = report.applied,
            duplicates = report.duplicates,
            repaired = report.repaired,
            skipped = report.skipped,
            ignored = report.ignored,
            failed_at = ?report.first_failure,
            "batch projected"
        );
        report
    }

    /// One stream's events in order, stopping at the first failure.
    async fn project_stream(
        &self,
        events: Vec<(usize, RecordedEvent)>,
    ) -> (Vec<Projected>, Option<usize>) {
        let mut outcomes = Vec::with_capacity(events.len());
        for (index, event) in events {
            match self.projector.project(&event).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    tracing::error!(index, stream_id = %event.stream_id, version = event.version, %error,
                        "projection failed");
                    return (outcomes, Some(index));
                }
            }
        }
        (outcomes, None)
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
