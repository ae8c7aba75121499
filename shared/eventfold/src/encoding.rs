//! Domain events to stored events and back.
//!
//! A domain event is a serde enum, adjacently tagged (`#[serde(tag = "type", content =
//! "data")]`): the tag is stored as the event type, the content as the payload. Writing checks
//! that the event reads back as itself, so an event that could be written but never loaded
//! again (its `event_type` disagreeing with its tag, a serde shape that does not round-trip) is
//! refused before any I/O, on every store.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::stored;

/// Turns a domain event into an event to append (metadata is the command service's to add),
/// refusing one that would not read back as itself.
///
/// ```
/// use eventfold::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DomainEvent)]
/// #[serde(tag = "type", content = "data")]
/// enum Loan {
///     BookLent { member: String },
///     BookReturned,
/// }
///
/// let returned = eventfold::encoding::to_new_event(&Loan::BookReturned)?;
/// assert_eq!(returned.event_type, "BookReturned");
/// assert_eq!(returned.payload, serde_json::json!({}));
/// # Ok::<(), eventfold::StoreError>(())
/// ```
pub fn to_new_event<E: DomainEvent>(event: &E) -> Result<NewEvent, StoreError> {
    let event_type = event.event_type();
    let payload = stored::normalize(payload_of(event)?)?;
    // Read back as a store returns it, then written again: it must be the same event.
    let decoded: E = decode_payload(event_type, &payload)
        .map_err(|e| unreadable(event_type, format!("it does not decode: {e}")))?;
    let again = stored::normalize(payload_of(&decoded)?)?;
    if decoded.event_type() != event_type || again != payload {
        return Err(unreadable(
            event_type,
            format!("it reads back as {} {again}", decoded.event_type()),
        ));
    }
    Ok(NewEvent::new(event_type, payload).with_schema_version(event.schema_version()))
}

/// The payload of a domain event, checking that serde writes the type `event_type()` names.
fn payload_of<E: DomainEvent>(event: &E) -> Result<Value, StoreError> {
    let event_type = event.event_type();
    let tagged = serde_json::to_value(event)
        .map_err(|e| unreadable(event_type, format!("it does not serialize: {e}")))?;
    let Value::Object(mut fields) = tagged else {
        return Err(unreadable(
            event_type,
            format!("it serializes as {tagged}, not {{\"type\", \"data\"}}"),
        ));
    };
    match fields.remove("type") {
        Some(Value::String(tag)) if tag == event_type => {}
        Some(Value::String(tag)) => {
            return Err(unreadable(
                event_type,
                format!("event_type() says {event_type:?} but serde writes {tag:?}"),
            ));
        }
        _ => {
            return Err(unreadable(
                event_type,
                "serde writes no \"type\" tag: use #[serde(tag = \"type\", content = \"data\")]",
            ));
        }
    }
    // A unit variant has no content: it is stored as an empty payload.
    let payload = fields
        .remove("data")
        .unwrap_or_else(|| Value::Object(Map::new()));
    if !fields.is_empty() || !payload.is_object() {
        return Err(unreadable(
            event_type,
            "its payload must serialize as a JSON object",
        ));
    }
    Ok(payload)
}

fn unreadable(event_type: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Unreadable {
        event_type: event_type.to_owned(),
        reason: reason.into(),
    }
}

/// The domain event of a stored type and payload.
fn decode_payload<E: DeserializeOwned>(
    event_type: &str,
    payload: &Value,
) -> Result<E, serde_json::Error> {
    match serde_json::from_value(json!({ "type": event_type, "data": payload })) {
        Ok(event) => Ok(event),
        // A unit variant was written without content; it accepts none back.
        Err(first) if payload.as_object().is_some_and(Map::is_empty) => {
            serde_json::from_value(json!({ "type": event_type })).map_err(|_| first)
        }
        Err(error) => Err(error),
    }
}

/// Reads an event about to be written back as a domain event (one whose payload was changed
/// after encoding: its personal values sealed).
pub fn decode_new_event<E: DomainEvent>(event: &NewEvent) -> Result<E, StoreError> {
    decode_payload(&event.event_type, &event.payload)
        .map_err(|e| unreadable(&event.event_type, format!("it does not decode: {e}")))
}

/// Reads a recorded (already upcast) event back as a domain event; an event that does not
/// decode is corrupt data.
pub fn from_recorded<E: DomainEvent>(event: &RecordedEvent) -> Result<E, StoreError> {
    decode_payload(&event.event_type, &event.payload).map_err(|e| {
        StoreError::corrupt(format!(
            "{} version {} ({}) does not decode: {e}",
            event.stream_id, event.version, event.event_type
        ))
    })
}

