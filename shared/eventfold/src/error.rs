//! Errors of the stores and queues, and the single mapping from AWS SDK errors into them.
//!
//! Each layer has its own error: [`crate::ids::IdError`] for input that does not parse,
//! [`StoreError`] for the event, snapshot and read-model stores, [`QueueError`] for SQS, and
//! [`crate::command::CommandError`] for the command service. An unavailable dependency keeps
//! the SDK error as its source, so whoever maps it to an answer can log the whole chain.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ids::{CommandId, StreamId};
use crate::store::ExpectedVersion;

/// A boxed error that can cross threads.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What a store knows of a stream's version when it refuses an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentVersion {
    /// The stream does not exist.
    NoStream,
    /// The stream's last event is this version.
    At(u64),
    /// The stream has moved past this version; how far was not read (that read is the
    /// caller's catch-up, so the store does not spend a round trip on it).
    Beyond(u64),
}

impl CurrentVersion {
    /// The version known for certain to exist (0 for no stream).
    pub fn at_least(self) -> u64 {
        match self {
            Self::NoStream => 0,
            Self::At(version) => version,
            Self::Beyond(version) => version + 1,
        }
    }
}

impl fmt::Display for CurrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::At(version) => write!(f, "version {version}"),
            Self::Beyond(version) => write!(f, "past version {version}"),
        }
    }
}

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
        next: Option<Box<crate::RecordedEvent>>,
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

/// An SQS call that failed, naming the queue.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct QueueError(pub Box<Unavailable>);

impl QueueError {
    /// A message that could not be encoded for a queue.
    pub fn encoding(queue_url: &str, source: impl Into<BoxError>) -> Self {
        Self(Box::new(Unavailable {
            operation: "encode message",
            resource: queue_url.to_owned(),
            code: None,
            retryable: false,
            outcome_unknown: false,
            source: source.into(),
        }))
    }
}

/// Error codes DynamoDB and SQS use for throttling and transient server trouble.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// How a failed call is classified: whether a retry may help, and whether a write may have
/// been applied although no answer came back.
fn unavailable<E>(
    operation: &'static str,
    resource: &str,
    err: SdkError<E, HttpResponse>,
    is_write: bool,
) -> Unavailable
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let (retryable, answered) = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (true, false)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let retryable =
                RETRYABLE_CODES.contains(&code) || service.raw().status().is_server_error();
            (retryable, true)
        }
        _ => (false, false),
    };
    // A request that never left (construction failed) cannot have been applied.
    let sent = !matches!(err, SdkError::ConstructionFailure(_));
    Unavailable {
        operation,
        resource: resource.to_owned(),
        code: err.code().map(str::to_owned),
        retryable,
        outcome_unknown: is_write && sent && !answered,
        source: Box::new(err),
    }
}

/// Maps a failed read (or any call whose repetition is harmless) to a [`StoreError`].
pub fn from_sdk<E>(
    operation: &'static str,
    resource: &str,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    classify(unavailable(operation, resource, err, false))
}

/// Maps a failed write: one without an answer may have been applied.
pub fn from_sdk_write<E>(
    operation: &'static str,
    resource: &str,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    classify(unavailable(operation, resource, err, true))
}

/// Maps a failed SQS call to a [`QueueError`] naming the queue.
pub fn queue_error<E>(
    operation: &'static str,
    queue_url: &str,
    err: SdkError<E, HttpResponse>,
) -> QueueError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    QueueError(Box::new(unavailable(operation, queue_url, err, true)))
}

fn classify(unavailable: Unavailable) -> StoreError {
    let too_large = unavailable.code.as_deref() == Some("ValidationException")
        && error_chain(&unavailable).contains("size");
    if too_large {
        return StoreError::TooLarge {
            what: "item (as measured by DynamoDB)",
            actual: 0,
            limit: crate::store::DYNAMODB_MAX_ITEM_BYTES,
        };
    }
    StoreError::Unavailable(Box::new(unavailable))
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

    #[test]
    fn current_versions_read_plainly() {
        assert_eq!(CurrentVersion::Beyond(3).to_string(), "past version 3");
        assert_eq!(CurrentVersion::Beyond(3).at_least(), 4);
        assert_eq!(CurrentVersion::NoStream.at_least(), 0);
    }
}
