//! The integrity chain: `chain = SHA-256(previous chain ‖ canonical bytes of this event)`.
//!
//! The canonical bytes are JSON with object keys sorted and no insignificant whitespace, over
//! every stored field but the chain itself, so tampering with any field of any event (or
//! re-ordering, removing or inserting events) changes every chain value from there on.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{RecordedEvent, format_timestamp};
use crate::ids::StreamId;

/// Writes `value` as canonical JSON: keys sorted, numbers and strings as serde_json prints them.
pub fn write_canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical bytes of an event: every stored field except `chain`, keys sorted.
pub fn canonical_bytes(event: &RecordedEvent) -> Vec<u8> {
    let mut text = canonical_prefix(event);
    push_canonical_tail(
        &mut text,
        event.snapshot_due,
        &event.stream_id,
        event.version,
    );
    text.into_bytes()
}

/// The canonical bytes up to the value of `snapshot_due`: the fields an append keeps when it
/// is tried again at another version, so a retry hashes only what changed after them.
///
/// The keys, in sorted order: `event_id`, `event_type`, `metadata`, `occurred_at`, `payload`,
/// `schema_version`, `snapshot_due`, `stream_id`, `version`.
pub fn canonical_prefix(event: &RecordedEvent) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"event_id\":");
    push_json_string(&mut out, &event.event_id.to_string());
    out.push_str(",\"event_type\":");
    push_json_string(&mut out, &event.event_type);
    out.push_str(",\"metadata\":");
    write_canonical_json(
        &serde_json::to_value(&event.metadata).unwrap_or(Value::Null),
        &mut out,
    );
    out.push_str(",\"occurred_at\":");
    push_json_string(&mut out, &format_timestamp(&event.occurred_at));
    out.push_str(",\"payload\":");
    write_canonical_json(&event.payload, &mut out);
    out.push_str(",\"schema_version\":");
    out.push_str(&event.schema_version.to_string());
    out.push_str(",\"snapshot_due\":");
    out
}

fn push_canonical_tail(out: &mut String, snapshot_due: bool, stream_id: &StreamId, version: u64) {
    out.push_str(if snapshot_due { "true" } else { "false" });
    out.push_str(",\"stream_id\":");
    push_json_string(out, stream_id.as_str());
    out.push_str(",\"version\":");
    out.push_str(&version.to_string());
    out.push('}');
}

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&Value::String(text.to_owned()).to_string());
}

/// The chain value of `event` given the chain of the event before it (`""` for version 1).
pub fn chain_hash(previous_chain: &str, event: &RecordedEvent) -> String {
    chain_after(
        previous_chain,
        &canonical_prefix(event),
        event.snapshot_due,
        &event.stream_id,
        event.version,
    )
}

/// The chain value of an event from its [`canonical_prefix`] and what follows it.
pub(crate) fn chain_after(
    previous_chain: &str,
    prefix: &str,
    snapshot_due: bool,
    stream_id: &StreamId,
    version: u64,
) -> String {
    let mut tail = String::with_capacity(48 + stream_id.as_str().len());
    push_canonical_tail(&mut tail, snapshot_due, stream_id, version);
    let mut hasher = Sha256::new();
    hasher.update(previous_chain.as_bytes());
    hasher.update(prefix.as_bytes());
    hasher.update(tail.as_bytes());
    hex::encode(hasher.finalize())
}

/// Result of recomputing a stream's chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Verification {
    /// Every event matches; `head` is the last chain value (empty for an empty stream).
    Intact {
        /// Always true.
        ok: bool,
        /// The last event's chain value.
        head: String,
        /// Events verified.
        events: u64,
    },
    /// The first version whose stored chain, position or content does not match.
    Broken {
        /// Always false.
        ok: bool,
        /// The first version that does not match.
        first_bad_version: u64,
    },
}

impl Verification {
    pub(crate) fn intact(head: String, events: u64) -> Self {
        Self::Intact {
            ok: true,
            head,
            events,
        }
    }

    pub(crate) fn broken(first_bad_version: u64) -> Self {
        Self::Broken {
            ok: false,
            first_bad_version,
        }
    }

    /// Whether the chain verified.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

/// Incremental verifier: feed events in version order, starting at version 1.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    previous: String,
    expected_version: u64,
}

impl ChainVerifier {
    /// A verifier expecting version 1 next.
    pub fn new() -> Self {
        Self {
            previous: String::new(),
            expected_version: 1,
        }
    }

    /// Checks the next event; on mismatch returns the version that is bad.
    pub fn push(&mut self, event: &RecordedEvent) -> Result<(), u64> {
        if event.version != self.expected_version {
            return Err(self.expected_version);
        }
        if chain_hash(&self.previous, event) != event.chain {
            return Err(event.version);
        }
        self.previous.clone_from(&event.chain);
        self.expected_version += 1;
        Ok(())
    }

    /// A verifier expecting version `next_version`, whose predecessor's chain value is
    /// `previous_chain` (a range of a stream verified on its own).
    pub fn resume(previous_chain: String, next_version: u64) -> Self {
        Self {
            previous: previous_chain,
            expected_version: next_version,
        }
    }

    /// The version the verifier expects next.
    pub fn next_version(&self) -> u64 {
        self.expected_version
    }

    /// The outcome once every event has been pushed.
    pub fn finish(self) -> Verification {
        Verification::intact(self.previous, self.expected_version - 1)
    }

    /// The outcome of a range that began at `from`: its events counted from there.
    pub fn finish_range(self, from: u64) -> Verification {
        Verification::intact(self.previous, self.expected_version - from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EventMetadata, now};

    /// The definition the fast path must equal: every field but the chain, sorted generically.
    fn canonical_by_definition(event: &RecordedEvent) -> Vec<u8> {
        let fields = serde_json::json!({
            "stream_id": event.stream_id.as_str(),
            "version": event.version,
            "event_id": event.event_id.to_string(),
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "occurred_at": format_timestamp(&event.occurred_at),
            "metadata": serde_json::to_value(&event.metadata).unwrap_or(Value::Null),
            "payload": event.payload,
            "snapshot_due": event.snapshot_due,
        });
        let mut text = String::new();
        write_canonical_json(&fields, &mut text);
        text.into_bytes()
    }

    #[test]
    fn canonical_bytes_are_the_sorted_fields() {
        for snapshot_due in [false, true] {
            let event = RecordedEvent {
                stream_id: StreamId::parse("Order-q1").expect("valid"),
                version: 12,
                event_id: uuid::Uuid::now_v7(),
                event_type: "ItemAdded".into(),
                schema_version: 3,
                occurred_at: now(),
                metadata: EventMetadata {
                    actor: Some("a\"b".into()),
                    ..EventMetadata::default()
                },
                payload: serde_json::json!({"z": 1, "a": [1.5, "é", null], "m": {"y": true}}),
                chain: String::new(),
                snapshot_due,
            };
            assert_eq!(canonical_bytes(&event), canonical_by_definition(&event));
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        let mut out = String::new();
        write_canonical_json(&value, &mut out);
        assert_eq!(out, r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#);
    }
}
