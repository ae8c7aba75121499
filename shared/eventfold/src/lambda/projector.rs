//! The projector on a DynamoDB stream: records decoded, then a batch through the runtime;
//! with a feed, streams that cannot be applied are parked instead of failing the batch.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::EventRecord;

use super::stream::{StreamRecord, decode_stream_record, record_key};
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
    let mut undecodable = Vec::new();
    let mut ignored = 0;
    for (index, record) in records.iter().enumerate() {
        match decode_stream_record(record, upcasters) {
            Ok(StreamRecord::Appended(event)) => events.push((index, *event)),
            Ok(StreamRecord::Ignored(kind)) => {
                tracing::debug!(index, kind, "ignored record");
                ignored += 1;
            }
            Err(error) => {
                tracing::error!(index, %error, "record does not decode");
                undecodable.push(Undecodable {
                    index,
                    key: record_key(record),
                    error,
                });
            }
        }
    }
    let mut report = match parking {
        Some(feed) => project_parking(projector, feed, events, undecodable).await,
        None => {
            let mut report = project_batch(projector, events).await;
            for record in &undecodable {
                report.failed_at(record.index);
            }
            report
        }
    };
    report.ignored = ignored;
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

/// A record whose event does not decode (an image no upcaster turns into an event of today's
/// shape), with the stream and version its keys name, when they do.
struct Undecodable {
    index: usize,
    key: Option<(StreamId, u64)>,
    error: StoreError,
}

/// A batch through a projector that parks streams in `feed`: a stream whose event does not
/// decode is parked at it, as one whose event cannot be applied is. A failure to read or write
/// the parked list fails the batch from its first record (Lambda retries it; nothing is lost).
async fn project_parking(
    projector: &dyn StreamProjector,
    feed: &dyn FeedStore,
    events: Vec<(usize, RecordedEvent)>,
    undecodable: Vec<Undecodable>,
) -> BatchReport {
    let first = events
        .iter()
        .map(|(position, _)| *position)
        .chain(undecodable.iter().map(|record| record.index))
        .min();
    let mut report = BatchReport::default();
    let mut parks = Parks {
        projector,
        feed,
        count: 0,
    };
    let outcome = async {
        let mut parked = feed.parked(projector.name()).await?;
        redrive(projector, feed, &mut parked, &mut report).await?;
        for record in undecodable {
            let Some((stream_id, version)) = record.key else {
                report.failed_at(record.index);
                continue;
            };
            if parked.get(&stream_id).is_some_and(|p| p.version <= version) {
                report.held += 1;
            } else if parkable(&record.error)
                && parks.park(&stream_id, version, &record.error).await?
            {
                report.parked += 1;
                parked.insert(
                    stream_id.clone(),
                    Parked::now(stream_id, version, &record.error),
                );
            } else {
                report.failed_at(record.index);
            }
        }
        let (pending, held): (Vec<_>, Vec<_>) = events.into_iter().partition(|(_, event)| {
            parked
                .get(&event.stream_id)
                .is_none_or(|p| event.version < p.version)
        });
        report.held += held.len();
        let (projected, failures) = project_streams(projector, pending).await;
        report.merge(&projected);
        for failure in failures {
            if parkable(&failure.error)
                && parks
                    .park(&failure.stream_id, failure.version, &failure.error)
                    .await?
            {
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

/// The streams one batch parks, at most `MAX_PARKS`: past that, the cause is not the events'.
struct Parks<'a> {
    projector: &'a dyn StreamProjector,
    feed: &'a dyn FeedStore,
    count: usize,
}

impl Parks<'_> {
    /// Parks `stream_id` at `version` for `error`, unless the batch has parked enough already
    /// (`false`: the caller fails the batch there instead).
    async fn park(
        &mut self,
        stream_id: &StreamId,
        version: u64,
        error: &StoreError,
    ) -> Result<bool, StoreError> {
        if self.count >= MAX_PARKS {
            return Ok(false);
        }
        tracing::error!(projection = self.projector.name(), stream = %stream_id, version,
            error = %crate::error::error_chain(error), "stream parked");
        let stream = Parked::now(stream_id.clone(), version, error);
        self.feed
            .park(self.projector.name(), &stream, false)
            .await?;
        self.count += 1;
        Ok(true)
    }
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
        // An event that still does not decode (no upcaster deployed yet) fails the redrive as
        // one that cannot be applied does: the stream stays parked where it was.
        let (version, failure) = match projector
            .event_store()
            .read_all(&stream.stream_id, stream.version)
            .await
        {
            Ok(events) => {
                let outcome = projector.project_stream(&events).await;
                let done = outcome.outcomes.len();
                let version = events.get(done).map_or(stream.version, |e| e.version);
                (version, outcome.failure)
            }
            Err(error) => (stream.version, Some(error)),
        };
        match failure {
            None => {
                feed.unpark(projector.name(), &stream.stream_id).await?;
                parked.remove(&stream.stream_id);
                report.redriven += 1;
            }
            Some(error) if parkable(&error) => {
                let again = Parked::now(stream.stream_id.clone(), version, &error);
                feed.park(projector.name(), &again, true).await?;
                parked.insert(stream.stream_id.clone(), again);
            }
            Some(error) => return Err(error),
        }
    }
    Ok(())
}
