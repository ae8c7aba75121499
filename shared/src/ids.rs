//! Validated identifiers: stream ids, categories, event types and command ids.
//!
//! Everything that becomes a key is checked here, before any I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest accepted entity id (the part after the category).
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted category name.
pub const MAX_CATEGORY_LEN: usize = 40;
/// Longest accepted event type name.
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// Longest accepted command id (an `Idempotency-Key` is hashed into one).
pub const MAX_COMMAND_ID_LEN: usize = 128;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Checks an entity id against `[A-Za-z0-9_-]{1,64}`.
pub fn validate_entity_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(is_id_char) {
        return Err(StoreError::invalid(format!(
            "id must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_-], got {:?}",
            truncate_for_message(id)
        )));
    }
    Ok(())
}

/// Checks an event type: an ASCII letter, then letters, digits, `_` or `.`, at most 100 long.
pub fn validate_event_type(event_type: &str) -> Result<(), StoreError> {
    let mut chars = event_type.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !starts_ok || !rest_ok || event_type.len() > MAX_EVENT_TYPE_LEN {
        return Err(StoreError::invalid(format!(
            "event type must match [A-Za-z][A-Za-z0-9_.]{{0,99}}, got {:?}",
            truncate_for_message(event_type)
        )));
    }
    Ok(())
}

fn validate_category(category: &str) -> Result<(), StoreError> {
    let mut chars = category.chars();
    let starts_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    if !starts_ok || !chars.all(|c| c.is_ascii_alphanumeric()) || category.len() > MAX_CATEGORY_LEN
    {
        return Err(StoreError::invalid(format!(
            "category must match [A-Z][A-Za-z0-9]{{0,39}}, got {:?}",
            truncate_for_message(category)
        )));
    }
    Ok(())
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(80).collect()
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
    pub fn new(category: &str, id: &str) -> Result<Self, StoreError> {
        validate_category(category)?;
        validate_entity_id(id)?;
        Ok(Self {
            value: format!("{category}-{id}"),
            category_len: category.len(),
        })
    }

    /// Parses `<Category>-<id>`.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        let (category, id) = value.split_once('-').ok_or_else(|| {
            StoreError::invalid(format!(
                "stream id must be <Category>-<id>, got {:?}",
                truncate_for_message(value)
            ))
        })?;
        Self::new(category, id)
    }

    /// The category (aggregate type), e.g. `Account`.
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
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.value
    }
}

/// The id of a command, used as its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(String);

impl CommandId {
    /// Accepts 1-128 printable ASCII characters.
    pub fn new(value: impl Into<String>) -> Result<Self, StoreError> {
        let value = value.into();
        if value.is_empty()
            || value.len() > MAX_COMMAND_ID_LEN
            || !value.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(StoreError::invalid(
                "command id must be 1-128 printable ASCII characters",
            ));
        }
        Ok(Self(value))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_splits_category_and_entity() {
        let id = StreamId::parse("Account-a1_b-2").expect("valid");
        assert_eq!(id.category(), "Account");
        assert_eq!(id.entity_id(), "a1_b-2");
        assert_eq!(id.to_string(), "Account-a1_b-2");
    }

    #[test]
    fn hostile_stream_ids_are_rejected() {
        for bad in [
            "",
            "Account",
            "account-1",
            "Account-",
            "Account-a b",
            "Account-é",
            "Account-a/b",
            "Ac count-1",
            &format!("Account-{}", "x".repeat(65)),
            &format!("{}-1", "A".repeat(41)),
        ] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn event_types_are_checked() {
        assert!(validate_event_type("MoneyDeposited").is_ok());
        assert!(validate_event_type("billing.Invoice_v2").is_ok());
        for bad in ["", "1Bad", "has space", "semi;colon", &"A".repeat(101)] {
            assert!(validate_event_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_id_serde_validates() {
        let ok: StreamId = serde_json::from_str("\"User-42\"").expect("valid");
        assert_eq!(ok.category(), "User");
        assert!(serde_json::from_str::<StreamId>("\"nope\"").is_err());
    }
}
