//! The contract between the domain and the command service: pure `decide` and `evolve`.
//!
//! Nothing here does I/O. Domain events are serde enums with `#[serde(tag = "type", content =
//! "data")]` and `#[derive(DomainEvent)]`: the tag becomes the stored event type, the content
//! the payload, and the derive takes the type from serde so the two cannot disagree.
//!
//! ```
//! use eventfold::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// A library book: lent to one member at a time.
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! struct Book {
//!     on_loan_to: Option<String>,
//! }
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DomainEvent)]
//! #[serde(tag = "type", content = "data")]
//! enum BookEvent {
//!     BookLent { member: String },
//!     BookReturned,
//! }
//!
//! #[derive(Debug)]
//! enum BookCommand {
//!     Lend { member: String },
//!     Return,
//! }
//!
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! enum BookError {
//!     #[error("the book is on loan")]
//!     OnLoan,
//!     #[error("the book is not on loan")]
//!     NotOnLoan,
//! }
//!
//! impl Aggregate for Book {
//!     const CATEGORY: &'static str = "Book";
//!     const STATE_SCHEMA: u32 = 1;
//!     type Event = BookEvent;
//!     type Command = BookCommand;
//!     type Error = BookError;
//!
//!     fn decide(&self, command: &BookCommand) -> Result<Vec<BookEvent>, BookError> {
//!         match (command, &self.on_loan_to) {
//!             (BookCommand::Lend { .. }, Some(_)) => Err(BookError::OnLoan),
//!             (BookCommand::Lend { member }, None) => {
//!                 Ok(vec![BookEvent::BookLent { member: member.clone() }])
//!             }
//!             (BookCommand::Return, Some(_)) => Ok(vec![BookEvent::BookReturned]),
//!             (BookCommand::Return, None) => Err(BookError::NotOnLoan),
//!         }
//!     }
//!
//!     fn evolve(mut self, event: &BookEvent) -> Self {
//!         self.on_loan_to = match event {
//!             BookEvent::BookLent { member } => Some(member.clone()),
//!             BookEvent::BookReturned => None,
//!         };
//!         self
//!     }
//! }
//!
//! let stream = Book::stream_id(&EntityId::parse("moby-dick")?);
//! assert_eq!(stream.as_str(), "Book-moby-dick");
//! eventfold::testing::given::<Book>([BookEvent::BookLent { member: "ada".into() }])
//!     .when(BookCommand::Lend { member: "grace".into() })
//!     .then_error(BookError::OnLoan);
//! # Ok::<(), eventfold::IdError>(())
//! ```

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ids::{EntityId, StreamId, is_valid_category};

/// An event of one aggregate type: derive it (`#[derive(DomainEvent)]`) rather than write it,
/// so its stored type is serde's own name for the variant.
///
/// ```
/// use eventfold::DomainEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, DomainEvent)]
/// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
/// enum Ticket {
///     Opened { title: String },
///     #[event(schema = 2)]
///     Assigned { to: String, team: String },
///     Closed,
/// }
///
/// assert_eq!(Ticket::TYPES, ["opened", "assigned", "closed"]);
/// assert_eq!(Ticket::Closed.event_type(), "closed");
/// assert_eq!(Ticket::Assigned { to: "ada".into(), team: "core".into() }.schema_version(), 2);
/// ```
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Debug + Send + Sync {
    /// Every event type this enum stores, one per variant.
    const TYPES: &'static [&'static str];

    /// The name stored as this event's type (the serde tag).
    fn event_type(&self) -> &'static str;

    /// The payload schema version this code writes for the event's type (`#[event(schema =
    /// N)]` with the derive); readers upcast older ones.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// An aggregate: state folded from its events, and the decisions it makes (see the module's
/// example for a whole one, tested with given/when/then).
///
/// ```
/// use eventfold::prelude::*;
/// use eventfold::testing::toy::{Counter, CounterCommand, CounterEvent};
///
/// let state = Counter::default().evolve(&CounterEvent::Added { n: 3 });
/// assert_eq!(state.decide(&CounterCommand::Add(2)), Ok(vec![CounterEvent::Added { n: 2 }]));
/// assert_eq!(Counter::stream_id(&EntityId::parse("c-1")?).as_str(), "Counter-c-1");
/// # Ok::<(), eventfold::IdError>(())
/// ```
pub trait Aggregate:
    Default + Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The stream category, e.g. `Order` for streams `Order-<id>`: an ASCII capital, then
    /// letters and digits (checked when the program is compiled).
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

    /// The stream of the entity `id` of this aggregate: `<CATEGORY>-<id>`.
    fn stream_id(id: &EntityId) -> StreamId {
        const {
            assert!(
                is_valid_category(Self::CATEGORY),
                "Aggregate::CATEGORY must be an ASCII capital then letters and digits, at most 40"
            );
        }
        StreamId::of_valid_category(Self::CATEGORY, id)
    }
}
