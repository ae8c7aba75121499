//! The integrity chain: `chain = SHA-256(previous chain ‖ canonical bytes of this event)`.
//!
//! The canonical bytes are JSON with object keys sorted and no insignificant whitespace, over
//! every stored field but the chain itself, so tampering with any field of any event (or
//! re-ordering, removing or inserting events) changes every chain value from there on.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{RecordedEvent, format_timestamp};

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

/// The canonical bytes of an event: every stored field except `chain`.
pub fn canonical_bytes(event: &RecordedEvent) -> Vec<u8> {
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
    let mut text = String::with_capacity(256);
    write_canonical_json(&fields, &mut text);
    text.into_bytes()
}

/// The chain value of `event` given the chain of the event before it (`""` for version 1).
pub fn chain_hash(previous_chain: &str, event: &RecordedEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous_chain.as_bytes());
    hasher.update(canonical_bytes(event));
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

    /// The version the verifier expects next.
    pub fn next_version(&self) -> u64 {
        self.expected_version
    }

    /// The outcome once every event has been pushed.
    pub fn finish(self) -> Verification {
        Verification::intact(self.previous, self.expected_version - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        let mut out = String::new();
        write_canonical_json(&value, &mut out);
        assert_eq!(out, r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#);
    }
}
