//! The projector on a DynamoDB stream: records decoded, then a batch through the runtime;
//! with a feed, streams that cannot be applied are parked instead of failing the batch.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::EventRecord;

use super::stream::{StreamRecord, decode_stream_record};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::feed::{FeedStore, MAX_PARKS, Parked, parkable};
use crate::ids::StreamId;
use crate::projection::{BatchReport, StreamProjector, project_batch, project_streams};

/// Processes one batch of DynamoDB Streams records through a projector: records of one stream
/// in order, different streams concurrently, stopping each stream at its first failure; the
/// report names the earliest record Lambda must retry from.
///
/// With `parking` (the feed's table, where parked streams are kept under the projection's
/// name), a stream whose event fails for a reason of its own is parked rather than retried:
/// its later events are held (never applied past the failure) while every other stream of the
/// batch, and of later batches, flows; a parked stream an operator asked to redrive is applied
/// again, from the failed event to its head, before the batch.
pub async fn process_stream_batch(
    projector: &dyn StreamProjector,
    records: &[EventRecord],
    parking: Option<&dyn FeedStore>,
) -> BatchReport {
    let upcasters = &projector.event_store().settings().upcasters;
    let mut events = Vec::with_capacity(records.len());
    let (mut ignored, mut undecodable) = (0, None);
    for (index, record) in records.iter().enumerate() {
        match decode_stream_record(record, upcasters) {
            Ok(StreamRecord::Appended(event)) => events.push((index, *event)),
            Ok(StreamRecord::Ignored(kind)) => {
                tracing::debug!(index, kind, "ignored record");
                ignored += 1;
            }
            Err(error) => {
                tracing::error!(index, %error, "record does not decode");
                undecodable = Some(undecodable.map_or(index, |u: usize| u.min(index)));
            }
        }
    }
    let mut report = match parking {
        Some(feed) => project_parking(projector, feed, events).await,
        None => project_batch(projector, events).await,
    };
    report.ignored = ignored;
    if let Some(index) = undecodable {
        report.failed_at(index);
    }
    tracing::info!(
        projection = projector.name(),
        records = records.len(),
        applied = report.applied,
        duplicates = report.duplicates,
        repaired = report.repaired,
        skipped = report.skipped,
        ignored = report.ignored,
        parked = report.parked,
        held = report.held,
        redriven = report.redriven,
        failed_at = ?report.first_failure,
        "batch projected"
    );
    report
}

/// A batch through a projector that parks streams in `feed`. A failure to read or write the
/// parked list fails the batch from its first event (Lambda retries it; nothing is lost).
async fn project_parking(
    projector: &dyn StreamProjector,
    feed: &dyn FeedStore,
    events: Vec<(usize, RecordedEvent)>,
) -> BatchReport {
    let first = events.iter().map(|(position, _)| *position).min();
    let mut report = BatchReport::default();
    let outcome = async {
        let mut parked = feed.parked(projector.name()).await?;
        redrive(projector, feed, &mut parked, &mut report).await?;
        let (pending, held): (Vec<_>, Vec<_>) = events.into_iter().partition(|(_, event)| {
            parked
                .get(&event.stream_id)
                .is_none_or(|p| event.version < p.version)
        });
        report.held += held.len();
        let (projected, failures) = project_streams(projector, pending).await;
        report.merge(&projected);
        let mut parks = 0;
        for failure in failures {
            if parkable(&failure.error) && parks < MAX_PARKS {
                tracing::error!(projection = projector.name(), stream = %failure.stream_id,
                    version = failure.version, "stream parked");
                let stream = Parked::now(failure.stream_id, failure.version, &failure.error);
                feed.park(projector.name(), &stream, false).await?;
                parks += 1;
                report.parked += 1;
            } else {
                report.failed_at(failure.position);
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(error) = outcome {
        tracing::error!(projection = projector.name(), error = %crate::error::error_chain(&error),
            "the parked streams could not be read or written");
        if let Some(first) = first {
            report.failed_at(first);
        }
    }
    report
}

/// Applies again every parked stream an operator asked to redrive, from its failed event to its
/// head, and takes it off the list; one that fails again stays parked with the new failure.
async fn redrive(
    projector: &dyn StreamProjector,
    feed: &dyn FeedStore,
    parked: &mut BTreeMap<StreamId, Parked>,
    report: &mut BatchReport,
) -> Result<(), StoreError> {
    let asked: Vec<Parked> = parked.values().filter(|p| p.redrive).cloned().collect();
    for stream in asked {
        let events = projector
            .event_store()
            .read_all(&stream.stream_id, stream.version)
            .await?;
        let outcome = projector.project_stream(&events).await;
        let done = outcome.outcomes.len();
        match outcome.failure {
            None => {
                feed.unpark(projector.name(), &stream.stream_id).await?;
                parked.remove(&stream.stream_id);
                report.redriven += 1;
            }
            Some(error) if parkable(&error) => {
                let version = events.get(done).map_or(stream.version, |e| e.version);
                let again = Parked::now(stream.stream_id.clone(), version, &error);
                feed.park(projector.name(), &again, true).await?;
                parked.insert(stream.stream_id.clone(), again);
            }
            Some(error) => return Err(error),
        }
    }
    Ok(())
}
