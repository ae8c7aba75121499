//! Batches of events through a projector: a stream's events in order, streams concurrently,
//! each stream stopping at its first failure. What the stream consumer, rebuilds and redrives
//! run.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::{Projected, StreamProjector};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::StreamId;

/// Streams processed at once within a batch.
const STREAM_CONCURRENCY: usize = 16;

/// What a batch did, for the log line, metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events applied.
    pub applied: usize,
    /// Events the row already had.
    pub duplicates: usize,
    /// Events applied after repairing a gap.
    pub repaired: usize,
    /// Events not followed or not used.
    pub skipped: usize,
    /// Records that are not inserts.
    pub ignored: usize,
    /// Streams parked by this batch (their events held until a redrive).
    pub parked: usize,
    /// Events of parked streams passed over.
    pub held: usize,
    /// Parked streams applied again on an operator's request, and taken off the list.
    pub redriven: usize,
    /// Position of the earliest record that failed.
    pub first_failure: Option<usize>,
}

/// A stream of a batch that stopped at an event it could not apply.
#[derive(Debug)]
pub struct StreamFailure {
    /// The stream.
    pub stream_id: StreamId,
    /// The event that failed.
    pub version: u64,
    /// The earliest record a retry must start from: the failed event's, or an earlier one of a
    /// later event of its stream.
    pub position: usize,
    /// Why.
    pub error: StoreError,
}

impl BatchReport {
    fn count(&mut self, outcome: &Projected) {
        match outcome {
            Projected::Applied => self.applied += 1,
            Projected::Duplicate => self.duplicates += 1,
            Projected::Repaired { .. } => self.repaired += 1,
            Projected::Skipped(_) => self.skipped += 1,
        }
    }

    /// Notes a failure at record `position`, keeping the earliest.
    pub fn failed_at(&mut self, position: usize) {
        self.first_failure = Some(self.first_failure.map_or(position, |f| f.min(position)));
    }

    /// Events processed, whatever the outcome.
    pub fn events(&self) -> usize {
        self.applied + self.duplicates + self.repaired + self.skipped
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &Self) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.repaired += other.repaired;
        self.skipped += other.skipped;
        self.ignored += other.ignored;
        self.parked += other.parked;
        self.held += other.held;
        self.redriven += other.redriven;
        if let Some(position) = other.first_failure {
            self.failed_at(position);
        }
    }
}

/// Projects events that came with their positions in a batch (a stream consumer's records):
/// grouped by stream, each in version order, streams concurrently. The report's
/// `first_failure` is the earliest position a retry must start from: the failed event's, or
/// an earlier one of a later event of its stream, so that no stream moves past a failure.
pub async fn project_batch(
    projector: &dyn StreamProjector,
    events: Vec<(usize, RecordedEvent)>,
) -> BatchReport {
    let (mut report, failures) = project_streams(projector, events).await;
    for failure in &failures {
        report.failed_at(failure.position);
    }
    report
}

/// [`project_batch`], the failures told apart: the counts of what was applied, and each stream
/// that stopped, at which event and why (for a consumer that parks streams).
pub async fn project_streams(
    projector: &dyn StreamProjector,
    events: Vec<(usize, RecordedEvent)>,
) -> (BatchReport, Vec<StreamFailure>) {
    let mut report = BatchReport::default();
    let mut by_stream: BTreeMap<String, Vec<(usize, RecordedEvent)>> = BTreeMap::new();
    for (position, event) in events {
        by_stream
            .entry(event.stream_id.to_string())
            .or_default()
            .push((position, event));
    }
    let results: Vec<_> = futures::stream::iter(by_stream.into_values())
        .map(|mut indexed| async move {
            indexed.sort_by_key(|(_, event)| event.version);
            let (positions, events): (Vec<usize>, Vec<RecordedEvent>) = indexed.into_iter().unzip();
            let outcome = projector.project_stream(&events).await;
            let failure = outcome.failure.map(|error| {
                let done = outcome.outcomes.len();
                let event = &events[done];
                tracing::error!(projection = projector.name(), stream_id = %event.stream_id,
                    version = event.version, error = %crate::error::error_chain(&error),
                    "projection failed");
                StreamFailure {
                    stream_id: event.stream_id.clone(),
                    version: event.version,
                    position: positions[done..]
                        .iter()
                        .copied()
                        .min()
                        .unwrap_or(positions[done]),
                    error,
                }
            });
            (outcome.outcomes, failure)
        })
        .buffer_unordered(STREAM_CONCURRENCY)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (outcomes, failure) in results {
        outcomes.iter().for_each(|o| report.count(o));
        failures.extend(failure);
    }
    (report, failures)
}

/// Replays stored events through a projector, a stream's consecutive events at a time: the
/// inner loop of a rebuild from a (parallel) scan of the events table, which sees each stream's
/// events together and in order.
pub async fn project_in_order(
    projector: &dyn StreamProjector,
    events: Vec<RecordedEvent>,
) -> Result<BatchReport, StoreError> {
    let mut report = BatchReport::default();
    let mut run: Vec<RecordedEvent> = Vec::new();
    for event in events {
        if run
            .last()
            .is_some_and(|last| last.stream_id != event.stream_id)
        {
            for outcome in projector.project_stream(&run).await.into_result()? {
                report.count(&outcome);
            }
            run.clear();
        }
        run.push(event);
    }
    for outcome in projector.project_stream(&run).await.into_result()? {
        report.count(&outcome);
    }
    Ok(report)
}
