//! The contract between the domain and the command service: pure `decide` and `evolve`.
//!
//! Nothing here does I/O. Domain events are serde enums with `#[serde(tag = "type",
//! content = "data")]`: the tag becomes the stored event type, the content the payload.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{EventMetadata, NewEvent, RecordedEvent};
use crate::error::StoreError;

/// An event of one aggregate type.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Debug + Send + Sync {
    /// The name stored as the event type (the serde tag).
    fn event_type(&self) -> &'static str;

    /// The payload schema version this code writes for the event's type.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// An aggregate: state folded from its events, and the decisions it makes.
pub trait Aggregate:
    Default + Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The stream category, e.g. `Order` for streams `Order-<id>`.
    const CATEGORY: &'static str;
    /// Version of the serialized state; bump it whenever the state's shape or meaning changes,
    /// and older snapshots are ignored.
    const STATE_SCHEMA: u32;

    /// What happens to it (past tense, one variant per fact).
    type Event: DomainEvent;
    /// What can be asked of it (imperative).
    type Command: Debug + Send + Sync;
    /// Why it refuses a command (business rules only: inputs are parsed before).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides which events a command produces, or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event to the state.
    #[must_use]
    fn evolve(self, event: &Self::Event) -> Self;
}

/// Turns a domain event into an event to append.
pub fn to_new_event<E: DomainEvent>(
    event: &E,
    metadata: &EventMetadata,
) -> Result<NewEvent, StoreError> {
    let tagged = serde_json::to_value(event)
        .map_err(|e| StoreError::misuse(format!("cannot serialize {}: {e}", event.event_type())))?;
    let payload = match tagged {
        Value::Object(mut map) => map
            .remove("data")
            .unwrap_or_else(|| Value::Object(Default::default())),
        other => {
            return Err(StoreError::misuse(format!(
                "domain events must serialize as {{type, data}}, got {other}"
            )));
        }
    };
    Ok(NewEvent::new(event.event_type(), payload)
        .with_schema_version(event.schema_version())
        .with_metadata(metadata.clone()))
}

/// Reads a recorded (already upcast) event back as a domain event.
pub fn from_recorded<E: DomainEvent>(event: &RecordedEvent) -> Result<E, StoreError> {
    let tagged = serde_json::json!({ "type": event.event_type, "data": event.payload });
    serde_json::from_value(tagged).map_err(|e| {
        StoreError::corrupt(format!(
            "{} version {} ({}) does not decode: {e}",
            event.stream_id, event.version, event.event_type
        ))
    })
}

/// Folds recorded events into a state.
pub fn fold<A: Aggregate>(state: A, events: &[RecordedEvent]) -> Result<A, StoreError> {
    events.iter().try_fold(state, |state, recorded| {
        Ok(state.evolve(&from_recorded::<A::Event>(recorded)?))
    })
}
