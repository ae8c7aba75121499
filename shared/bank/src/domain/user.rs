//! A user: registered once, with a normalised email address that no other user holds.
//!
//! Uniqueness across users is not a rule one aggregate can check; the service enforces it
//! with a claim on the address in the same transaction (see `service`).

use std::fmt;

use eventfold::personal::Personal;
use eventfold::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::{InvalidValue, Name};

/// Longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address, normalised for comparison (lower-cased) after checking its shape: one
/// `@`, a dotted domain, no whitespace or control characters, at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses and normalises an address.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue(format!(
                "email must be a single address like name@example.com, at most {MAX_EMAIL_LEN} \
                 characters"
            ))
        };
        if raw.chars().count() > MAX_EMAIL_LEN {
            return Err(invalid());
        }
        let email = raw.to_lowercase();
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let well_formed = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if well_formed {
            Ok(Self(email))
        } else {
            Err(invalid())
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Addresses are personal data: `Debug` (and so every log line) never shows them.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

/// The state of one user: their address and name are their personal data, sealed as stored
/// and erased once they are forgotten.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Whether registered.
    pub registered: bool,
    /// Whether forgotten (their personal data erased for good).
    #[serde(default)]
    pub forgotten: bool,
    /// The address (`None` until registered).
    pub email: Option<Personal<Email>>,
    /// The name (`None` until registered).
    pub name: Option<Personal<Name>>,
}

/// What can be asked of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    /// Register with an address and a name.
    Register {
        /// The normalised address, the user's personal data.
        email: Personal<Email>,
        /// The display name, the user's personal data.
        name: Personal<Name>,
    },
    /// Forget them: what they gave is erased for good (the service deletes their key).
    Forget,
}

/// What happened to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum UserEvent {
    /// Registered. Schema 2: the address and the name are personal data (schema 1 held them
    /// as plain text).
    #[event(schema = 2)]
    UserRegistered {
        /// The normalised address.
        email: Personal<Email>,
        /// The display name.
        name: Personal<Name>,
    },
    /// Forgotten: their key is deleted, so their address and name read as erased everywhere.
    UserForgotten,
}

/// Why a user command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Registered already.
    #[error("the user is already registered")]
    AlreadyRegistered,
    /// Another user holds the address.
    #[error("the email address is already registered")]
    EmailTaken,
    /// The caller has not registered as a user (`POST /users`) yet.
    #[error("register as a user (POST /users) before opening an account")]
    NotRegistered,
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The user was forgotten: there is nothing of theirs left to act on.
    #[error("the user was forgotten")]
    Forgotten,
}

impl Aggregate for User {
    const CATEGORY: &'static str = "User";
    const STATE_SCHEMA: u32 = 3;

    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register { email, name } => {
                if self.registered {
                    return Err(UserError::AlreadyRegistered);
                }
                Ok(vec![UserEvent::UserRegistered {
                    email: email.clone(),
                    name: name.clone(),
                }])
            }
            UserCommand::Forget if !self.registered => Err(UserError::NotFound),
            UserCommand::Forget if self.forgotten => Err(UserError::Forgotten),
            UserCommand::Forget => Ok(vec![UserEvent::UserForgotten]),
        }
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::UserRegistered { email, name } => {
                self.registered = true;
                self.email = Some(email.clone());
                self.name = Some(name.clone());
            }
            UserEvent::UserForgotten => {
                self.forgotten = true;
                self.email = self.email.take().map(erased);
                self.name = self.name.take().map(erased);
            }
        }
        self
    }
}

/// A personal value whose subject is forgotten.
fn erased<T>(value: Personal<T>) -> Personal<T> {
    Personal::Erased {
        subject: value.subject().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use eventfold::testing::given;

    use super::*;

    fn email(text: &str) -> Email {
        Email::parse(text).expect("valid address")
    }

    #[test]
    fn addresses_are_normalised_when_parsed() {
        assert_eq!(email("Ada@Example.COM").as_str(), "ada@example.com");
        let parsed: Email = serde_json::from_str("\"Ada@Example.COM\"").expect("valid");
        assert_eq!(parsed, email("ada@example.com"));
    }

    fn register() -> UserCommand {
        UserCommand::Register {
            email: Personal::new("u1", email("a@b.co")),
            name: Personal::new("u1", Name::parse("A").expect("valid")),
        }
    }

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            email: Personal::new("u1", email("a@b.co")),
            name: Personal::new("u1", Name::parse("A").expect("valid")),
        }
    }

    #[test]
    fn a_user_registers_once() {
        given::<User>([registered()])
            .when(register())
            .then_error(UserError::AlreadyRegistered);
        let state = given::<User>([]).when(register()).then([registered()]);
        assert!(state.registered);
    }

    #[test]
    fn a_forgotten_user_keeps_nothing_and_cannot_come_back() {
        given::<User>([])
            .when(UserCommand::Forget)
            .then_error(UserError::NotFound);
        let state = given::<User>([registered()])
            .when(UserCommand::Forget)
            .then([UserEvent::UserForgotten]);
        assert!(state.forgotten);
        assert!(state.email.as_ref().is_some_and(Personal::is_erased));
        assert!(state.name.as_ref().is_some_and(Personal::is_erased));
        given::<User>([registered(), UserEvent::UserForgotten])
            .when(UserCommand::Forget)
            .then_error(UserError::Forgotten);
        given::<User>([registered(), UserEvent::UserForgotten])
            .when(register())
            .then_error(UserError::AlreadyRegistered);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a b@c.de",
            "a@.co",
            "a@b.co.",
            "a@b\u{7}.co",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn addresses_never_reach_the_log() {
        assert_eq!(
            format!("{:?}", email("ada@example.com")),
            "Email(<redacted>)"
        );
    }
}
