//! The projector: a stream's events applied to a projection's rows with exactly-once effect.
//!
//! - Rows that follow one stream carry its last applied version, and every write is
//!   conditional on it, so a duplicate or an older event changes nothing.
//! - Shared rows carry a revision; each source stream has a checkpoint item of its own, and a
//!   write moves the checkpoint and the rows in one transaction, conditional on both.
//! - Counters move in the same write as the rows, so they stay exact.
//! - A gap (a version after `checkpoint + 1`) is repaired by reading the missing events from
//!   the events table first.
//!
//! A write that loses a race (`Stale`) is the runtime's to retry: it loads again and applies
//! again, at most [`SAVE_ATTEMPTS`] times, after a jittered backoff whose cap doubles each time,
//! so writers contending for one shared row spread out. Transient failures are the SDK's (3
//! tries a request); one that outlives them fails the batch, which the event source mapping
//! retries (`MaximumRetryAttempts`). At most 10 attempts × 3 requests × 3 SDK tries, then.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::store::{
    Checkpoint, CheckpointWrite, Commit, ReadModelStore, RowWrite, Saved, StoredRow,
};
use super::{CounterDelta, Projection, Rows};
use crate::envelope::RecordedEvent;
use crate::error::{StoreError, Unavailable};
use crate::ids::StreamId;
use crate::store::{EventStore, ReadRange};

/// How often a stream's write is tried in all when it keeps losing races (to another batch of
/// the same stream, or to another stream's write of a shared row).
pub const SAVE_ATTEMPTS: u32 = 10;

/// The first backoff's cap; it doubles with each attempt, up to [`MAX_SAVE_BACKOFF`].
const SAVE_BACKOFF: Duration = Duration::from_millis(5);
/// The largest backoff.
const MAX_SAVE_BACKOFF: Duration = Duration::from_millis(400);

/// Distinct rows and counter rows one commit touches at most (DynamoDB allows 100 items in a
/// transaction; the rest of a stream's events go in the next commit).
const ROWS_PER_COMMIT: usize = 50;

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

/// A projector whatever its projection: what stream handlers, rebuilds and redrives use.
#[async_trait]
pub trait StreamProjector: Send + Sync + fmt::Debug {
    /// The projection's name.
    fn name(&self) -> &str;

    /// The rows' store.
    fn read_model(&self) -> &Arc<dyn ReadModelStore>;

    /// The event store gaps are repaired from.
    fn event_store(&self) -> &Arc<dyn EventStore>;

    /// Whether events of `stream_id` feed the projection.
    fn follows(&self, stream_id: &StreamId) -> bool;

    /// Projects events of one stream, in version order: one outcome per event up to the
    /// first that fails, all of them written; the failure, if any, is the next event's.
    async fn project_stream(&self, events: &[RecordedEvent]) -> StreamOutcome;
}

/// Applies events to a projection's rows, repairing gaps from the event store.
#[derive(Debug)]
pub struct Projector<P: Projection> {
    projection: P,
    read_model: Arc<dyn ReadModelStore>,
    store: Arc<dyn EventStore>,
}

/// The rows one commit writes, as loaded and as applied.
struct Pending<R> {
    rows: BTreeMap<String, (u64, Option<R>)>,
    counters: Vec<CounterDelta>,
    /// Where the stream's last routed event went.
    last_key: Option<String>,
}

impl<R: Clone> Clone for Pending<R> {
    fn clone(&self) -> Self {
        Self {
            rows: self.rows.clone(),
            counters: self.counters.clone(),
            last_key: self.last_key.clone(),
        }
    }
}

impl<R> Pending<R> {
    /// Distinct items the commit would write.
    fn items(&self) -> usize {
        let counter_rows: BTreeSet<&str> = self.counters.iter().map(|c| c.key.as_str()).collect();
        self.rows.len() + counter_rows.len()
    }
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

    /// One row and its version, decoded; `None` if there is no row (yet).
    pub async fn row(&self, key: &str) -> Result<Option<(u64, P::Row)>, StoreError> {
        let Some(stored) = self.read_model.load(key).await? else {
            return Ok(None);
        };
        match stored.row {
            Some(document) => Ok(Some((stored.version, decode_row::<P::Row>(document)?))),
            None => Ok(None),
        }
    }

