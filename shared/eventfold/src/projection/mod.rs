//! Read models fed by DynamoDB Streams: the projector runtime, generic over a [`Projection`].
//!
//! A projection keeps one row per stream it follows, plus counters (totals) that any event may
//! move. The runtime gives it exactly-once effect on an at-least-once stream:
//! - every row carries its stream's last applied version (the checkpoint), and every write is
//!   conditional on it, so a duplicate or an older event changes nothing;
//! - counters move in the same transaction as the row, so they stay exact;
//! - a gap (a version after `checkpoint + 1`) is repaired by reading the missing events from
//!   the events table first;
//! - a batch's records are grouped by stream, each stream's events applied in order with one
//!   read and one conditional write, streams concurrently; the earliest failed record is
//!   reported in `batchItemFailures`, so Lambda retries from there.
//!
//! Rows live in a [`ReadModelStore`]: [`DynamoReadModel`] on a table, [`MemoryReadModel`] in
//! process. Both pass one conformance suite (`testing::read_model_suite`).

mod dynamo;
mod memory;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use dynamo::DynamoReadModel;
pub use memory::MemoryReadModel;

use crate::codec::{self, Item};
use crate::envelope::RecordedEvent;
use crate::error::{StoreError, Unavailable};
use crate::ids::StreamId;
use crate::store::{EventStore, ReadRange};
use crate::upcast::Upcasters;

/// A change to one counter: `delta` added to counter `name` of the counter row `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDelta {
    /// The counter row (e.g. `#totals-0`); never a row key, so start it with `#`.
    pub key: String,
    /// The counter within the row.
    pub name: String,
    /// What to add (negative to subtract).
    pub delta: i64,
}

impl CounterDelta {
    /// Adds `delta` to counter `name` of row `key`.
    pub fn new(key: impl Into<String>, name: impl Into<String>, delta: i64) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            delta,
        }
    }
}

/// What one event does to a projection.
#[derive(Clone, Debug, PartialEq)]
pub struct Update<R> {
    /// The row after the event (`None`: no row, or the row is gone; the checkpoint stays).
    pub row: Option<R>,
    /// Counters the event moves.
    pub counters: Vec<CounterDelta>,
}

/// A read model: which streams it follows, and what each event does to its row.
///
/// Pure: no I/O. The runtime loads the row, calls [`Projection::apply`] for each new event in
/// version order, and writes the result conditionally on the checkpoint.
pub trait Projection: Send + Sync + fmt::Debug + 'static {
    /// The row kept per stream. It serializes to a JSON object with at least one field, and
    /// without the store's key attribute or `version` (the checkpoint) among its fields.
    type Row: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync;

    /// A stable name, for logs, metrics and the operator's CLI.
    fn name(&self) -> &str;

    /// The key of the row a stream's events go to, or `None` for streams not followed. One row
    /// follows one stream: the checkpoint is that stream's version.
    fn row_key(&self, stream_id: &StreamId) -> Option<String>;

    /// Applies one event to the row (`None` before the first). `Ok(None)` is an event this
    /// projection does not use: only the checkpoint moves. An event of a type it knows that
    /// does not decode is an error (the record is poison).
    fn apply(
        &self,
        row: Option<Self::Row>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<Self::Row>>, StoreError>;
}

/// A row as stored: the checkpoint and the row document (`None`: a checkpoint without a row).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRow {
    /// The last applied version of the row's stream.
    pub version: u64,
    /// The row, as a JSON object.
    pub row: Option<Map<String, Value>>,
}

/// Whether a conditional row write happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written, with its counters.
    Written,
    /// The stored checkpoint was not the expected one; nothing was written.
    Stale,
}

/// Where a projection's rows and counters live.
#[async_trait]
pub trait ReadModelStore: Send + Sync + fmt::Debug {
    /// The attribute that holds row keys.
    fn key_attribute(&self) -> &str;

    /// One row, read consistently.
    async fn load(&self, key: &str) -> Result<Option<StoredRow>, StoreError>;

