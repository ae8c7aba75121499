//! The event store: append with optimistic concurrency, paginated reads, idempotent commands.
//!
//! [`EventStore`] has two implementations that pass one conformance suite: [`MemoryStore`] for
//! fast tests and, with the `aws` feature, `DynamoStore` for DynamoDB. Both validate, size and
//! encode through the same planning code, so they cannot disagree on what is accepted.

mod memory;
pub(crate) mod plan;
mod read;
mod settings;
mod snapshots;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use memory::MemoryStore;
pub use read::{AsOf, DocumentPage, RawRead, ReadPage, ReadRange};
pub use settings::{SnapshotPolicy, StoreSettings};
pub use snapshots::{MemorySnapshots, Snapshot, SnapshotStore, snapshot_mac_input};

use crate::chain::{ChainVerifier, Verification};
use crate::envelope::{NewEvent, RecordedEvent, StreamHead};
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::stored;
pub use crate::version::{CurrentVersion, ExpectedVersion};

/// Events to append to one stream.
#[derive(Clone, Debug)]
pub struct StreamWrite {
    /// The stream appended to.
    pub stream_id: StreamId,
    /// The version it must be at.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    head: Option<StreamHead>,
}

impl StreamWrite {
    /// Appends `events` to `stream_id` if it is at `expected`.
    pub fn new(stream_id: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream_id,
            expected,
            events,
            head: None,
        }
    }

    /// Continues from a head read earlier: `Exact(head.version)` with no read before the write.
    pub fn after(head: StreamHead, events: Vec<NewEvent>) -> Self {
        Self {
            stream_id: head.stream_id().clone(),
            expected: ExpectedVersion::Exact(head.version()),
            events,
            head: Some(head),
        }
    }
}

/// The idempotency record to write with an append.
#[derive(Clone, Debug)]
pub struct NewCommand {
    /// The command's id (its idempotency key).
    pub command_id: CommandId,
    /// Fingerprint of the request: the same id with another fingerprint is rejected.
    pub request_hash: String,
    /// What the command generated and a repeat must report again (ids, for instance); opaque
    /// to the store.
    pub receipt: Option<Value>,
}

/// One atomic append: any number of streams, optionally with a command record. All or nothing.
#[derive(Clone, Debug, Default)]
pub struct AppendRequest {
    /// One write per stream.
    pub writes: Vec<StreamWrite>,
    /// The command record written in the same transaction, if any.
    pub command: Option<NewCommand>,
}

impl AppendRequest {
    /// An append to one stream.
    pub fn single(stream_id: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            writes: vec![StreamWrite::new(stream_id, expected, events)],
            command: None,
        }
    }

    /// Adds a stream to the transaction.
    #[must_use]
    pub fn with_write(mut self, write: StreamWrite) -> Self {
        self.writes.push(write);
        self
    }

    /// Makes the append idempotent under `command`.
    #[must_use]
    pub fn with_command(mut self, command: NewCommand) -> Self {
        self.command = Some(command);
        self
    }
}

/// The versions written to one stream by an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenStream {
    /// The stream.
    pub stream_id: StreamId,
    /// The first version written.
    pub first_version: u64,
    /// The last version written: the stream's new head.
    pub last_version: u64,
}

/// A stored command: what it wrote and what it generated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The command's id.
    pub command_id: CommandId,
    /// Fingerprint of the request that ran.
    pub request_hash: String,
    /// The versions it wrote.
    pub streams: Vec<WrittenStream>,
    /// The receipt given with the command (see [`NewCommand::receipt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Value>,
    /// When it ran.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub recorded_at: DateTime<Utc>,
    /// Epoch seconds after which DynamoDB's TTL may delete the record.
    pub expires_at: i64,
}

impl CommandRecord {
    /// The one rule of idempotency: a command id seen before answers with its first
    /// execution if the request is the same, and is refused if it is not.
    pub fn replay_for(self, request_hash: &str) -> Result<Self, StoreError> {
        if self.request_hash == request_hash {
            Ok(self)
        } else {
            Err(StoreError::IdempotencyMismatch {
                command_id: self.command_id,
            })
        }
    }
}

/// What an append did.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendResult {
    /// The events were written.
    Written(AppendOutcome),
    /// The command had already been executed with the same request; nothing was written.
    Replayed(CommandRecord),
}

impl AppendResult {
    /// The streams and versions written, by this call or by the original command.
    pub fn streams(&self) -> &[WrittenStream] {
        match self {
            Self::Written(outcome) => &outcome.streams,
            Self::Replayed(record) => &record.streams,
        }
    }
}

