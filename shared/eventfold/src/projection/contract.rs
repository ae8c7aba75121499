//! What a projection is: which row each event goes to, and what it does to that row. Pure: no
//! I/O; the runtime loads, applies and writes.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::StreamId;

/// A change to one counter: `delta` added to counter `name` of the counter row `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDelta {
    /// The counter row (e.g. `#totals-0`): counter rows start with `#`, which no row key may.
    pub key: String,
    /// The counter within the row.
    pub name: String,
    /// What to add (negative to subtract).
    pub delta: i64,
}

impl CounterDelta {
    /// Adds `delta` to counter `name` of row `key`.
    pub fn new(key: impl Into<String>, name: impl Into<String>, delta: i64) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            delta,
        }
    }
}

/// What one event does to a projection.
#[derive(Clone, Debug, PartialEq)]
pub struct Update<R> {
    /// The row after the event (`None`: no row, or the row is gone; the checkpoint stays).
    pub row: Option<R>,
    /// Counters the event moves.
    pub counters: Vec<CounterDelta>,
}

/// How a projection's rows relate to streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rows {
    /// Each row follows one stream (an account's row), keyed by a function of the stream id:
    /// the row's version is the stream's, and a write is one conditional item.
    #[default]
    PerStream,
    /// A row gathers events of many streams (a member's loans, a customer's orders), keyed by a
    /// value the events carry: each source stream has a checkpoint of its own, written in the
    /// same transaction as the rows it moves, and each row a revision that concurrent writers
    /// meet at.
    Shared,
}

/// A read model: which row each event goes to, and what each event does to its row.
///
/// The runtime gives it exactly-once effect on an at-least-once stream: duplicates change
/// nothing, an event after a gap is applied only after the missing ones (read from the events
/// table), and counters move in the same write as the row.
///
/// ```
/// use eventfold::prelude::*;
/// use eventfold::projection::Rows;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DomainEvent)]
/// #[serde(tag = "type", content = "data")]
/// enum BookEvent {
///     BookLent { member: String },
///     BookReturned,
/// }
///
/// /// The books each member has on loan: one row per member, fed by every book's stream.
/// #[derive(Debug)]
/// struct LoansPerMember;
///
/// #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// struct MemberLoans {
///     books: Vec<String>,
/// }
///
/// impl Projection for LoansPerMember {
///     type Row = MemberLoans;
///
///     fn name(&self) -> &str {
///         "loans-per-member"
///     }
///
///     fn rows(&self) -> Rows {
///         Rows::Shared
///     }
///
///     fn follows(&self, stream_id: &StreamId) -> bool {
///         stream_id.category() == "Book"
///     }
///
///     fn row_key(&self, event: &RecordedEvent, previous: Option<&str>) -> Option<String> {
///         // A return goes to the member the book was lent to: the row its stream's last
///         // event went to.
///         match decode_known::<BookEvent>(event) {
///             Ok(Some(BookEvent::BookLent { member })) => Some(member),
///             _ => previous.map(str::to_owned),
///         }
///     }
///
///     fn apply(
///         &self,
///         row: Option<MemberLoans>,
///         event: &RecordedEvent,
///     ) -> Result<Option<Update<MemberLoans>>, StoreError> {
///         let Some(decoded) = decode_known::<BookEvent>(event)? else {
///             return Ok(None);
///         };
///         let mut row = row.unwrap_or_default();
///         let book = event.stream_id.entity_id().to_owned();
///         match decoded {
///             BookEvent::BookLent { .. } => row.books.push(book),
///             BookEvent::BookReturned => row.books.retain(|b| *b != book),
///         }
///         Ok(Some(Update { row: Some(row), counters: Vec::new() }))
///     }
/// }
/// ```
pub trait Projection: Send + Sync + fmt::Debug + 'static {
    /// The row. It serializes to a JSON object with at least one field, and without the
    /// store's key attribute or `version` (the checkpoint) among its fields.
    type Row: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync;

    /// A stable name, for logs, metrics and the operator's CLI.
    fn name(&self) -> &str;

    /// How rows relate to streams: one row per stream (the default), or rows shared by many.
    fn rows(&self) -> Rows {
        Rows::PerStream
    }

    /// Whether events of `stream_id` feed this projection; those of other streams are skipped
    /// without any I/O.
    fn follows(&self, stream_id: &StreamId) -> bool;

    /// The key of the row an event of a followed stream goes to, or `None` for one that goes
    /// to no row (the checkpoint still moves). `previous` is the key the same stream's previous
    /// event went to (for shared rows, so that an event need not carry the key: a book's return
    /// goes where its loan went). With [`Rows::PerStream`] the key must depend on the stream id
    /// alone. Row keys never start with `#` or `$`.
    fn row_key(&self, event: &RecordedEvent, previous: Option<&str>) -> Option<String>;

    /// Applies one event to its row (`None` before the first). `Ok(None)` is an event this
    /// projection does not use: only the checkpoint moves. An event of a type it knows that
    /// does not decode is an error (the record is poison).
    fn apply(
        &self,
        row: Option<Self::Row>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<Self::Row>>, StoreError>;
}
