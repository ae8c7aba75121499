//! Events stream reader 2: the seeds' "subscribe".
//!
//! Every event goes to an SQS FIFO queue (group = stream id, so subscribers see each stream in
//! order; deduplication id = event id, so a redelivered record is not published twice), ten
//! per `SendMessageBatch`. Each event flagged snapshot-due also goes to the snapshot queue.
//! A record whose message is not accepted is reported in `batchItemFailures` (the earliest
//! one), and Lambda retries from there; deduplication makes the re-sends harmless.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use eventfold::config::Config;
use eventfold::error::{StoreError, from_sdk};
use eventfold::names::env;
use eventfold::projection::{StreamRecord, batch_response, decode_stream_record};
pub use eventfold::snapshot::SnapshotRequest;
use eventfold::{RecordedEvent, Upcasters};
use lambda_runtime::{Error, LambdaEvent};

/// SQS's limit on entries per `SendMessageBatch`.
pub const SQS_BATCH: usize = 10;

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub published: usize,
    pub snapshot_requests: usize,
    pub ignored: usize,
    pub first_failure: Option<usize>,
}

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_QUEUE_URL, env::SNAPSHOT_QUEUE_URL];

/// The publisher, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    sqs: Client,
    events_queue_url: String,
    snapshot_queue_url: String,
    upcasters: Upcasters,
}

impl App {
    /// A publisher to the given queues. Events are published as stored (not upcast).
    pub fn new(
        sqs: Client,
        events_queue_url: impl Into<String>,
        snapshot_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            events_queue_url: events_queue_url.into(),
            snapshot_queue_url: snapshot_queue_url.into(),
            upcasters: Upcasters::new(),
        }
    }

    /// The app configured from the environment.
    pub async fn from_env() -> Result<Self, Error> {
        let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
        Ok(Self::from_config(&config, Client::new(&sdk)))
    }

    /// The app with a client built by the caller.
    pub fn from_config(config: &Config, sqs: Client) -> Self {
        Self::new(sqs, &config.events_queue_url, &config.snapshot_queue_url)
    }

    /// Publishes one batch of stream records.
    pub async fn process(&self, records: &[EventRecord]) -> PublishReport {
        let mut report = PublishReport::default();
        let mut events: Vec<(usize, RecordedEvent)> = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match decode_stream_record(record, &self.upcasters) {
                Ok(StreamRecord::Appended(event)) => events.push((index, *event)),
                Ok(StreamRecord::Ignored(_)) => report.ignored += 1,
                Err(error) => {
                    tracing::error!(index, %error, "record does not decode");
                    report.first_failure = Some(index);
                    // Nothing after a poison record is sent: FIFO order must not skip it.
                    break;
                }
            }
        }
        if let Some(poison) = report.first_failure {
            events.retain(|(index, _)| *index < poison);
        }
        for chunk in events.chunks(SQS_BATCH) {
            match self.publish(chunk).await {
                Ok(()) => report.published += chunk.len(),
                Err((failed_index, error)) => {
                    tracing::error!(index = failed_index, %error, "publishing failed");
                    report.first_failure = Some(
                        report
                            .first_failure
                            .map_or(failed_index, |f| f.min(failed_index)),
                    );
                    return report;
                }
            }
            let due: Vec<_> = chunk.iter().filter(|(_, e)| e.snapshot_due).collect();
            for (index, event) in due {
                if let Err(error) = self.request_snapshot(event).await {
                    tracing::error!(index, %error, "snapshot request failed");
                    report.first_failure =
                        Some(report.first_failure.map_or(*index, |f| f.min(*index)));
                    return report;
                }
                report.snapshot_requests += 1;
            }
        }
        tracing::info!(
            records = records.len(),
            published = report.published,
            snapshot_requests = report.snapshot_requests,
            ignored = report.ignored,
            failed_at = ?report.first_failure,
            "batch published"
        );
        report
    }

    /// Sends up to ten events; on failure, the index of the earliest event not accepted.
    async fn publish(&self, chunk: &[(usize, RecordedEvent)]) -> Result<(), (usize, StoreError)> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (position, (index, event)) in chunk.iter().enumerate() {
            let body = serde_json::to_string(event)
                .map_err(|e| (*index, StoreError::corrupt(e.to_string())))?;
            let entry = SendMessageBatchRequestEntry::builder()
                .id(position.to_string())
                .message_body(body)
                .message_group_id(event.stream_id.as_str())
                .message_deduplication_id(event.event_id.to_string())
                .build()
                .map_err(|e| (*index, StoreError::corrupt(e.to_string())))?;
            entries.push(entry);
        }
        let output = self
            .sqs
            .send_message_batch()
            .queue_url(&self.events_queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| (chunk[0].0, from_sdk("SendMessageBatch", e)))?;
        let earliest_failed = output
            .failed
            .iter()
            .filter_map(|f| f.id.parse::<usize>().ok())
            .min();
        match earliest_failed {
            None => Ok(()),
            Some(position) => {
                let failed = &output.failed;
                let detail = failed
                    .iter()
                    .map(|f| f.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Err((
                    chunk[position].0,
                    StoreError::Unavailable {
                        message: format!(
                            "SendMessageBatch rejected {} entries: {detail}",
                            failed.len()
                        ),
                        retryable: true,
                    },
                ))
            }
        }
    }

    async fn request_snapshot(&self, event: &RecordedEvent) -> Result<(), StoreError> {
        let request = SnapshotRequest {
            stream_id: event.stream_id.to_string(),
            version: event.version,
        };
        let body =
            serde_json::to_string(&request).map_err(|e| StoreError::corrupt(e.to_string()))?;
        self.sqs
            .send_message()
            .queue_url(&self.snapshot_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| from_sdk("SendMessage", e))?;
        Ok(())
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
