//! The bank's domain: accounts, users and money. Pure and synchronous: no AWS, no tokio, no
//! serde_dynamo, no I/O. Each aggregate is `decide(&State, Command) -> Result<Vec<Event>>` and
//! `evolve(State, &Event) -> State`.
//!
//! Values are parsed once into types that cannot be wrong ([`money::Amount`],
//! [`money::Currency`], [`Name`], [`user::Email`]), so `decide` enforces business rules only.

pub mod account;
pub mod money;
pub mod user;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// Longest name accepted (owners and users), in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A person's or an owner's name: 1-200 characters, not blank, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Parses a name.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let acceptable = (1..=MAX_NAME_CHARS).contains(&text.chars().count())
            && !text.trim().is_empty()
            && !text.chars().any(char::is_control);
        if acceptable {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "a name must be 1-{MAX_NAME_CHARS} characters without control characters"
            )))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names are personal data: `Debug` (and so every log line) never shows them.
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name(<{} chars>)", self.0.chars().count())
    }
}

impl TryFrom<String> for Name {
    type Error = InvalidValue;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_present_printable_and_bounded() {
        for bad in ["", "   ", "a\u{0}b", "tab\there", &"x".repeat(201)] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Name::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            format!("{:?}", Name::parse("Ada").expect("valid")),
            "Name(<3 chars>)"
        );
    }
}