    /// Writes `row` under `key` if the stored checkpoint is `expected` (0: no row stored), and
    /// applies `counters` in the same atomic step. Counter row keys must never be row keys
    /// (start them with `#`, which no stream id contains).
    async fn save(
        &self,
        key: &str,
        expected: u64,
        row: &StoredRow,
        counters: &[CounterDelta],
    ) -> Result<Saved, StoreError>;

    /// The counters of one counter row (empty if it was never touched).
    async fn counters(&self, key: &str) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Every row with its key (counter rows excluded), for comparisons and exports.
    async fn rows(&self) -> Result<BTreeMap<String, StoredRow>, StoreError>;

    /// Deletes every row and counter: the start of a rebuild. Returns how many were deleted.
    async fn clear(&self) -> Result<usize, StoreError>;
}

/// What both read-model stores check before a save writes anything: the row document keeps
/// clear of the store's reserved names, and no counter row shares the row's key. Answers the
/// counter deltas merged by row and counter, without those that add nothing.
pub(crate) fn checked_save<'a>(
    key: &str,
    row: &StoredRow,
    key_attribute: &str,
    counters: &'a [CounterDelta],
) -> Result<BTreeMap<&'a str, BTreeMap<&'a str, i64>>, StoreError> {
    if let Some(document) = &row.row {
        if document.is_empty() {
            return Err(StoreError::misuse(
                "a projection row must serialize to an object with at least one field",
            ));
        }
        for reserved in [key_attribute, crate::names::read_model::VERSION] {
            if document.contains_key(reserved) {
                return Err(StoreError::misuse(format!(
                    "a projection row may not have a field named {reserved:?} (reserved)"
                )));
            }
        }
    }
    let mut merged: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for delta in counters {
        *merged
            .entry(&delta.key)
            .or_default()
            .entry(&delta.name)
            .or_default() += delta.delta;
    }
    for row in merged.values_mut() {
        row.retain(|_, delta| *delta != 0);
    }
    merged.retain(|_, row| !row.is_empty());
    if merged.contains_key(key) {
        return Err(StoreError::misuse(
            "a counter row key is also the row's key",
        ));
    }
    Ok(merged)
}

/// What projecting one event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projected {
    /// The row moved to this event.
    Applied,
    /// The row was already at or past this event.
    Duplicate,
    /// Missing earlier events were read from the events table and applied first.
    Repaired {
        /// How many were missing.
        missing: usize,
    },
    /// Not followed by this projection, or a type it does not use (the checkpoint moved).
    Skipped(String),
}

/// How often a stream's write is tried again after losing a race or a transient failure.
const SAVE_ATTEMPTS: u32 = 5;

/// Streams processed at once within a batch.
const STREAM_CONCURRENCY: usize = 16;

/// Applies events to a projection's rows, repairing gaps from the event store.
#[derive(Debug)]
pub struct Projector<P: Projection> {
    projection: P,
    read_model: Arc<dyn ReadModelStore>,
    store: Arc<dyn EventStore>,
}

