//! Where a projection's rows, counters and checkpoints live, and the one atomic write the
//! runtime makes: a [`Commit`].

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::CounterDelta;
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::limits::MAX_TRANSACTION_ITEMS;

/// Counter rows' keys start with this; no row key may.
pub const COUNTER_PREFIX: char = '#';
/// Checkpoint items' keys start with this (then the source stream id); no row key may.
pub const CHECKPOINT_PREFIX: char = '$';

/// A row as stored: its version and the row document (`None`: a version without a row).
///
/// For a row that follows one stream the version is that stream's last applied version (the
/// checkpoint); for a shared row it is the row's revision, moved by every write.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRow {
    /// The row's version (see above).
    pub version: u64,
    /// The row, as a JSON object.
    pub row: Option<Map<String, Value>>,
}

/// How far a source stream has been applied to a projection with shared rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The stream's last applied version.
    pub version: u64,
    /// The row the stream's last routed event went to.
    pub row_key: Option<String>,
}

/// A row to write if its stored version is still `expected` (0: no row stored).
#[derive(Clone, Debug, PartialEq)]
pub struct RowWrite {
    /// The row's key.
    pub key: String,
    /// The version the write expects.
    pub expected: u64,
    /// The row to store.
    pub row: StoredRow,
    /// The stream a per-stream row follows (`None` for a shared row), stored beside it.
    pub source: Option<StreamId>,
}

/// A source stream's checkpoint to write if its stored version is still `expected` (0: none).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointWrite {
    /// The source stream.
    pub stream_id: StreamId,
    /// The version the write expects.
    pub expected: u64,
    /// The checkpoint to store.
    pub checkpoint: Checkpoint,
}

/// One atomic write: rows, a checkpoint and counters, all or nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Commit {
    /// The source stream's checkpoint (shared rows only).
    pub checkpoint: Option<CheckpointWrite>,
    /// The rows written.
    pub rows: Vec<RowWrite>,
    /// The counters moved.
    pub counters: Vec<CounterDelta>,
}

/// Whether a conditional write happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Written, with its counters.
    Written,
    /// A stored version was not the expected one; nothing was written.
    Stale,
}

/// Where a projection's rows, counters and checkpoints live.
#[async_trait]
pub trait ReadModelStore: Send + Sync + fmt::Debug {
    /// The attribute that holds row keys.
    fn key_attribute(&self) -> &str;

    /// One row, read consistently.
    async fn load(&self, key: &str) -> Result<Option<StoredRow>, StoreError>;

    /// A source stream's checkpoint, read consistently.
    async fn load_checkpoint(&self, stream_id: &StreamId)
    -> Result<Option<Checkpoint>, StoreError>;

    /// Writes everything in `commit` if every stored version is the expected one, else
    /// nothing. Checked by [`check_commit`] first.
    async fn commit(&self, commit: &Commit) -> Result<Saved, StoreError>;

    /// Writes one row if its stored version is `expected`, with `counters`, atomically.
    async fn save(
        &self,
        key: &str,
        expected: u64,
        row: &StoredRow,
        counters: &[CounterDelta],
    ) -> Result<Saved, StoreError> {
        self.commit(&Commit {
            checkpoint: None,
            rows: vec![RowWrite {
                key: key.to_owned(),
                expected,
                row: row.clone(),
                source: None,
            }],
            counters: counters.to_vec(),
        })
        .await
    }

    /// The counters of one counter row (empty if it was never touched).
    async fn counters(&self, key: &str) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Every row with its key (counter rows and checkpoints excluded), for comparisons and
    /// exports.
    async fn rows(&self) -> Result<BTreeMap<String, StoredRow>, StoreError>;

    /// Deletes every row, counter and checkpoint: the start of a rebuild. Returns how many
    /// items were deleted.
    async fn clear(&self) -> Result<usize, StoreError>;
}

/// The counter deltas of a commit merged by row and counter, without those that add nothing.
pub type MergedCounters<'a> = BTreeMap<&'a str, BTreeMap<&'a str, i64>>;

/// What every read-model store checks before a commit writes anything: row keys and counter
/// keys in their own namespaces, row documents clear of the reserved names, each row once, and
/// the whole within one transaction. Answers the counters merged.
pub fn check_commit<'a>(
    commit: &'a Commit,
    key_attribute: &str,
) -> Result<MergedCounters<'a>, StoreError> {
    let mut keys = std::collections::HashSet::new();
    for write in &commit.rows {
        if write.key.is_empty()
            || write.key.starts_with(COUNTER_PREFIX)
            || write.key.starts_with(CHECKPOINT_PREFIX)
        {
            return Err(StoreError::misuse(format!(
                "a row key may not be empty or start with {COUNTER_PREFIX} or \
                 {CHECKPOINT_PREFIX}: {:?}",
                write.key
            )));
        }
        if !keys.insert(write.key.as_str()) {
            return Err(StoreError::misuse(format!(
                "row {:?} appears twice in one commit",
                write.key
            )));
        }
        if let Some(document) = &write.row.row {
            if document.is_empty() {
                return Err(StoreError::misuse(
                    "a projection row must serialize to an object with at least one field",
                ));
            }
            for reserved in [
                key_attribute,
                crate::names::read_model::VERSION,
                crate::names::read_model::SOURCE_STREAM,
            ] {
                if document.contains_key(reserved) {
                    return Err(StoreError::misuse(format!(
                        "a projection row may not have a field named {reserved:?} (reserved)"
                    )));
                }
            }
        }
    }
    let mut merged: MergedCounters<'a> = BTreeMap::new();
    for delta in &commit.counters {
        if !delta.key.starts_with(COUNTER_PREFIX) {
            return Err(StoreError::misuse(format!(
                "a counter row key must start with {COUNTER_PREFIX}: {:?}",
                delta.key
            )));
        }
        if delta.name == key_attribute {
            return Err(StoreError::misuse("a counter may not be named as the key"));
        }
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
    let items = commit.rows.len() + merged.len() + usize::from(commit.checkpoint.is_some());
    if items > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::TooLarge {
            what: "items in one read-model commit",
            actual: items,
            limit: MAX_TRANSACTION_ITEMS,
        });
    }
    Ok(merged)
}

/// The key of a source stream's checkpoint item.
pub fn checkpoint_key(stream_id: &StreamId) -> String {
    format!("{CHECKPOINT_PREFIX}{stream_id}")
}
