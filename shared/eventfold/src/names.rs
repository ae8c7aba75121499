//! Every table key, attribute name and environment variable the library uses, in one place.
//!
//! A drift test checks these against `infra/template.yaml`, so code and template cannot disagree.

/// Events table: one item per event, keyed by stream and version.
pub mod events {
    /// Partition key (S): `<Category>-<id>`.
    pub const STREAM_ID: &str = "stream_id";
    /// Sort key (N): 1-based, gap-free per stream.
    pub const VERSION: &str = "version";
    /// The event's UUIDv7 (S).
    pub const EVENT_ID: &str = "event_id";
    /// The event type (S).
    pub const EVENT_TYPE: &str = "event_type";
    /// The payload's schema version (N).
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// When it happened (S, RFC 3339, microseconds, UTC).
    pub const OCCURRED_AT: &str = "occurred_at";
    /// The payload (M).
    pub const PAYLOAD: &str = "payload";
    /// Correlation, causation, command and actor (M).
    pub const METADATA: &str = "metadata";
    /// The integrity chain value (S, hex SHA-256).
    pub const CHAIN: &str = "chain";
    /// Present (and true) only on the event at which a stream crossed its snapshot interval.
    pub const SNAPSHOT_DUE: &str = "snapshot_due";
}

/// Commands table: idempotency records, written in the same transaction as the events.
pub mod commands {
    /// Partition key (S).
    pub const COMMAND_ID: &str = "command_id";
    /// Fingerprint of the request (S).
    pub const REQUEST_HASH: &str = "request_hash";
    /// Streams and versions written (L).
    pub const STREAMS: &str = "streams";
    /// What the command generated, reported again on a repeat (M).
    pub const RECEIPT: &str = "receipt";
    /// When it ran (S).
    pub const RECORDED_AT: &str = "recorded_at";
    /// TTL attribute (N, epoch seconds).
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Snapshots table: the latest folded state of a stream.
pub mod snapshots {
    /// Partition key (S).
    pub const STREAM_ID: &str = "stream_id";
    /// The version the state reflects (N).
    pub const VERSION: &str = "version";
    /// The state (M).
    pub const STATE: &str = "state";
    /// The aggregate's state schema (N).
    pub const STATE_SCHEMA: &str = "state_schema";
    /// When it was taken (S).
    pub const TAKEN_AT: &str = "taken_at";
    /// The snapshot key's MAC over it (S, hex), where snapshots are signed.
    pub const MAC: &str = "mac";
}

/// Subject keys table: each subject's data key, wrapped by a KMS key, or its tombstone.
pub mod subject_keys {
    /// Partition key (S): the subject.
    pub const SUBJECT: &str = "subject";
    /// The data key, encrypted by the KMS key with the subject as encryption context (B).
    pub const WRAPPED_KEY: &str = "wrapped_key";
    /// When the key was made (S).
    pub const CREATED_AT: &str = "created_at";
    /// When the subject was forgotten (S): the key is gone and is not made again.
    pub const FORGOTTEN_AT: &str = "forgotten_at";
}

/// Feed table: the index of every append (pages of each partition, and each stream's mark),
/// and its consumers' checkpoints.
pub mod feed {
    /// Partition key (S): `P#<partition>` for a partition's pages, `M#<stream>` for a
    /// stream's mark.
    pub const PK: &str = "pk";
    /// Sort key (N): a page's first position; 0 for a mark.
    pub const SK: &str = "sk";
    /// A page's end: the position after its last event (N).
    pub const END: &str = "end";
    /// A page's spans: stream, first version and types (L).
    pub const SPANS: &str = "spans";
    /// When a page was written (S).
    pub const INDEXED_AT: &str = "indexed_at";
    /// A mark's version: the stream's last event indexed (N).
    pub const VERSION: &str = "version";
    /// The key prefix of a partition's pages.
    pub const PAGE_PREFIX: &str = "P#";
    /// The key prefix of a stream's mark.
    pub const MARK_PREFIX: &str = "M#";
    /// The key prefix of a feed consumer's checkpoints (sort key: the partition).
    pub const CHECKPOINT_PREFIX: &str = "C#";
    /// A checkpoint's next position to read (N).
    pub const POSITION: &str = "position";
    /// The instance holding a checkpoint's lease (S).
    pub const OWNER: &str = "owner";
    /// When that lease ends, epoch milliseconds (N).
    pub const LEASE_UNTIL: &str = "lease_until";
    /// The key prefix of a feed consumer's parked streams (one item, sort key 0).
    pub const PARKED_PREFIX: &str = "K#";
    /// The parked streams, by stream id (M).
    pub const PARKED: &str = "parked";
    /// The key of the item naming every consumer that has parked a stream (sort key 0).
    pub const PARKERS_KEY: &str = "F#parkers";
    /// Those consumers' names (SS).
    pub const CONSUMERS: &str = "consumers";
    /// The key of the item recording the feed's partition count (sort key 0).
    pub const PARTITIONS_KEY: &str = "F#partitions";
    /// The partition count it records (N).
    pub const PARTITIONS: &str = "partitions";
}

/// Read-model tables: one item per row, keyed by the table's own key attribute.
pub mod read_model {
    /// A row's version: the last applied version of the stream it follows, or a shared row's
    /// revision; a checkpoint's last applied version (N).
    pub const VERSION: &str = "version";
    /// A shared projection's checkpoint: the row its stream's last routed event went to (S).
    pub const ROW_KEY: &str = "row_key";
    /// A per-stream row: the stream it follows (S), so an operator sees each stream's
    /// progress without knowing the projection.
    pub const SOURCE_STREAM: &str = "source_stream";
}

/// Environment variables the library reads, once at start, into `aws::Config` (feature `aws`).
pub mod env {
    /// The events table's name.
    pub const EVENTS_TABLE: &str = "EVENTS_TABLE";
    /// The commands table's name.
    pub const COMMANDS_TABLE: &str = "COMMANDS_TABLE";
    /// The snapshots table's name.
    pub const SNAPSHOTS_TABLE: &str = "SNAPSHOTS_TABLE";
    /// The subscribers' FIFO queue.
    pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
    /// The snapshot request queue.
    pub const SNAPSHOT_QUEUE_URL: &str = "SNAPSHOT_QUEUE_URL";
    /// Events between snapshots (0: none).
    pub const SNAPSHOT_EVERY: &str = "SNAPSHOT_EVERY";
    /// Largest event item accepted, in bytes.
    pub const MAX_EVENT_BYTES: &str = "MAX_EVENT_BYTES";
    /// Days command records are kept.
    pub const COMMAND_TTL_DAYS: &str = "COMMAND_TTL_DAYS";
    /// The KMS HMAC key of keyed claims (an id, ARN or alias), where a service makes them.
    pub const CLAIM_KEY_ID: &str = "CLAIM_KEY_ID";
    /// The subject keys table, where a service keeps personal data.
    pub const SUBJECT_KEYS_TABLE: &str = "SUBJECT_KEYS_TABLE";
    /// The KMS key that wraps subjects' data keys.
    pub const SUBJECT_KEY_ID: &str = "SUBJECT_KEY_ID";
    /// The KMS HMAC key that signs snapshots, where a service signs them.
    pub const SNAPSHOT_KEY_ID: &str = "SNAPSHOT_KEY_ID";
    /// The feed table, where a service keeps the global feed.
    pub const FEED_TABLE: &str = "FEED_TABLE";
    /// The feed's partition count (fixed for the feed's life: streams are placed by it).
    pub const FEED_PARTITIONS: &str = "FEED_PARTITIONS";
    /// The timers table, where reactors' timers wait.
    pub const TIMERS_TABLE: &str = "TIMERS_TABLE";
}
