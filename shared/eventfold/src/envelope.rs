//! The stored-event envelope: one type for every event, whatever its payload.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::StreamId;

/// Who caused an event and why: carried with every event, never interpreted by the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMetadata {
    /// Ties together everything done for one incoming request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The message (command or event) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The idempotency key of the command that wrote this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The principal that issued the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// An event to append: the store assigns its stream, version and chain.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// A UUIDv7, unique across streams.
    pub event_id: Uuid,
    /// The type name.
    pub event_type: String,
    /// The schema version the payload is written in.
    pub schema_version: u32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Correlation, causation, command and actor.
    pub metadata: EventMetadata,
    /// The payload (a JSON object).
    pub payload: Value,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id, stamped now, at schema version 1.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at: now(),
            metadata: EventMetadata::default(),
            payload,
        }
    }

    /// Sets the schema version the payload is written in.
    #[must_use]
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// The current time at the precision events are stored with (microseconds).
pub fn now() -> DateTime<Utc> {
    at_stored_precision(Utc::now())
}

/// Truncates an instant to the stored precision, so written and read-back values are equal.
pub fn at_stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    parse_timestamp(&format_timestamp(&at)).unwrap_or(at)
}

/// The one textual form of event timestamps: RFC 3339, UTC, microseconds, `Z`.
///
/// Fixed width, so lexical order is time order.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a timestamp, accepting only the exact form [`format_timestamp`] writes.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    (format_timestamp(&parsed) == text).then_some(parsed)
}

pub(crate) mod timestamp_format {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_timestamp(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_timestamp(&text)
            .ok_or_else(|| D::Error::custom(format!("timestamp not in canonical form: {text:?}")))
    }
}

/// An event as stored: the envelope plus its position and integrity chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// 1-based, gap-free within the stream.
    pub version: u64,
    /// A UUIDv7, unique across streams.
    pub event_id: Uuid,
    /// The type name.
    pub event_type: String,
    /// The schema version of the payload (after upcasting, the newest).
    pub schema_version: u32,
    /// When it happened.
    #[serde(with = "timestamp_format")]
    pub occurred_at: DateTime<Utc>,
    /// Correlation, causation, command and actor.
    pub metadata: EventMetadata,
    /// The payload.
    pub payload: Value,
    /// Hex SHA-256 over the previous event's chain and this event's canonical bytes.
    pub chain: String,
    /// Set on the event at which the stream crossed its snapshot interval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot_due: bool,
}

impl RecordedEvent {
    /// The stream head this event represents, for appending after it.
    pub fn head(&self) -> StreamHead {
        StreamHead {
            stream_id: self.stream_id.clone(),
            version: self.version,
            chain: self.chain.clone(),
        }
    }
}

/// The last event of a stream as read from the store: its version and chain.
///
/// Only the store hands these out (from reads or appends), so an append that carries one
/// needs no extra read to continue the integrity chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHead {
    stream_id: StreamId,
    version: u64,
    chain: String,
}

impl StreamHead {
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn new(stream_id: StreamId, version: u64, chain: String) -> Self {
        Self {
            stream_id,
            version,
            chain,
        }
    }

    /// The stream this head belongs to.
    pub fn stream_id(&self) -> &StreamId {
        &self.stream_id
    }

    /// The version of the stream's last event.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The chain hash of the stream's last event.
    pub fn chain(&self) -> &str {
        &self.chain
    }
}
