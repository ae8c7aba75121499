//! Events, command records and snapshots to and from DynamoDB items, via serde_dynamo.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::upcast::Upcasters;

/// A DynamoDB item as the SDK represents it.
pub type Item = HashMap<String, AttributeValue>;

/// Serializes any serde value into an item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::misuse(format!("cannot encode item: {e}")))
}

/// Deserializes an item, reporting undecodable data as corruption.
pub fn from_item<T: DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::corrupt(format!("cannot decode {what}: {e}")))
}

/// Encodes a recorded event as its events-table item.
pub fn encode_event(event: &RecordedEvent) -> Result<Item, StoreError> {
    to_item(event)
}

/// Decodes an events-table item exactly as stored (no upcasting): what the chain covers.
pub fn decode_event_raw(item: Item) -> Result<RecordedEvent, StoreError> {
    from_item(item, "event")
}

/// Decodes an events-table item and upcasts it to the newest schema.
pub fn decode_event(item: Item, upcasters: &Upcasters) -> Result<RecordedEvent, StoreError> {
    upcasters.upcast(decode_event_raw(item)?)
}

/// Puts a JSON payload into the exact form it will have after a round trip through DynamoDB.
///
/// DynamoDB numbers carry no type: `1.0` comes back as `1`. Normalising before hashing keeps the
/// integrity chain computed at write time equal to the one recomputed from stored items.
pub fn normalize_payload(payload: Value) -> Result<Value, StoreError> {
    let attribute: AttributeValue = serde_dynamo::to_attribute_value(&payload)
        .map_err(|e| StoreError::misuse(format!("payload cannot be stored: {e}")))?;
    serde_dynamo::from_attribute_value(attribute)
        .map_err(|e| StoreError::misuse(format!("payload does not round-trip: {e}")))
}

/// The size DynamoDB charges an item: attribute names plus values, by its documented rules.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn number_size(text: &str) -> usize {
    // Roughly one byte per two significant digits, plus one.
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{EventMetadata, now};
    use crate::ids::StreamId;
    use crate::names::events;

    fn sample() -> RecordedEvent {
        RecordedEvent {
            stream_id: StreamId::parse("Order-1").expect("valid"),
            version: 3,
            event_id: uuid::Uuid::now_v7(),
            event_type: "ItemAdded".into(),
            schema_version: 1,
            occurred_at: now(),
            metadata: EventMetadata {
                correlation_id: Some("c".into()),
                ..EventMetadata::default()
            },
            payload: serde_json::json!({"amount": 5, "note": "", "tags": ["a"], "nested": {"x": null}}),
            chain: "ab".repeat(32),
            snapshot_due: true,
        }
    }

    #[test]
    fn encoded_event_uses_the_named_attributes() {
        let item = encode_event(&sample()).expect("encodes");
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = vec![
            events::STREAM_ID,
            events::VERSION,
            events::EVENT_ID,
            events::EVENT_TYPE,
            events::SCHEMA_VERSION,
            events::OCCURRED_AT,
            events::METADATA,
            events::PAYLOAD,
            events::CHAIN,
            events::SNAPSHOT_DUE,
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert!(matches!(item[events::VERSION], AttributeValue::N(ref n) if n == "3"));
        assert!(matches!(item[events::PAYLOAD], AttributeValue::M(_)));
    }

    #[test]
    fn floats_that_are_integers_normalise() {
        let normalized = normalize_payload(serde_json::json!({"a": 1.0, "b": 2.5})).expect("ok");
        let round_tripped: Value = serde_dynamo::from_attribute_value(
            serde_dynamo::to_attribute_value::<_, AttributeValue>(&normalized).expect("enc"),
        )
        .expect("dec");
        assert_eq!(normalized, round_tripped);
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = Item::new();
        item.insert("ab".into(), AttributeValue::S("xyz".into()));
        item.insert("n".into(), AttributeValue::N("12345".into()));
        assert_eq!(item_size(&item), 2 + 3 + 1 + 4);
    }
}