/// Reads a recorded event as `E` if `E` has its type (`None` for another enum's events, which
/// a projection that follows several kinds of streams skips); an event of a known type that
/// does not decode is corrupt data.
pub fn decode_known<E: DomainEvent>(event: &RecordedEvent) -> Result<Option<E>, StoreError> {
    if E::TYPES.contains(&event.event_type.as_str()) {
        from_recorded(event).map(Some)
    } else {
        Ok(None)
    }
}

/// Folds recorded events into a state.
pub fn fold<A: Aggregate>(state: A, events: &[RecordedEvent]) -> Result<A, StoreError> {
    events.iter().try_fold(state, |state, recorded| {
        Ok(state.evolve(&from_recorded::<A::Event>(recorded)?))
    })
}

/// The event as a store would give it back: encoded, stored, read and decoded. What the test
/// kit's given/when/then runs every event through, so a test fails where production would.
pub fn read_back<E: DomainEvent>(event: &E) -> Result<E, StoreError> {
    let new = to_new_event(event)?;
    let recorded = RecordedEvent {
        stream_id: crate::ids::StreamId::new("ReadBack", "1")
            .map_err(|e| StoreError::misuse(e.to_string()))?,
        version: 1,
        event_id: new.event_id,
        event_type: new.event_type,
        schema_version: new.schema_version,
        occurred_at: new.occurred_at,
        metadata: new.metadata,
        payload: new.payload,
        chain: String::new(),
        snapshot_due: false,
    };
    from_recorded(&stored::decode(stored::encode(&recorded)?)?)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::aggregate::DomainEvent;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, crate::DomainEvent)]
    #[serde(tag = "type", content = "data", deny_unknown_fields)]
    enum Loan {
        BookLent {
            member: String,
        },
        BookReturned,
        Renewed {},
        #[event(schema = 2)]
        Fined(Fine),
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Fine {
        cents: u64,
    }

    /// Written by hand, with a typo in its type.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Misnamed {
        BookLent { member: String },
    }

    impl DomainEvent for Misnamed {
        const TYPES: &'static [&'static str] = &["BookLnet"];
        fn event_type(&self) -> &'static str {
            "BookLnet"
        }
    }

    /// Serializes a field it cannot read back.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Lossy {
        Noted {
            #[serde(skip_deserializing)]
            note: String,
        },
    }

    impl DomainEvent for Lossy {
        const TYPES: &'static [&'static str] = &["Noted"];
        fn event_type(&self) -> &'static str {
            "Noted"
        }
    }

    #[test]
    fn every_shape_the_derive_accepts_reads_back() {
        for event in [
            Loan::BookLent {
                member: "m-1".into(),
            },
            Loan::BookReturned,
            Loan::Renewed {},
            Loan::Fined(Fine { cents: 150 }),
        ] {
            assert_eq!(read_back(&event).expect("reads back"), event);
        }
        assert_eq!(
            Loan::TYPES,
            ["BookLent", "BookReturned", "Renewed", "Fined"]
        );
        assert_eq!(Loan::Fined(Fine { cents: 1 }).schema_version(), 2);
        assert_eq!(Loan::BookReturned.schema_version(), 1);
    }

    #[test]
    fn a_type_that_disagrees_with_the_tag_is_refused() {
        let error = to_new_event(&Misnamed::BookLent { member: "m".into() })
            .expect_err("the tag says BookLent");
        assert!(
            matches!(&error, StoreError::Unreadable { event_type, reason }
                if event_type == "BookLnet" && reason.contains("serde writes \"BookLent\"")),
            "{error}"
        );
    }

    #[test]
    fn an_event_that_reads_back_as_another_is_refused() {
        let error = to_new_event(&Lossy::Noted {
            note: "kept?".into(),
        })
        .expect_err("the note is lost");
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn known_types_decode_and_others_are_skipped() {
        let new = to_new_event(&Loan::BookReturned).expect("encodes");
        let mut recorded = RecordedEvent {
            stream_id: crate::ids::StreamId::new("Book", "1").expect("valid"),
            version: 1,
            event_id: new.event_id,
            event_type: new.event_type,
            schema_version: 1,
            occurred_at: new.occurred_at,
            metadata: new.metadata,
            payload: new.payload,
            chain: String::new(),
            snapshot_due: false,
        };
        assert_eq!(
            decode_known::<Loan>(&recorded).expect("known"),
            Some(Loan::BookReturned)
        );
        recorded.event_type = "SomethingElse".into();
        assert_eq!(decode_known::<Loan>(&recorded).expect("unknown"), None);
        recorded.event_type = "BookLent".into();
        assert!(
            decode_known::<Loan>(&recorded).is_err(),
            "a known type that does not decode"
        );
    }
}
