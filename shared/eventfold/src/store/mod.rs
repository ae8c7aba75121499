//! The event store: append with optimistic concurrency, paginated reads, idempotent commands.
//!
//! [`EventStore`] has two implementations that pass one conformance suite: [`MemoryStore`] for
//! fast tests and [`DynamoStore`] for DynamoDB. Both validate, size and encode through the same
//! planning code, so they cannot disagree on what is accepted.

mod dynamo;
mod memory;
pub(crate) mod plan;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

use crate::chain::{ChainVerifier, Verification};
use crate::codec::{self, Item};
use crate::envelope::{NewEvent, RecordedEvent, StreamHead};
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::upcast::Upcasters;

/// DynamoDB's item size limit (400 KB).
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on actions in one `TransactWriteItems`.
pub const DYNAMODB_MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the total size of one transaction (4 MB).
pub const DYNAMODB_MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// What the writer expects the stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (the store still never forks or gaps it).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be this version (`Exact(0)` is the same as `NoStream`).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (0 if absent) satisfies the expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => v == actual,
        }
    }
}

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

    pub(crate) fn known_head(&self) -> Option<&StreamHead> {
        self.head.as_ref()
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

/// A page of a stream read forwards.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadPage {
    /// The events, upcast.
    pub events: Vec<RecordedEvent>,
    /// The `from` of the following page, if there are more events.
    pub next: Option<u64>,
}

/// A version range to read, inclusive at both ends, with an optional cap on events returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRange {
    /// First version (at least 1).
    pub from: u64,
    /// Last version.
    pub to: u64,
    /// Most events returned.
    pub limit: Option<usize>,
}

impl ReadRange {
    /// Every version from `from` on.
    pub fn from(from: u64) -> Self {
        Self {
            from: from.max(1),
            to: u64::MAX,
            limit: None,
        }
    }

    /// Caps the number of events returned.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Stops at version `to` (inclusive).
    #[must_use]
    pub fn to(mut self, to: u64) -> Self {
        self.to = to;
        self
    }
}

/// Stored events as read, before upcasting, and whether the range holds more past the limit.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRead {
    /// The events as stored.
    pub events: Vec<RecordedEvent>,
    /// Whether the range holds more past the limit.
    pub more: bool,
}

/// Stored items in version order, undecoded, and whether the range holds more past the limit.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemPage {
    /// The items, in version order.
    pub items: Vec<Item>,
    /// Whether the range holds more past the limit.
    pub more: bool,
}

/// A point in a stream's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Up to and including this version.
    Version(u64),
    /// Every event that occurred at or before this instant (a prefix of the stream).
    Time(DateTime<Utc>),
}

/// Events per category between snapshots; 0 disables snapshots for a category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// The interval for categories not named below.
    pub default_every: u64,
    /// Intervals per category.
    pub per_category: BTreeMap<String, u64>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            default_every: 100,
            per_category: BTreeMap::new(),
        }
    }
}

impl SnapshotPolicy {
    /// The interval for a category.
    pub fn every(&self, category: &str) -> u64 {
        self.per_category
            .get(category)
            .copied()
            .unwrap_or(self.default_every)
    }

    /// Whether going from `before` to `after` events crosses a multiple of the interval.
    pub fn crossed(&self, category: &str, before: u64, after: u64) -> bool {
        match self.every(category) {
            0 => false,
            every => before / every != after / every,
        }
    }
}

/// How a store validates and encodes: limits, snapshot marking, upcasting, command retention.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Largest encoded event item accepted (must be at most DynamoDB's 400 KB).
    pub max_event_bytes: usize,
    /// Where streams are marked snapshot-due.
    pub snapshot_policy: SnapshotPolicy,
    /// Applied to every event read.
    pub upcasters: Arc<Upcasters>,
    /// How long command records (idempotency keys) are kept.
    pub command_ttl: chrono::Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            snapshot_policy: SnapshotPolicy::default(),
            upcasters: Arc::new(Upcasters::new()),
            command_ttl: chrono::Duration::days(7),
        }
    }
}

/// An event store. Reads are consistent: a read after a successful append sees it.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends atomically to every stream in the request, or to none.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// Reads the stored items of a range in version order, following every page.
    async fn read_items(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<ItemPage, StoreError>;

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
        let page = self.read_items(stream_id, range).await?;
        let events = page
            .items
            .into_iter()
            .map(codec::decode_event_raw)
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
        let page = self.read_items(stream_id, ReadRange::from(1)).await?;
        for item in page.items {
            let pushed = match codec::decode_event_raw(item) {
                Ok(event) => verifier.push(&event),
                Err(_) => Err(verifier.next_version()),
            };
            if let Err(bad) = pushed {
                return Ok(Verification::broken(bad));
            }
        }
        Ok(verifier.finish())
    }

    /// Applies the store's upcasters to events read raw.
    fn upcast_all(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        let upcasters = &self.settings().upcasters;
        events.into_iter().map(|e| upcasters.upcast(e)).collect()
    }
}