impl<P: Projection> Projector<P> {
    /// A projector writing `read_model` and repairing gaps from `store`.
    pub fn new(
        projection: P,
        read_model: Arc<dyn ReadModelStore>,
        store: Arc<dyn EventStore>,
    ) -> Self {
        Self {
            projection,
            read_model,
            store,
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// One row and its checkpoint, decoded; `None` if the stream has no row (yet).
    pub async fn row(&self, key: &str) -> Result<Option<(u64, P::Row)>, StoreError> {
        let Some(stored) = self.read_model.load(key).await? else {
            return Ok(None);
        };
        match stored.row {
            Some(document) => Ok(Some((stored.version, decode_row::<P::Row>(document)?))),
            None => Ok(None),
        }
    }

    /// Projects one event.
    pub async fn project(&self, event: &RecordedEvent) -> Result<Projected, StoreError> {
        let mut outcomes = self
            .project_stream(std::slice::from_ref(event))
            .await
            .into_result()?;
        Ok(outcomes.pop().unwrap_or(Projected::Duplicate))
    }

    /// One attempt at a stream's events: load, apply in memory up to the first event that
    /// fails, and write what was applied conditionally.
    async fn try_stream(
        &self,
        key: &str,
        events: &[RecordedEvent],
    ) -> Result<(Saved, StreamOutcome), StoreError> {
        let stored = self.read_model.load(key).await?;
        let loaded_version = stored.as_ref().map_or(0, |s| s.version);
        let mut version = loaded_version;
        let mut row = match stored.and_then(|s| s.row) {
            Some(document) => Some(decode_row::<P::Row>(document)?),
            None => None,
        };
        let mut counters = Vec::new();
        let mut outcome = StreamOutcome::default();
        for event in events {
            if event.version <= version {
                outcome.outcomes.push(Projected::Duplicate);
                continue;
            }
            // Work on copies: a failing event (or its gap repair) leaves what came before.
            let (mut next_row, mut next_counters) = (row.clone(), counters.clone());
            let applied = self
                .apply_after_gap(&mut next_row, &mut next_counters, event, version)
                .await;
            match applied {
                Ok(projected) => {
                    (row, counters) = (next_row, next_counters);
                    version = event.version;
                    outcome.outcomes.push(projected);
                }
                Err(error) => {
                    outcome.failure = Some(error);
                    break;
                }
            }
        }
        if version == loaded_version {
            return Ok((Saved::Written, outcome));
        }
        let next = StoredRow {
            version,
            row: row.map(encode_row).transpose()?,
        };
        let saved = self
            .read_model
            .save(key, loaded_version, &next, &counters)
            .await?;
        Ok((saved, outcome))
    }

    /// Applies one event after the row's checkpoint, reading the missing events first if
    /// there is a gap.
    async fn apply_after_gap(
        &self,
        row: &mut Option<P::Row>,
        counters: &mut Vec<CounterDelta>,
        event: &RecordedEvent,
        checkpoint: u64,
    ) -> Result<Projected, StoreError> {
        let missing = if event.version > checkpoint + 1 {
            let missing = self.missing_events(event, checkpoint).await?;
            for earlier in &missing {
                self.apply_one(row, counters, earlier)?;
            }
            missing.len()
        } else {
            0
        };
        let used = self.apply_one(row, counters, event)?;
        Ok(match (missing, used) {
            (0, true) => Projected::Applied,
            (0, false) => Projected::Skipped(format!(
                "{} does not use {}",
                self.projection.name(),
                event.event_type
            )),
            (missing, _) => Projected::Repaired { missing },
        })
    }

    /// Applies one event to the row in memory; whether the projection used it.
    fn apply_one(
        &self,
        row: &mut Option<P::Row>,
        counters: &mut Vec<CounterDelta>,
        event: &RecordedEvent,
    ) -> Result<bool, StoreError> {
        match self.projection.apply(row.clone(), event)? {
            Some(update) => {
                *row = update.row;
                counters.extend(update.counters);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The events between a row's checkpoint and `event`, read from the events table.
    async fn missing_events(
        &self,
        event: &RecordedEvent,
        checkpoint: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let range = ReadRange::from(checkpoint + 1).to(event.version - 1);
        let raw = self.store.read_raw(&event.stream_id, range).await?;
        let missing = self.store.upcast_all(raw.events)?;
        let expected = event.version - checkpoint - 1;
        let gap_free = missing
            .iter()
            .zip(checkpoint + 1..)
            .all(|(e, version)| e.version == version);
        if missing.len() as u64 != expected || !gap_free {
            return Err(StoreError::corrupt(format!(
                "{} is missing versions {}..{} in the events table too",
                event.stream_id,
                checkpoint + 1,
                event.version - 1
            )));
        }
        Ok(missing)
    }
}

fn decode_row<R: DeserializeOwned>(document: Map<String, Value>) -> Result<R, StoreError> {
    serde_json::from_value(Value::Object(document))
        .map_err(|e| StoreError::corrupt(format!("a projection row does not decode: {e}")))
}

fn encode_row<R: Serialize>(row: R) -> Result<Map<String, Value>, StoreError> {
    match serde_json::to_value(row) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(other) => Err(StoreError::misuse(format!(
            "a projection row must serialize to an object, not {other}"
        ))),
        Err(e) => Err(StoreError::misuse(format!(
            "a projection row does not serialize: {e}"
        ))),
    }
}

/// A projector whatever its projection: what stream handlers, rebuilds and redrives use.
#[async_trait]
pub trait StreamProjector: Send + Sync + fmt::Debug {
    /// The projection's name.
    fn name(&self) -> &str;

    /// The rows' store.
    fn read_model(&self) -> &Arc<dyn ReadModelStore>;

    /// The event store gaps are repaired from.
    fn event_store(&self) -> &Arc<dyn EventStore>;

    /// The row key a stream's events go to, `None` for streams not followed.
    fn row_key(&self, stream_id: &StreamId) -> Option<String>;

    /// Projects events of one stream, in version order: one outcome per event up to the
    /// first that fails, all of them written; the failure, if any, is the next event's.
    async fn project_stream(&self, events: &[RecordedEvent]) -> StreamOutcome;
}

#[async_trait]
impl<P: Projection> StreamProjector for Projector<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn read_model(&self) -> &Arc<dyn ReadModelStore> {
        &self.read_model
    }

    fn event_store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    fn row_key(&self, stream_id: &StreamId) -> Option<String> {
        self.projection.row_key(stream_id)
    }

    async fn project_stream(&self, events: &[RecordedEvent]) -> StreamOutcome {
        let Some(first) = events.first() else {
            return StreamOutcome::default();
        };
        let Some(key) = self.projection.row_key(&first.stream_id) else {
            let skipped = format!("{} does not follow {}", self.name(), first.stream_id);
            return StreamOutcome {
                outcomes: vec![Projected::Skipped(skipped); events.len()],
                failure: None,
            };
        };
        let mut attempt = 1;
        loop {
            let failure = match self.try_stream(&key, events).await {
                Ok((Saved::Written, outcome)) => return outcome,
                Ok((Saved::Stale, _)) => "the row moved on".to_owned(),
                Err(error) if error.is_retryable() => crate::error::error_chain(&error),
                Err(error) => return StreamOutcome::failed(error),
            };
            if attempt >= SAVE_ATTEMPTS {
                return StreamOutcome::failed(StoreError::Unavailable(Box::new(Unavailable {
                    operation: "project",
                    resource: format!("{} row {key}", self.name()),
                    code: None,
                    retryable: true,
                    outcome_unknown: false,
                    source: format!("gave up after {attempt} attempts: {failure}").into(),
                })));
            }
            tracing::debug!(stream_id = %first.stream_id, attempt, %failure, "projecting again");
            tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
}

/// What projecting a stream's events did: outcomes of the first events, written, and the
/// failure of the next one, if any.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    /// One per event processed, in order.
    pub outcomes: Vec<Projected>,
    /// Why the event after those failed.
    pub failure: Option<StoreError>,
}

impl StreamOutcome {
    fn failed(error: StoreError) -> Self {
        Self {
            outcomes: Vec::new(),
            failure: Some(error),
        }
    }

    /// The outcomes if every event was processed, else the failure.
    pub fn into_result(self) -> Result<Vec<Projected>, StoreError> {
        match self.failure {
            Some(error) => Err(error),
            None => Ok(self.outcomes),
        }
    }
}

/// What a stream record holds for a consumer.
#[derive(Debug)]
pub enum StreamRecord {
    /// A newly appended event, decoded and upcast.
    Appended(Box<RecordedEvent>),
    /// Not an insert (events are never modified or removed by the application).
    Ignored(&'static str),
}

/// Decodes a DynamoDB Streams record of the events table.
///
/// An `INSERT` whose image does not decode is an error: the record is poison.
pub fn decode_stream_record(
    record: &EventRecord,
    upcasters: &Upcasters,
) -> Result<StreamRecord, StoreError> {
    match record.event_name.as_str() {
        "INSERT" => {
            let item: Item = record.change.new_image.clone().into();
            if item.is_empty() {
                return Err(StoreError::corrupt("INSERT record without a NEW_IMAGE"));
            }
            Ok(StreamRecord::Appended(Box::new(codec::decode_event(
                item, upcasters,
            )?)))
        }
        "MODIFY" => Ok(StreamRecord::Ignored("MODIFY")),
        "REMOVE" => Ok(StreamRecord::Ignored("REMOVE")),
        _ => Ok(StreamRecord::Ignored("unknown record type")),
    }
}

/// The response of a stream consumer: the earliest failed record, by sequence number, so that
/// Lambda retries from it (and only it and what follows).
pub fn batch_response(
    records: &[EventRecord],
    first_failure: Option<usize>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some(record) = first_failure.and_then(|index| records.get(index)) {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure
            .item_identifier
            .clone_from(&record.change.sequence_number);
        response.batch_item_failures.push(failure);
    }
    response
}

/// How long ago each inserted event of a batch occurred, in milliseconds: a consumer's lag,
/// for its metrics (from the event's own time, so it includes the stream's delay).
pub fn ages_millis(records: &[EventRecord]) -> Vec<f64> {
    let now = chrono::Utc::now();
    records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(
            |r| match r.change.new_image.get(crate::names::events::OCCURRED_AT) {
                Some(serde_dynamo::AttributeValue::S(text)) => {
                    crate::envelope::parse_timestamp(text)
                }
                _ => None,
            },
        )
        .map(|at| (now - at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect()
}

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
    /// Index of the earliest record that failed.
    pub first_failure: Option<usize>,
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

    fn failed_at(&mut self, index: usize) {
        self.first_failure = Some(self.first_failure.map_or(index, |f| f.min(index)));
    }

    /// Events processed, whatever the outcome.
    pub fn events(&self) -> usize {
        self.applied + self.duplicates + self.repaired + self.skipped
    }
}

/// Processes one batch of DynamoDB Streams records through a projector: records of one stream
/// in order, different streams concurrently, stopping each stream at its first failure.
pub async fn process_stream_batch(
    projector: &dyn StreamProjector,
    records: &[EventRecord],
) -> BatchReport {
    let mut report = BatchReport::default();
    let mut by_stream: BTreeMap<String, Vec<(usize, RecordedEvent)>> = BTreeMap::new();
    let upcasters = &projector.event_store().settings().upcasters;
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
                report.failed_at(index);
            }
        }
    }
    let results: Vec<_> = futures::stream::iter(by_stream.into_values())
        .map(|mut indexed| async move {
            indexed.sort_by_key(|(_, event)| event.version);
            let (indexes, events): (Vec<usize>, Vec<RecordedEvent>) = indexed.into_iter().unzip();
            let outcome = projector.project_stream(&events).await;
            let failed_event = outcome.failure.as_ref().map(|error| {
                let event = &events[outcome.outcomes.len()];
                tracing::error!(projection = projector.name(), stream_id = %event.stream_id,
                    version = event.version, error = %crate::error::error_chain(error),
                    "projection failed");
                // Lambda retries from this record: its version and everything later in the
                // stream; records of this stream before it in the batch are all written.
                indexes[outcome.outcomes.len()..]
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(indexes[outcome.outcomes.len()])
            });
            (outcome.outcomes, failed_event)
        })
        .buffer_unordered(STREAM_CONCURRENCY)
        .collect()
        .await;
    for (outcomes, failed_at) in results {
        outcomes.iter().for_each(|o| report.count(o));
        if let Some(index) = failed_at {
            report.failed_at(index);
        }
    }
    tracing::info!(
        projection = projector.name(),
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

/// Replays a page of stored event items through a projector, a stream's consecutive events
/// at a time: the inner loop of a rebuild from a (parallel) scan of the events table.
pub async fn project_items(
    projector: &dyn StreamProjector,
    items: Vec<Item>,
) -> Result<BatchReport, StoreError> {
    let upcasters = &projector.event_store().settings().upcasters;
    let mut report = BatchReport::default();
    let mut run: Vec<RecordedEvent> = Vec::new();
    for item in items {
        let event = codec::decode_event(item, upcasters)?;
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

impl BatchReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &Self) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.repaired += other.repaired;
        self.skipped += other.skipped;
        self.ignored += other.ignored;
        if let Some(index) = other.first_failure {
            self.failed_at(index);
        }
    }
}
