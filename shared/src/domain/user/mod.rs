//! A user: registered once, with a normalised email address that no other user holds.
//!
//! Uniqueness across users is not a rule one aggregate can check; the command service enforces
//! it with a claim on the address in the same transaction (see `service`).

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};

/// Longest user name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// The state of one user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub registered: bool,
    pub email: String,
    pub name: String,
}

/// What can be asked of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    Register { email: String, name: String },
}

/// What happened to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum UserEvent {
    UserRegistered { email: String, name: String },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
        }
    }
}

/// Why a user command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user is already registered")]
    AlreadyRegistered,
    #[error(
        "email must be a single address like name@example.com, at most {MAX_EMAIL_LEN} characters"
    )]
    InvalidEmail,
    #[error("name must be 1-{MAX_NAME_CHARS} characters without control characters")]
    InvalidName,
    #[error("the email address is already registered")]
    EmailTaken,
}

/// Normalises an address for comparison (lower-cased) after checking its shape: one `@`, a
/// dotted domain, no whitespace or control characters anywhere, at most 254 characters.
pub fn normalize_email(raw: &str) -> Result<String, UserError> {
    if raw.chars().count() > MAX_EMAIL_LEN {
        return Err(UserError::InvalidEmail);
    }
    let email = raw.to_lowercase();
    let (local, domain) = email.split_once('@').ok_or(UserError::InvalidEmail)?;
    let well_formed = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(email)
    } else {
        Err(UserError::InvalidEmail)
    }
}

/// Whether a display name is acceptable: 1-200 characters, not blank, no control characters.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && !name.trim().is_empty()
        && !name.chars().any(char::is_control)
}

impl Aggregate for User {
    const CATEGORY: &'static str = "User";
    const STATE_SCHEMA: u32 = 1;

    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register { email, name } => {
                if self.registered {
                    return Err(UserError::AlreadyRegistered);
                }
                if !is_valid_name(name) {
                    return Err(UserError::InvalidName);
                }
                Ok(vec![UserEvent::UserRegistered {
                    email: normalize_email(email)?,
                    name: name.clone(),
                }])
            }
        }
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::UserRegistered { email, name } => {
                self.registered = true;
                self.email.clone_from(email);
                self.name.clone_from(name);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::given::given;

    #[test]
    fn registering_normalises_the_email() {
        given::<User>([])
            .when(UserCommand::Register {
                email: "Ada@Example.COM".into(),
                name: "Ada".into(),
            })
            .then([UserEvent::UserRegistered {
                email: "ada@example.com".into(),
                name: "Ada".into(),
            }]);
    }

    #[test]
    fn a_user_registers_once() {
        given::<User>([UserEvent::UserRegistered {
            email: "a@b.co".into(),
            name: "A".into(),
        }])
        .when(UserCommand::Register {
            email: "a@b.co".into(),
            name: "A".into(),
        })
        .then_error(UserError::AlreadyRegistered);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for email in [
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
            assert_eq!(
                normalize_email(email),
                Err(UserError::InvalidEmail),
                "{email:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), Err(UserError::InvalidEmail));
    }

    #[test]
    fn names_are_checked() {
        given::<User>([])
            .when(UserCommand::Register {
                email: "a@b.co".into(),
                name: " ".into(),
            })
            .then_error(UserError::InvalidName);
    }
}
