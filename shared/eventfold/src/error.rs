//! Errors of the stores.
//!
//! Each layer has its own error: [`crate::ids::IdError`] for input that does not parse,
//! [`StoreError`] for the event, snapshot and read-model stores, and
//! [`crate::command::CommandError`] for the command service. An unavailable dependency keeps
//! the backend's own error as its source, so whoever maps it to an answer can log the whole
//! chain.

use std::error::Error as StdError;
use std::fmt;

use crate::ids::{CommandId, StreamId};
use crate::version::{CurrentVersion, ExpectedVersion};

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A dependency that could not be reached, throttled us, or failed: which call, on which
/// table or queue, and the SDK's own error as the source.
#[derive(Debug)]
pub struct Unavailable {
    /// The API operation, e.g. `TransactWriteItems`.
    pub operation: &'static str,
    /// The table name or queue URL.
    pub resource: String,
    /// The service's error code, if it answered.
    pub code: Option<String>,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// A write whose answer was lost: it may or may not have been applied.
    pub outcome_unknown: bool,
    /// The SDK error.
    pub source: BoxError,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} failed", self.operation, self.resource)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if self.outcome_unknown {
            f.write_str(", outcome unknown")?;
        }
        Ok(())
    }
}

impl StdError for Unavailable {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Everything that can go wrong talking to a store (events, commands, snapshots, read models).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: the stream is not at the expected version.
    #[error("conflict on {stream_id}: expected {expected}, stream is at {actual}")]
    Conflict {
        /// The stream that moved.
        stream_id: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// What the store saw.
        actual: CurrentVersion,
        /// The event at the version after the expected one, when the store had it for free
        /// with the refusal (DynamoDB returns the item that failed the condition): a writer can
        /// fold it in and try again without reading.
        next: Option<Box<crate::envelope::RecordedEvent>>,
    },
    /// The command id was already used for a different request.
    #[error("command id {command_id} was already used for a different request")]
    IdempotencyMismatch {
        /// The reused id.
        command_id: CommandId,
    },
    /// A size or count limit would be exceeded; nothing was written.
    #[error("{what} is {actual}, over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size or count.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// The caller asked for something no correct program asks for (an empty append, a stream
    /// twice in one append, a value that does not serialize); nothing was written.
    #[error("invalid use of the store: {0}")]
    Misuse(String),
    /// The store could not be reached, refused for capacity, or failed.
    #[error(transparent)]
    Unavailable(Box<Unavailable>),
    /// Stored data could not be decoded or failed an integrity check.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A domain event that would be written but could not be read back as itself (its serde
    /// shape, or an `event_type` that disagrees with its tag); refused before any I/O.
    #[error("a {event_type} event could not be read back once written: {reason}")]
    Unreadable {
        /// The event's type, as it would have been stored.
        event_type: String,
        /// What goes wrong.
        reason: String,
    },
}

impl StoreError {
    /// A misuse error.
    pub fn misuse(message: impl Into<String>) -> Self {
        Self::Misuse(message.into())
    }

    /// A corrupt-data error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into())
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(u) if u.retryable)
    }

    /// Whether this is a write whose answer was lost, so it may have been applied.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Unavailable(u) if u.outcome_unknown)
    }
}

/// An error and every source below it, joined with `: `; what a log line of a failure needs.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // SDK errors repeat their source's text in their own; keep each cause once.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn the_chain_names_every_cause() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner detail");
    }
}
