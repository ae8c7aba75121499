//! Where snapshots live. A snapshot is only ever an optimisation: it may be missing, behind,
//! or of an older schema, and loading is correct in every case.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::ids::StreamId;
use crate::stored::{self, Document};

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
    /// A keyed MAC over the stream, the version, the chain value of the event at that version
    /// and the state (see [`snapshot_mac_input`]): a snapshot whose state was changed in the
    /// table, or moved to another stream or version, does not verify and is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What a snapshot's MAC covers: its stream, version and state schema, the chain value of the
/// event at its version (binding it to the history it was folded from), and its state, as
/// canonical JSON.
pub fn snapshot_mac_input(snapshot: &Snapshot, chain: &str) -> Vec<u8> {
    let covered = serde_json::json!({
        "stream_id": snapshot.stream_id.as_str(),
        "version": snapshot.version,
        "state_schema": snapshot.state_schema,
        "chain": chain,
        "state": snapshot.state,
    });
    let mut text = String::new();
    crate::chain::write_canonical_json(&covered, &mut text);
    text.into_bytes()
}

/// Where snapshots live.
#[async_trait]
pub trait SnapshotStore: Send + Sync + fmt::Debug {
    /// The latest snapshot of a stream. One that does not decode is `Corrupt`.
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot unless one at the same or a later version exists; returns whether it
    /// was written.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError>;

    /// Stores a snapshot over the stored one, whatever its version: the caller found that one
    /// bogus (it does not verify, or it is ahead of its stream). Whether it was written.
    async fn replace_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError>;
}

/// Snapshots in process memory, stored as documents like the DynamoDB table's items.
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    documents: Mutex<HashMap<String, Document>>,
}

impl MemorySnapshots {
    /// An empty snapshot store.
    pub fn new() -> Self {
        Self::default()
    }

    fn documents(&self) -> MutexGuard<'_, HashMap<String, Document>> {
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `snapshot` unless the stored one's version says to keep it; whether it stored.
    fn store_unless(
        &self,
        snapshot: &Snapshot,
        keep: impl Fn(u64) -> bool,
    ) -> Result<bool, StoreError> {
        let document = stored::to_document(snapshot, "a snapshot")?;
        let mut documents = self.documents();
        let kept = documents
            .get(snapshot.stream_id.as_str())
            .and_then(|existing| existing.get(crate::names::snapshots::VERSION))
            .and_then(Value::as_u64)
            .is_some_and(keep);
        if kept {
            return Ok(false);
        }
        documents.insert(snapshot.stream_id.to_string(), document);
        Ok(true)
    }

    /// Replaces a stored snapshot wholesale (tests of corrupt and foreign snapshots).
    pub fn put_raw(&self, stream_id: &StreamId, document: Document) {
        self.documents().insert(stream_id.to_string(), document);
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let document = self.documents().get(stream_id.as_str()).cloned();
        document
            .map(|document| stored::from_document(document, "snapshot"))
            .transpose()
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        self.store_unless(snapshot, |stored| stored >= snapshot.version)
    }

    async fn replace_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        self.store_unless(snapshot, |_| false)
    }
}
