//! Taking snapshots: the folded state of a stream at a version, so loading stays cheap however
//! long the stream grows. The [`Snapshotter`] knows the application's aggregates by category
//! and loads through the command service's public [`load`](CommandService::load); where
//! snapshots live is the store's ([`crate::store::SnapshotStore`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::command::CommandService;
use crate::envelope::now;
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::store::{Snapshot, SnapshotStore, snapshot_mac_input};

/// A message on the snapshot queue: snapshot this stream, which reached at least `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The stream to snapshot.
    pub stream_id: String,
    /// The version at which it became due.
    pub version: u64,
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

/// Takes a snapshot of one stream with the aggregate of its category.
type TakeFn =
    for<'a> fn(&'a Snapshotter, &'a StreamId) -> BoxFuture<'a, Result<SnapshotOutcome, StoreError>>;

/// Snapshots streams with the application's aggregates, chosen by category: the snapshot
/// function's logic, and the operator's backfill.
#[derive(Clone)]
pub struct Snapshotter {
    commands: CommandService,
    snapshots: Arc<dyn SnapshotStore>,
    by_category: BTreeMap<&'static str, TakeFn>,
}

impl fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshotter")
            .field("categories", &self.by_category.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// A snapshotter loading through `commands` and writing to its snapshot store.
    pub fn new(commands: CommandService) -> Result<Self, StoreError> {
        let snapshots = commands.snapshots().cloned().ok_or_else(|| {
            StoreError::misuse("a snapshotter needs a command service with a snapshot store")
        })?;
        Ok(Self {
            commands,
            snapshots,
            by_category: BTreeMap::new(),
        })
    }

    /// Snapshots streams of `A::CATEGORY` with `A`.
    #[must_use]
    pub fn register<A: Aggregate>(mut self) -> Self {
        self.by_category
            .insert(A::CATEGORY, |snapshotter, stream_id| {
                Box::pin(snapshotter.take::<A>(stream_id))
            });
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
        let Some(take) = self.by_category.get(stream_id.category()) else {
            return Ok(SnapshotOutcome::Skipped(format!(
                "no aggregate for category {}",
                stream_id.category()
            )));
        };
        take(self, stream_id).await
    }

    /// Loads `A` and writes its state if it is newer than the stored snapshot.
    async fn take<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<SnapshotOutcome, StoreError> {
        let loaded = self.commands.load::<A>(stream_id).await?;
        if loaded.version == 0 || loaded.snapshot_version == Some(loaded.version) {
            return Ok(SnapshotOutcome::UpToDate);
        }
        let mut snapshot = Snapshot {
            stream_id: stream_id.clone(),
            version: loaded.version,
            state_schema: A::STATE_SCHEMA,
            state: serde_json::to_value(&loaded.state)
                .map_err(|e| StoreError::misuse(format!("state does not serialize: {e}")))?,
            taken_at: now(),
            mac: None,
        };
        if let (Some(key), Some(head)) = (self.commands.snapshot_key(), &loaded.head) {
            let mac = key
                .mac(&snapshot_mac_input(&snapshot, head.chain()))
                .await?;
            snapshot.mac = Some(mac);
        }
        // A stored snapshot of this very version that differs (its state changed in the table,
        // so it no longer verifies) is replaced, and so is one ahead of the stream (no genuine
        // snapshot is: events are never deleted); the same one is left alone.
        let tampered = match self.snapshots.load_snapshot(stream_id).await {
            Ok(Some(stored)) if stored.version > snapshot.version => {
                // Ahead of the head this load saw; a snapshot taken meanwhile at a newer head
                // is genuine, so the head is read again (a rare path).
                let head = self.commands.store().read_head(stream_id).await?;
                head.is_none_or(|head| head.version() < stored.version)
            }
            Ok(Some(stored)) => {
                stored.version == snapshot.version
                    && (stored.state != snapshot.state || stored.mac != snapshot.mac)
            }
            Ok(None) => false,
            Err(StoreError::Corrupt(_)) => true,
            Err(other) => return Err(other),
        };
        let written = if tampered {
            self.snapshots.replace_snapshot(&snapshot).await?
        } else {
            self.snapshots.save_snapshot(&snapshot).await?
        };
        Ok(if written {
            SnapshotOutcome::Written(snapshot.version)
        } else {
            SnapshotOutcome::UpToDate
        })
    }
}
