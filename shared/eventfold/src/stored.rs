//! Events as every store keeps them: one JSON object per event, numbers as DynamoDB returns
//! them, sized by DynamoDB's rules.
//!
//! The DynamoDB store turns this object into an item attribute for attribute (strings to `S`,
//! numbers to `N`, objects to `M`, …) and the memory store keeps it as it is, so both accept,
//! size and chain exactly the same events.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::envelope::RecordedEvent;
use crate::error::StoreError;

/// A stored event: the fields of [`RecordedEvent`] as a JSON object.
pub type Document = Map<String, Value>;

/// The magnitude DynamoDB numbers stay below (their largest is 9.99…e125).
const DYNAMODB_NUMBER_BOUND: f64 = 1e126;
/// The smallest positive magnitude DynamoDB stores in a number.
const DYNAMODB_MIN_NUMBER: f64 = 1e-130;

/// Encodes a recorded event as its stored document.
pub fn encode(event: &RecordedEvent) -> Result<Document, StoreError> {
    to_document(event, "an event")
}

/// Decodes a stored document exactly as stored (no upcasting): what the chain covers.
pub fn decode(document: Document) -> Result<RecordedEvent, StoreError> {
    from_document(document, "event")
}

/// Any stored value (an event, a command record, a snapshot) as its document.
pub fn to_document<T: Serialize>(value: &T, what: &str) -> Result<Document, StoreError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => Err(StoreError::misuse(format!(
            "{what} must encode as an object"
        ))),
        Err(e) => Err(StoreError::misuse(format!("{what} does not encode: {e}"))),
    }
}

/// A stored document back as what it holds; one that does not decode is corrupt data.
pub fn from_document<T: DeserializeOwned>(document: Document, what: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::Object(document))
        .map_err(|e| StoreError::corrupt(format!("cannot decode {what}: {e}")))
}

/// Puts a JSON value into the exact form it has after a round trip through DynamoDB.
///
/// DynamoDB numbers carry no type: `1.0` comes back as `1`. Normalising before hashing keeps
/// the integrity chain computed at write time equal to the one recomputed from stored items.
/// A number DynamoDB cannot hold is refused here, before any I/O.
pub fn normalize(value: Value) -> Result<Value, StoreError> {
    Ok(match value {
        Value::Number(number) => Value::Number(normalize_number(&number)?),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(normalize).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, normalize(v)?)))
                .collect::<Result<_, StoreError>>()?,
        ),
        other => other,
    })
}

/// A number as stored: written in its shortest decimal form and read back as the narrowest of
/// i64, u64 and f64 that holds it (what the SDK's serde layer does).
fn normalize_number(number: &Number) -> Result<Number, StoreError> {
    if number.is_i64() || number.is_u64() {
        return Ok(number.clone());
    }
    let float = number.as_f64().unwrap_or_default();
    let magnitude = float.abs();
    if magnitude >= DYNAMODB_NUMBER_BOUND || (magnitude != 0.0 && magnitude < DYNAMODB_MIN_NUMBER) {
        return Err(StoreError::misuse(format!(
            "{float} is beyond the range of a DynamoDB number"
        )));
    }
    let text = float.to_string();
    Ok(if let Ok(int) = text.parse::<i64>() {
        Number::from(int)
    } else if let Ok(unsigned) = text.parse::<u64>() {
        Number::from(unsigned)
    } else {
        Number::from_f64(float).unwrap_or_else(|| Number::from(0))
    })
}

/// The size DynamoDB charges a stored document as an item: attribute names plus values.
pub fn size(document: &Document) -> usize {
    document
        .iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// DynamoDB's size of one attribute value, by its documented rules.
pub fn value_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Number(n) => number_size(n),
        Value::Bool(_) | Value::Null => 1,
        Value::Array(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        Value::Object(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
    }
}

/// Roughly one byte per two significant digits, plus one, over the digits as written.
fn number_size(number: &Number) -> usize {
    let text = match (number.as_i64(), number.as_u64()) {
        (Some(int), _) => int.to_string(),
        (_, Some(unsigned)) => unsigned.to_string(),
        _ => number.as_f64().unwrap_or_default().to_string(),
    };
    digits_size(&text)
}

/// DynamoDB's size of a number written as `text`.
pub fn digits_size(text: &str) -> usize {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::envelope::{EventMetadata, now};
    use crate::ids::StreamId;

    #[test]
    fn floats_that_are_integers_normalise_and_others_stay() {
        let normalized = normalize(json!({"a": 1.0, "b": 2.5, "c": [3.0, -0.0], "d": 1e21}))
            .expect("normalises");
        assert_eq!(
            normalized,
            json!({"a": 1, "b": 2.5, "c": [3, 0], "d": 1e21})
        );
        assert!(normalize(json!({"huge": 1e300})).is_err());
    }

    #[test]
    fn a_recorded_event_round_trips_through_its_document() {
        let event = RecordedEvent {
            stream_id: StreamId::parse("Order-1").expect("valid"),
            version: 3,
            event_id: uuid::Uuid::now_v7(),
            event_type: "ItemAdded".into(),
            schema_version: 1,
            occurred_at: now(),
            metadata: EventMetadata::default(),
            payload: json!({"amount": 5, "tags": ["a"], "nested": {"x": null}}),
            chain: "ab".repeat(32),
            snapshot_due: false,
        };
        let document = encode(&event).expect("encodes");
        assert!(
            !document.contains_key("snapshot_due"),
            "false is not stored"
        );
        assert_eq!(decode(document).expect("decodes"), event);
    }

    #[test]
    fn sizes_count_names_and_values() {
        let document = json!({"ab": "xyz", "n": 12345, "m": {"k": true}, "l": [1]});
        let Value::Object(document) = document else {
            unreachable!()
        };
        // ab+xyz, n+(3 digit pairs, +1 = 4), m+(3 + 1 + k + bool), l+(3 + 1 + (1 + 1)).
        assert_eq!(
            size(&document),
            5 + 5 + (1 + 3 + 1 + 1 + 1) + (1 + 3 + 1 + 2)
        );
    }
}