    /// The row `key` of a per-stream projection as it will be once every event of `stream_id`
    /// is applied: the stored row caught up in memory from the events table, written nowhere.
    /// What a reader that cannot wait for the projector answers, built by the very code the
    /// projector runs.
    pub async fn row_at_head(
        &self,
        key: &str,
        stream_id: &StreamId,
    ) -> Result<Option<(u64, P::Row)>, StoreError> {
        let stored = self.read_model.load(key).await?;
        let mut version = stored.as_ref().map_or(0, |s| s.version);
        let mut row = match stored.and_then(|s| s.row) {
            Some(document) => Some(decode_row::<P::Row>(document)?),
            None => None,
        };
        let raw = self
            .store
            .read_raw(stream_id, ReadRange::from(version + 1))
            .await?;
        for event in self.store.upcast_all(raw.events)? {
            if let Some(update) = self.projection.apply(row.clone(), &event)? {
                row = update.row;
            }
            version = event.version;
        }
        Ok(row.map(|row| (version, row)))
    }

    /// Projects one event.
    pub async fn project(&self, event: &RecordedEvent) -> Result<Projected, StoreError> {
        let mut outcomes = self
            .project_stream(std::slice::from_ref(event))
            .await
            .into_result()?;
        Ok(outcomes.pop().unwrap_or(Projected::Duplicate))
    }

