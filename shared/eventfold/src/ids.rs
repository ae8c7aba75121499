//! Identifiers parsed once, at the edge: entity ids, stream ids, event types and command ids.
//!
//! Everything that becomes a key is one of these types, so nothing unchecked reaches a table.
//! A value that does not parse is an [`IdError`]: the caller's input, never a store failure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted entity id (the part after the category).
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted category name.
pub const MAX_CATEGORY_LEN: usize = 40;
/// Longest accepted event type name.
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// Longest accepted command id.
pub const MAX_COMMAND_ID_LEN: usize = 128;

/// An identifier that does not have the required shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not `[A-Za-z0-9_-]{1,64}`.
    #[error("id must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_-], got {0:?}")]
    Entity(String),
    /// Not `[A-Z][A-Za-z0-9]{0,39}`.
    #[error("category must match [A-Z][A-Za-z0-9]{{0,39}}, got {0:?}")]
    Category(String),
    /// Not `<Category>-<id>`.
    #[error("stream id must be <Category>-<id>, got {0:?}")]
    Stream(String),
    /// Not `[A-Za-z][A-Za-z0-9_.]{0,99}`.
    #[error("event type must match [A-Za-z][A-Za-z0-9_.]{{0,99}}, got {0:?}")]
    EventType(String),
    /// Not 1-128 printable ASCII characters.
    #[error("command id must be 1-{MAX_COMMAND_ID_LEN} printable ASCII characters")]
    Command,
}

/// At most 80 characters of a rejected value, for messages.
fn shown(value: &str) -> String {
    value.chars().take(80).collect()
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The id of one entity within its category: `[A-Za-z0-9_-]{1,64}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityId(String);

impl EntityId {
    /// Parses an entity id.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        if value.is_empty() || value.len() > MAX_ID_LEN || !value.chars().all(is_id_char) {
            return Err(IdError::Entity(shown(value)));
        }
        Ok(Self(value.to_owned()))
    }

    /// A new id: a UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({})", self.0)
    }
}

impl TryFrom<String> for EntityId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EntityId> for String {
    fn from(id: EntityId) -> Self {
        id.0
    }
}

/// Checks an event type: an ASCII letter, then letters, digits, `_` or `.`, at most 100 long.
pub fn validate_event_type(event_type: &str) -> Result<(), IdError> {
    let mut chars = event_type.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !starts_ok || !rest_ok || event_type.len() > MAX_EVENT_TYPE_LEN {
        return Err(IdError::EventType(shown(event_type)));
    }
    Ok(())
}

/// Whether `category` is an ASCII capital, then letters and digits, at most 40 long; a
/// `const fn`, so an aggregate's category is checked when the program is compiled.
pub const fn is_valid_category(category: &str) -> bool {
    let bytes = category.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_CATEGORY_LEN || !bytes[0].is_ascii_uppercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            return false;
        }
        i += 1;
    }
    true
}

/// Checks a category: an ASCII capital, then letters and digits, at most 40 long.
pub fn validate_category(category: &str) -> Result<(), IdError> {
    if is_valid_category(category) {
        Ok(())
    } else {
        Err(IdError::Category(shown(category)))
    }
}

/// A stream id, `<Category>-<id>`: the category names the aggregate type, the id the instance.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId {
    value: String,
    category_len: usize,
}

impl StreamId {
    /// Builds a stream id from a category and an entity id, validating both.
    pub fn new(category: &str, id: &str) -> Result<Self, IdError> {
        Self::for_entity(category, &EntityId::parse(id)?)
    }

    /// The stream of an entity already parsed; only the category is checked.
    pub fn for_entity(category: &str, id: &EntityId) -> Result<Self, IdError> {
        validate_category(category)?;
        Ok(Self {
            value: format!("{category}-{id}"),
            category_len: category.len(),
        })
    }

    /// The stream of an entity in a category already known to be valid (an aggregate's,
    /// checked at compile time).
    pub(crate) fn of_valid_category(category: &str, id: &EntityId) -> Self {
        Self {
            value: format!("{category}-{id}"),
            category_len: category.len(),
        }
    }

    /// Parses `<Category>-<id>`.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let (category, id) = value
            .split_once('-')
            .ok_or_else(|| IdError::Stream(shown(value)))?;
        Self::new(category, id)
    }

    /// The category (aggregate type), e.g. `Order`.
    pub fn category(&self) -> &str {
        &self.value[..self.category_len]
    }

    /// The entity id within the category.
    pub fn entity_id(&self) -> &str {
        &self.value[self.category_len + 1..]
    }

    /// The full stream id.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.value)
    }
}

impl TryFrom<String> for StreamId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.value
    }
}

/// The id of a command: its idempotency key, given by the client or generated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandId(String);

impl CommandId {
    /// Accepts 1-128 printable ASCII characters.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty()
            || value.len() > MAX_COMMAND_ID_LEN
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(IdError::Command);
        }
        Ok(Self(value))
    }

    /// The id within a principal's namespace (`<tag>/<id>`, see
    /// [`Principal::tag`](crate::identity::Principal::tag)): the same key from two callers is
    /// two commands, and no caller can replay or pre-claim another's.
    pub fn within(&self, tag: &str) -> Self {
        Self(format!("{tag}/{}", self.0))
    }

    /// A fresh id (a UUIDv7) for a command whose client gave none.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CommandId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CommandId> for String {
    fn from(id: CommandId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_splits_category_and_entity() {
        let id = StreamId::parse("Order-a1_b-2").expect("valid");
        assert_eq!(id.category(), "Order");
        assert_eq!(id.entity_id(), "a1_b-2");
        assert_eq!(id.to_string(), "Order-a1_b-2");
    }

    #[test]
    fn hostile_stream_ids_are_rejected() {
        for bad in [
            "",
            "Order",
            "order-1",
            "Order-",
            "Order-a b",
            "Order-é",
            "Order-a/b",
            "Or der-1",
            &format!("Order-{}", "x".repeat(65)),
            &format!("{}-1", "A".repeat(41)),
        ] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn entity_ids_are_checked_and_generated_ones_are_valid() {
        assert!(EntityId::parse("a-B_9").is_ok());
        assert!(EntityId::parse(&"x".repeat(65)).is_err());
        assert!(EntityId::parse("a.b").is_err());
        let generated = EntityId::generate();
        assert_eq!(EntityId::parse(generated.as_str()), Ok(generated));
    }

    #[test]
    fn categories_are_checked_at_compile_time_and_run_time() {
        const { assert!(is_valid_category("Order2")) };
        for bad in ["", "order", "Or-der", "Ordér", &"A".repeat(41)] {
            assert!(!is_valid_category(bad), "{bad:?}");
            assert!(validate_category(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn event_types_are_checked() {
        assert!(validate_event_type("ItemAdded").is_ok());
        assert!(validate_event_type("billing.Invoice_v2").is_ok());
        for bad in ["", "1Bad", "has space", "semi;colon", &"A".repeat(101)] {
            assert!(validate_event_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_validate_when_deserialized() {
        let ok: StreamId = serde_json::from_str("\"Order-42\"").expect("valid");
        assert_eq!(ok.category(), "Order");
        assert!(serde_json::from_str::<StreamId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<EntityId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<CommandId>("\"\"").is_err());
    }

    #[test]
    fn command_ids_are_printable_ascii() {
        assert!(CommandId::new("key-1:ok").is_ok());
        assert_eq!(CommandId::new("has space"), Err(IdError::Command));
        assert_eq!(CommandId::new("x".repeat(129)), Err(IdError::Command));
        assert!(CommandId::new(CommandId::generate().as_str()).is_ok());
    }
}
