//! `snapshots backfill`: snapshot every stream of a category (or one stream) by sending the
//! service's snapshot function the requests its queue would carry, ten at a time, with
//! progress. What was written is read from the snapshots table before and after, so the CLI
//! needs to know no aggregate.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::SqsEventResponse;
use eventfold::StreamId;
use eventfold::aws::DynamoSnapshots;
use eventfold::snapshot::SnapshotRequest;
use eventfold::store::SnapshotStore;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::progress::Progress;
use super::{OpsError, Target, say};

/// Requests per invocation: an SQS event source's largest standard batch without a window.
const REQUESTS_PER_BATCH: usize = 10;
/// Snapshot versions read at once.
const READ_CONCURRENCY: usize = 16;
/// Attempts at a request the function reports failed.
const ATTEMPTS: u32 = 4;

/// What a backfill did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Streams looked at.
    pub streams: usize,
    /// Snapshots written.
    pub written: usize,
    /// Streams the service keeps no snapshots for (no aggregate for their category).
    pub not_kept: usize,
}

/// The snapshot of each stream, in order, as its version and when it was taken (`None`: no
/// snapshot): a snapshot written again at its version (replacing one that did not verify)
/// was taken later.
async fn versions(
    snapshots: &DynamoSnapshots,
    streams: &[StreamId],
) -> Result<Vec<Option<(u64, chrono::DateTime<chrono::Utc>)>>, OpsError> {
    futures::stream::iter(streams)
        .map(|stream| async move {
            Ok::<_, OpsError>(
                snapshots
                    .load_snapshot(stream)
                    .await?
                    .map(|s| (s.version, s.taken_at)),
            )
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

/// The SQS event a batch of requests arrives in, as Lambda builds it.
/// Each request is numbered, so the function's answer names the ones that failed.
fn requests_event(streams: &[(usize, StreamId)]) -> Result<SqsEvent, OpsError> {
    let records: Vec<serde_json::Value> = streams
        .iter()
        .map(|(number, stream)| {
            let request = SnapshotRequest {
                stream_id: stream.to_string(),
                version: 0,
            };
            json!({
                "messageId": format!("backfill-{number}"),
                "receiptHandle": format!("backfill-{number}"),
                "body": serde_json::to_string(&request).unwrap_or_default(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:backfill",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records }))
        .map_err(|e| OpsError::new(format!("snapshot requests as Lambda sends them: {e}")))
}

/// Sends one batch of requests until the function accepts every one.
async fn request(
    target: &Target,
    function: &str,
    streams: &[StreamId],
    first: usize,
) -> Result<(), OpsError> {
    let mut pending: Vec<(usize, StreamId)> = streams
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, s)| (first + i, s))
        .collect();
    for attempt in 1..=ATTEMPTS {
        let event = requests_event(&pending)?;
        match target
            .invoker
            .invoke::<_, SqsEventResponse>(function, &event)
            .await
        {
            Ok(response) => {
                let failed: Vec<String> = response
                    .batch_item_failures
                    .into_iter()
                    .filter_map(|f| f.item_identifier)
                    .collect();
                pending.retain(|(n, _)| failed.contains(&format!("backfill-{n}")));
                if pending.is_empty() {
                    return Ok(());
                }
            }
            Err(error) if attempt == ATTEMPTS => return Err(OpsError::new(error)),
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
    }
    Err(OpsError::new(format!(
        "{function} failed on {} every time; its log says why",
        pending
            .iter()
            .map(|(_, s)| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Snapshots one stream (`Account-<id>`) or every stream of a category (`Account`).
pub async fn backfill(target: &Target, what: &str) -> Result<BackfillReport, OpsError> {
    let function = target.service.snapshotter.as_deref().ok_or_else(|| {
        OpsError::new("the service keeps no snapshots: its template has no snapshot function")
    })?;
    let table = target.service.snapshots_table.as_deref().ok_or_else(|| {
        OpsError::new("the service keeps no snapshots: its template has no snapshots table")
    })?;
    let snapshots = Arc::new(DynamoSnapshots::new(
        target.clients.dynamodb.clone(),
        target.table(table)?,
    ));
    let streams = if what.contains('-') {
        vec![StreamId::parse(what).map_err(|e| OpsError(e.to_string()))?]
    } else {
        let streams = target.store.streams_in_category(what).await?;
        if streams.is_empty() {
            return Err(OpsError::new(format!(
                "no streams of category {what} in {}",
                target.label
            )));
        }
        streams
    };
    let before = versions(&snapshots, &streams).await?;
    let mut progress = Progress::new(
        &format!("snapshots {what}"),
        "streams",
        Some(streams.len() as u64),
    );
    for (i, batch) in streams.chunks(REQUESTS_PER_BATCH).enumerate() {
        request(target, function, batch, i * REQUESTS_PER_BATCH).await?;
        progress.advance(batch.len() as u64);
    }
    progress.finish();
    let after = versions(&snapshots, &streams).await?;
    let report = BackfillReport {
        streams: streams.len(),
        written: before
            .iter()
            .zip(&after)
            .filter(|(b, a)| a.is_some() && a != b)
            .count(),
        not_kept: after.iter().filter(|a| a.is_none()).count(),
    };
    if report.not_kept == report.streams {
        return Err(OpsError::new(format!(
            "{function} keeps no snapshots of {what}: is there an aggregate for its category?"
        )));
    }
    say(&format!(
        "{} streams; {} snapshots written (the rest were current){}",
        report.streams,
        report.written,
        if report.not_kept > 0 {
            format!("; {} without a snapshot", report.not_kept)
        } else {
            String::new()
        }
    ));
    Ok(report)
}