    /// One attempt at a prefix of a stream's events: load, apply in memory up to the first
    /// event that fails (or the commit's size), and write what was applied conditionally.
    async fn try_commit(
        &self,
        events: &[RecordedEvent],
    ) -> Result<(Saved, StreamOutcome), StoreError> {
        let stream_id = &events[0].stream_id;
        let shared = self.projection.rows() == Rows::Shared;
        let (loaded_version, mut pending) = if shared {
            let checkpoint = self.read_model.load_checkpoint(stream_id).await?;
            let pending = Pending {
                rows: BTreeMap::new(),
                counters: Vec::new(),
                last_key: checkpoint.as_ref().and_then(|c| c.row_key.clone()),
            };
            (checkpoint.map_or(0, |c| c.version), pending)
        } else {
            let Some(key) = self.projection.row_key(&events[0], None) else {
                return Ok((Saved::Written, skipped(self.name(), events)));
            };
            let (version, row) = self.load_row(&key).await?;
            let pending = Pending {
                rows: BTreeMap::from([(key.clone(), (version, row))]),
                counters: Vec::new(),
                last_key: Some(key),
            };
            (version, pending)
        };
        let mut version = loaded_version;
        let mut outcome = StreamOutcome::default();
        for event in events {
            if event.version <= version {
                outcome.outcomes.push(Projected::Duplicate);
                continue;
            }
            if pending.items() >= ROWS_PER_COMMIT {
                break;
            }
            // Work on a copy: a failing event (or its gap repair) leaves what came before.
            let mut next = pending.clone();
            match self.apply_after_gap(&mut next, event, version).await {
                Ok(projected) => {
                    pending = next;
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
        let commit = self.commit_of(stream_id, shared, loaded_version, version, pending)?;
        Ok((self.read_model.commit(&commit).await?, outcome))
    }

    /// The write of what was applied: each row at its next version (a shared row's revision,
    /// or the stream's version), and a shared projection's checkpoint.
    fn commit_of(
        &self,
        stream_id: &StreamId,
        shared: bool,
        loaded_version: u64,
        version: u64,
        pending: Pending<P::Row>,
    ) -> Result<Commit, StoreError> {
        let rows = pending
            .rows
            .into_iter()
            .map(|(key, (expected, row))| {
                Ok(RowWrite {
                    key,
                    expected,
                    row: StoredRow {
                        version: if shared { expected + 1 } else { version },
                        row: row.map(encode_row).transpose()?,
                    },
                    source: (!shared).then(|| stream_id.clone()),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let checkpoint = shared.then(|| CheckpointWrite {
            stream_id: stream_id.clone(),
            expected: loaded_version,
            checkpoint: Checkpoint {
                version,
                row_key: pending.last_key,
            },
        });
        Ok(Commit {
            checkpoint,
            rows,
            counters: pending.counters,
        })
    }

    async fn load_row(&self, key: &str) -> Result<(u64, Option<P::Row>), StoreError> {
        let stored = self.read_model.load(key).await?;
        let version = stored.as_ref().map_or(0, |s| s.version);
        let row = match stored.and_then(|s| s.row) {
            Some(document) => Some(decode_row::<P::Row>(document)?),
            None => None,
        };
        Ok((version, row))
    }

    /// Applies one event after the stream's checkpoint, reading the missing events first if
    /// there is a gap.
    async fn apply_after_gap(
        &self,
        pending: &mut Pending<P::Row>,
        event: &RecordedEvent,
        checkpoint: u64,
    ) -> Result<Projected, StoreError> {
        let missing = if event.version > checkpoint + 1 {
            let missing = self.missing_events(event, checkpoint).await?;
            for earlier in &missing {
                self.apply_one(pending, earlier).await?;
            }
            missing.len()
        } else {
            0
        };
        let used = self.apply_one(pending, event).await?;
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

    /// Applies one event to its row in memory (loading a shared row the first time it is
    /// touched); whether the projection used it.
    async fn apply_one(
        &self,
        pending: &mut Pending<P::Row>,
        event: &RecordedEvent,
    ) -> Result<bool, StoreError> {
        let Some(key) = self.projection.row_key(event, pending.last_key.as_deref()) else {
            return Ok(false);
        };
        if !pending.rows.contains_key(&key) {
            if self.projection.rows() == Rows::PerStream {
                return Err(StoreError::misuse(format!(
                    "{} routed {} to another row: per-stream keys depend on the stream alone",
                    self.projection.name(),
                    event.stream_id
                )));
            }
            let loaded = self.load_row(&key).await?;
            pending.rows.insert(key.clone(), loaded);
        }
        let Some((_, row)) = pending.rows.get_mut(&key) else {
            return Ok(false);
        };
        pending.last_key = Some(key);
        match self.projection.apply(row.clone(), event)? {
            Some(update) => {
                *row = update.row;
                pending.counters.extend(update.counters);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The events between a stream's checkpoint and `event`, read from the events table.
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

    /// A prefix of the events, committed, tried again while it loses races.
    async fn project_prefix(&self, events: &[RecordedEvent]) -> StreamOutcome {
        let mut attempt = 1;
        loop {
            let failure = match self.try_commit(events).await {
                Ok((Saved::Written, outcome)) => return outcome,
                Ok((Saved::Stale, _)) => "the row moved on".to_owned(),
                Err(error) => return StreamOutcome::failed(error),
            };
            if attempt >= SAVE_ATTEMPTS {
                return StreamOutcome::failed(StoreError::Unavailable(Box::new(Unavailable {
                    operation: "project",
                    resource: format!("{} rows of {}", self.name(), events[0].stream_id),
                    code: None,
                    retryable: true,
                    outcome_unknown: false,
                    source: format!("gave up after {attempt} attempts: {failure}").into(),
                })));
            }
            tracing::debug!(stream_id = %events[0].stream_id, attempt, %failure, "projecting again");
            let cap = SAVE_BACKOFF
                .saturating_mul(2u32.saturating_pow(attempt - 1))
                .min(MAX_SAVE_BACKOFF);
            tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
            attempt += 1;
        }
    }
}

fn skipped(projection: &str, events: &[RecordedEvent]) -> StreamOutcome {
    let skipped = format!("{projection} does not follow {}", events[0].stream_id);
    StreamOutcome {
        outcomes: vec![Projected::Skipped(skipped); events.len()],
        failure: None,
    }
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

    fn follows(&self, stream_id: &StreamId) -> bool {
        self.projection.follows(stream_id)
    }

    async fn project_stream(&self, events: &[RecordedEvent]) -> StreamOutcome {
        let Some(first) = events.first() else {
            return StreamOutcome::default();
        };
        if !self.projection.follows(&first.stream_id) {
            return skipped(self.name(), events);
        }
        let mut done = StreamOutcome::default();
        let mut rest = events;
        while !rest.is_empty() {
            let outcome = self.project_prefix(rest).await;
            let processed = outcome.outcomes.len();
            done.outcomes.extend(outcome.outcomes);
            if outcome.failure.is_some() || processed == 0 {
                done.failure = outcome.failure;
                break;
            }
            rest = &rest[processed..];
        }
        done
    }
}

pub(crate) fn decode_row<R: DeserializeOwned>(
    document: Map<String, Value>,
) -> Result<R, StoreError> {
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
