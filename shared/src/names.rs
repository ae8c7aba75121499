//! Every table key, attribute name and environment variable the code uses, in one place.
//!
//! A drift test checks these against `infra/template.yaml`, so code and template cannot disagree.

/// Events table: one item per event, keyed by stream and version.
pub mod events {
    /// Partition key (S): `<Category>-<id>`.
    pub const STREAM_ID: &str = "stream_id";
    /// Sort key (N): 1-based, gap-free per stream.
    pub const VERSION: &str = "version";
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const PAYLOAD: &str = "payload";
    pub const METADATA: &str = "metadata";
    pub const CHAIN: &str = "chain";
    /// Present (and true) only on the event at which a stream crossed its snapshot interval.
    pub const SNAPSHOT_DUE: &str = "snapshot_due";
}

/// Commands table: idempotency records, written in the same transaction as the events.
pub mod commands {
    /// Partition key (S).
    pub const COMMAND_ID: &str = "command_id";
    pub const REQUEST_HASH: &str = "request_hash";
    pub const STREAMS: &str = "streams";
    pub const RESPONSE: &str = "response";
    pub const RECORDED_AT: &str = "recorded_at";
    /// TTL attribute (N, epoch seconds).
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Snapshots table: the latest folded state of a stream.
pub mod snapshots {
    /// Partition key (S).
    pub const STREAM_ID: &str = "stream_id";
    pub const VERSION: &str = "version";
    pub const STATE: &str = "state";
    pub const STATE_SCHEMA: &str = "state_schema";
    pub const CHAIN: &str = "chain";
    pub const TAKEN_AT: &str = "taken_at";
}

/// Accounts projection table: one row per account plus the global totals row.
pub mod accounts {
    /// Partition key (S).
    pub const ACCOUNT_ID: &str = "account_id";
    pub const OWNER: &str = "owner";
    pub const CURRENCY: &str = "currency";
    pub const BALANCE: &str = "balance";
    pub const STATUS: &str = "status";
    /// Last applied version of the account's stream: the per-stream checkpoint.
    pub const VERSION: &str = "version";
    pub const UPDATED_AT: &str = "updated_at";
    /// Key of the totals row; cannot collide with an account id (`#` is not in the id charset).
    pub const TOTALS_ID: &str = "#totals";
    pub const ACCOUNTS_OPEN: &str = "accounts_open";
    /// Prefix of the totals row's per-currency attributes (`held_EUR`, …).
    pub const HELD_PREFIX: &str = "held_";
    pub const EVENTS_APPLIED: &str = "events_applied";
}

/// Environment variables read once at start into [`crate::config::Config`].
pub mod env {
    pub const EVENTS_TABLE: &str = "EVENTS_TABLE";
    pub const COMMANDS_TABLE: &str = "COMMANDS_TABLE";
    pub const SNAPSHOTS_TABLE: &str = "SNAPSHOTS_TABLE";
    pub const ACCOUNTS_TABLE: &str = "ACCOUNTS_TABLE";
    pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
    pub const SNAPSHOT_QUEUE_URL: &str = "SNAPSHOT_QUEUE_URL";
    pub const SNAPSHOT_EVERY: &str = "SNAPSHOT_EVERY";
    pub const MAX_EVENT_BYTES: &str = "MAX_EVENT_BYTES";
    pub const COMMAND_TTL_DAYS: &str = "COMMAND_TTL_DAYS";
}
