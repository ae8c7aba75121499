//! Snapshots: the folded state of a stream at a version, so loading stays cheap however long
//! the stream grows. A snapshot is only ever an optimisation: it may be missing, behind, or of
//! an older schema, and loading is correct in every case.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{self, Item};
use crate::error::{StoreError, from_sdk};
use crate::ids::StreamId;
use crate::names::snapshots;

/// A stream's state at a version, serialized by its aggregate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream_id: StreamId,
    pub version: u64,
    /// The aggregate's `STATE_SCHEMA` when the snapshot was taken.
    pub state_schema: u32,
    pub state: Value,
    #[serde(with = "crate::envelope::timestamp_format")]
    pub taken_at: DateTime<Utc>,
}

/// A message on the snapshot queue: snapshot this stream, which reached at least `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    pub stream_id: String,
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
            .map_err(|e| from_sdk("GetItem", e))?;
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
                _ => Err(from_sdk("PutItem", err)),
            },
        }
    }
}
