//! Snapshots: the folded state of a stream at a version, so loading stays cheap however long
//! the stream grows. A snapshot is only ever an optimisation: it may be missing, behind, or of
//! an older schema, and loading is correct in every case.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_lambda_events::streams::{SqsBatchItemFailure, SqsEventResponse};
use futures::StreamExt;
use futures::future::BoxFuture;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::Aggregate;
use crate::codec::{self, Item};
use crate::command::CommandService;
use crate::error::{StoreError, from_sdk};
use crate::ids::StreamId;
use crate::names::snapshots;

/// A stream's state at a version, serialized by its aggregate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream.
    pub stream_id: StreamId,
    /// The version the state reflects.
    pub version: u64,
    /// The aggregate's `STATE_SCHEMA` when the snapshot was taken.
    pub state_schema: u32,
    /// The state, as the aggregate serializes it.
    pub state: Value,
    /// When it was taken.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub taken_at: DateTime<Utc>,
}

/// A message on the snapshot queue: snapshot this stream, which reached at least `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The stream to snapshot.
    pub stream_id: String,
    /// The version at which it became due.
    pub version: u64,
}

/// Where snapshots live.
#[async_trait]
pub trait SnapshotStore: Send + Sync + fmt::Debug {
    /// The latest snapshot of a stream. An item that does not decode is `Corrupt`.
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot unless one at the same or a later version exists; returns whether it
    /// was written.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError>;
}

/// Snapshots in process memory, stored as encoded items like the DynamoDB table.
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    items: Mutex<HashMap<String, Item>>,
}

impl MemorySnapshots {
    /// An empty snapshot store.
    pub fn new() -> Self {
        Self::default()
    }

    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<String, Item>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces a stored snapshot item wholesale (tests of corrupt and foreign snapshots).
    pub fn put_raw(&self, stream_id: &StreamId, item: Item) {
        self.items().insert(stream_id.to_string(), item);
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let item = self.items().get(stream_id.as_str()).cloned();
        item.map(|item| codec::from_item(item, "snapshot"))
            .transpose()
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        let item = codec::to_item(snapshot)?;
        let mut items = self.items();
        let newer_exists = items
            .get(snapshot.stream_id.as_str())
            .and_then(|existing| match existing.get(snapshots::VERSION) {
                Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            })
            .is_some_and(|stored| stored >= snapshot.version);
        if newer_exists {
            return Ok(false);
        }
        items.insert(snapshot.stream_id.to_string(), item);
        Ok(true)
    }
}

/// Snapshots in a DynamoDB table keyed by stream id.
#[derive(Clone, Debug)]
pub struct DynamoSnapshots {
    client: Client,
    table: String,
}

impl DynamoSnapshots {
    /// A snapshot store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl SnapshotStore for DynamoSnapshots {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        // Eventually consistent: half the cost, and a snapshot is allowed to be behind.
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                snapshots::STREAM_ID,
                AttributeValue::S(stream_id.to_string()),
            )
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.table, e))?;
        output
            .item
            .map(|item| codec::from_item(item, "snapshot"))
            .transpose()
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(codec::to_item(snapshot)?))
            .condition_expression("attribute_not_exists(#s) OR #v < :v")
            .expression_attribute_names("#s", snapshots::STREAM_ID)
            .expression_attribute_names("#v", snapshots::VERSION)
            .expression_attribute_values(":v", AttributeValue::N(snapshot.version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(from_sdk("PutItem", &self.table, err)),
            },
        }
    }
}

/// Takes a snapshot of one stream with the aggregate of its category.
type SnapshotFn = for<'a> fn(
    &'a CommandService,
    &'a StreamId,
) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>>;

fn snapshot_with<'a, A: Aggregate>(
    commands: &'a CommandService,
    stream_id: &'a StreamId,
) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>> {
    Box::pin(commands.snapshot::<A>(stream_id))
}

/// What one snapshot request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// A snapshot at this version was written.
    Written(u64),
    /// The stored snapshot is already as new.
    UpToDate,
    /// No aggregate is registered for the stream's category.
    Skipped(String),
}

/// Snapshots streams with the application's aggregates, chosen by category: the snapshot
/// function's logic, and the operator's backfill.
#[derive(Clone)]
pub struct Snapshotter {
    commands: CommandService,
    by_category: BTreeMap<&'static str, SnapshotFn>,
}

impl fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshotter")
            .field("categories", &self.by_category.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// A snapshotter loading through `commands` (which must have a snapshot store).
    pub fn new(commands: CommandService) -> Self {
        Self {
            commands,
            by_category: BTreeMap::new(),
        }
    }

    /// Snapshots streams of `A::CATEGORY` with `A`.
    #[must_use]
    pub fn register<A: Aggregate>(mut self) -> Self {
        self.by_category.insert(A::CATEGORY, snapshot_with::<A>);
        self
    }

    /// The categories registered.
    pub fn categories(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_category.keys().copied()
    }

    /// The command service used to load.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// Snapshots one stream if its category is registered and the snapshot would be newer.
    pub async fn snapshot(&self, stream_id: &StreamId) -> Result<SnapshotOutcome, StoreError> {
        let Some(snapshot) = self.by_category.get(stream_id.category()) else {
            return Ok(SnapshotOutcome::Skipped(format!(
                "no aggregate for category {}",
                stream_id.category()
            )));
        };
        Ok(match snapshot(&self.commands, stream_id).await? {
            Some(written) => SnapshotOutcome::Written(written.version),
            None => SnapshotOutcome::UpToDate,
        })
    }

    /// Handles one snapshot-queue message.
    pub async fn process_message(
        &self,
        message: &SqsMessage,
    ) -> Result<SnapshotOutcome, SnapshotRequestError> {
        let body = message.body.as_deref().unwrap_or_default();
        let request: SnapshotRequest =
            serde_json::from_str(body).map_err(SnapshotRequestError::NotARequest)?;
        let stream_id =
            StreamId::parse(&request.stream_id).map_err(SnapshotRequestError::BadStream)?;
        let outcome = self.snapshot(&stream_id).await?;
        tracing::info!(stream_id = %stream_id, requested = request.version, ?outcome, "snapshot request");
        Ok(outcome)
    }

    /// Handles a batch of snapshot-queue messages, a few at a time; the response names every
    /// message that failed, so SQS redelivers those alone (and dead-letters them in the end).
    pub async fn process_batch(
        &self,
        messages: &[SqsMessage],
    ) -> (SqsEventResponse, SnapshotReport) {
        let pending: Vec<_> = messages
            .iter()
            .map(|message| async move { (message, self.process_message(message).await) })
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
}

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

/// Snapshot requests served at once within a batch.
const SNAPSHOT_CONCURRENCY: usize = 4;

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
