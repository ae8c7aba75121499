//! The snapshot function's batches: snapshot requests from an SQS queue, answered with the
//! messages that failed so SQS redelivers those alone (and dead-letters them in the end).

use aws_lambda_events::event::sqs::SqsMessage;
use aws_lambda_events::streams::{SqsBatchItemFailure, SqsEventResponse};
use futures::StreamExt;

use crate::error::StoreError;
use crate::ids::StreamId;
use crate::snapshot::{SnapshotOutcome, SnapshotRequest, Snapshotter};

/// Snapshot requests served at once within a batch.
const SNAPSHOT_CONCURRENCY: usize = 4;

/// What a batch of snapshot requests did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Snapshots written.
    pub written: usize,
    /// Requests whose stream's snapshot was already as new.
    pub up_to_date: usize,
    /// Requests for categories without an aggregate.
    pub skipped: usize,
    /// Requests that failed (to be redelivered).
    pub failed: usize,
}

/// Why a snapshot-queue message could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRequestError {
    /// The body is not a [`SnapshotRequest`].
    #[error("not a snapshot request")]
    NotARequest(#[source] serde_json::Error),
    /// The stream id does not parse.
    #[error("the request names no valid stream")]
    BadStream(#[source] crate::ids::IdError),
    /// Loading or saving failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handles one snapshot-queue message.
pub async fn process_message(
    snapshotter: &Snapshotter,
    message: &SqsMessage,
) -> Result<SnapshotOutcome, SnapshotRequestError> {
    let body = message.body.as_deref().unwrap_or_default();
    let request: SnapshotRequest =
        serde_json::from_str(body).map_err(SnapshotRequestError::NotARequest)?;
    let stream_id = StreamId::parse(&request.stream_id).map_err(SnapshotRequestError::BadStream)?;
    let outcome = snapshotter.snapshot(&stream_id).await?;
    tracing::info!(stream_id = %stream_id, requested = request.version, ?outcome, "snapshot request");
    Ok(outcome)
}

/// Handles a batch of snapshot-queue messages, a few at a time; the response names every
/// message that failed.
pub async fn process_batch(
    snapshotter: &Snapshotter,
    messages: &[SqsMessage],
) -> (SqsEventResponse, SnapshotReport) {
    let pending: Vec<_> = messages
        .iter()
        .map(|message| async move { (message, process_message(snapshotter, message).await) })
        .collect();
    let results: Vec<_> = futures::stream::iter(pending)
        .buffer_unordered(SNAPSHOT_CONCURRENCY)
        .collect()
        .await;
    let mut response = SqsEventResponse::default();
    let mut report = SnapshotReport::default();
    for (message, result) in results {
        match result {
            Ok(SnapshotOutcome::Written(_)) => report.written += 1,
            Ok(SnapshotOutcome::UpToDate) => report.up_to_date += 1,
            Ok(SnapshotOutcome::Skipped(_)) => report.skipped += 1,
            Err(error) => {
                tracing::error!(message_id = ?message.message_id,
                    error = %crate::error::error_chain(&error), "snapshot request failed");
                let mut failure = SqsBatchItemFailure::default();
                failure.item_identifier.clone_from(&message.message_id);
                response.batch_item_failures.push(failure);
                report.failed += 1;
            }
        }
    }
    (response, report)
}