/// The result of a successful write.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendOutcome {
    /// The versions written, per stream.
    pub streams: Vec<WrittenStream>,
    /// New heads, to continue appending without reading.
    pub heads: Vec<StreamHead>,
}

/// An event store. Reads are consistent: a read after a successful append sees it.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends atomically to every stream in the request, or to none.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// Reads the stored documents of a range in version order, following every page.
    async fn read_documents(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<DocumentPage, StoreError>;

    /// The last event's version and chain, `None` for a stream that does not exist.
    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError>;

    /// A stored command record.
    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError>;

    /// Validation, limits and upcasters in force.
    fn settings(&self) -> &StoreSettings;

    /// Reads stored events in a range, as written (no upcasting).
    async fn read_raw(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<RawRead, StoreError> {
        let page = self.read_documents(stream_id, range).await?;
        let events = page
            .documents
            .into_iter()
            .map(stored::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RawRead {
            events,
            more: page.more,
        })
    }

    /// Reads up to `limit` events from version `from` (inclusive), upcast to the newest schema.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<ReadPage, StoreError> {
        let raw = self
            .read_raw(stream_id, ReadRange::from(from).limit(limit))
            .await?;
        let next = if raw.more {
            raw.events.last().map(|e| e.version + 1)
        } else {
            None
        };
        Ok(ReadPage {
            events: self.upcast_all(raw.events)?,
            next,
        })
    }

    /// Reads every event from version `from` on, upcast, following every page.
    async fn read_all(
        &self,
        stream_id: &StreamId,
        from: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let raw = self.read_raw(stream_id, ReadRange::from(from)).await?;
        self.upcast_all(raw.events)
    }

    /// Reads the stream as it was at a version or an instant.
    async fn read_as_of(
        &self,
        stream_id: &StreamId,
        as_of: AsOf,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = match as_of {
            AsOf::Version(version) => {
                self.read_raw(stream_id, ReadRange::from(1).to(version))
                    .await?
                    .events
            }
            AsOf::Time(at) => {
                let mut events = self.read_raw(stream_id, ReadRange::from(1)).await?.events;
                let cut = events
                    .iter()
                    .position(|e| e.occurred_at > at)
                    .unwrap_or(events.len());
                events.truncate(cut);
                events
            }
        };
        self.upcast_all(events)
    }

    /// Recomputes the stream's integrity chain from the stored events.
    ///
    /// An item that no longer decodes counts as tampered: its version is reported, not an error.
    async fn verify_stream(&self, stream_id: &StreamId) -> Result<Verification, StoreError> {
        let mut verifier = ChainVerifier::new();
        let page = self.read_documents(stream_id, ReadRange::from(1)).await?;
        for document in page.documents {
            let pushed = match stored::decode(document) {
                Ok(event) => verifier.push(&event),
                Err(_) => Err(verifier.next_version()),
            };
            if let Err(bad) = pushed {
                return Ok(Verification::broken(bad));
            }
        }
        Ok(verifier.finish())
    }

    /// Recomputes the chain of at most `limit` events from version `from` on, starting from
    /// the stored chain of the event before (which a verification of the versions before it
    /// vouches for): one request's worth of a long stream. Returns the verification of the
    /// range and the `from` of the next one, if the stream goes on.
    async fn verify_range(
        &self,
        stream_id: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<(Verification, Option<u64>), StoreError> {
        let from = from.max(1);
        // From the event before the range (whose chain the range continues), if there is one.
        let (start, extra) = if from > 1 { (from - 1, 1) } else { (1, 0) };
        let page = self
            .read_documents(stream_id, ReadRange::from(start).limit(limit + extra))
            .await?;
        let mut documents = page.documents.into_iter();
        let mut verifier = if from > 1 {
            match documents.next().map(stored::decode) {
                Some(Ok(previous)) if previous.version == from - 1 => {
                    ChainVerifier::resume(previous.chain, from)
                }
                // The event before the range is missing or unreadable: the range cannot be
                // vouched for from it.
                _ => return Ok((Verification::broken(from - 1), None)),
            }
        } else {
            ChainVerifier::new()
        };
        for document in documents {
            let pushed = match stored::decode(document) {
                Ok(event) => verifier.push(&event),
                Err(_) => Err(verifier.next_version()),
            };
            if let Err(bad) = pushed {
                return Ok((Verification::broken(bad), None));
            }
        }
        let next = page.more.then(|| verifier.next_version());
        Ok((verifier.finish_range(from), next))
    }

    /// Applies the store's upcasters to events read raw.
    fn upcast_all(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        let upcasters = &self.settings().upcasters;
        events.into_iter().map(|e| upcasters.upcast(e)).collect()
    }
}
