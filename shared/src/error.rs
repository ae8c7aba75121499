//! The one error type of the event store, and the single mapping from AWS SDK errors into it.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::ids::{CommandId, StreamId};
use crate::store::ExpectedVersion;

/// Everything that can go wrong talking to the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: the stream is not at the expected version.
    #[error("conflict on {stream_id}: expected {expected}, stream is at {}", describe_actual(*.actual))]
    Conflict {
        stream_id: StreamId,
        expected: ExpectedVersion,
        /// The stream's current version, `None` if the stream does not exist.
        actual: Option<u64>,
    },
    /// The command id was already used for a different request.
    #[error("command id {command_id} was already used for a different request")]
    IdempotencyMismatch { command_id: CommandId },
    /// A size or count limit would be exceeded; nothing was written.
    #[error("{what} is {actual}, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        actual: usize,
        limit: usize,
    },
    /// The request itself is invalid (ids, event types, empty appends); nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store could not be reached or refused the request for capacity reasons.
    #[error("event store unavailable: {message}")]
    Unavailable { message: String, retryable: bool },
    /// Stored data could not be decoded or failed an integrity check.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

fn describe_actual(actual: Option<u64>) -> String {
    actual.map_or_else(|| "no stream".to_owned(), |v| format!("version {v}"))
}

impl StoreError {
    /// An invalid-input error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// A corrupt-data error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into())
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable {
                retryable: true,
                ..
            }
        )
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

/// Maps any SDK error to a [`StoreError`], marking throttling, timeouts and 5xx as retryable.
///
/// Conditional-check failures and transaction cancellations are interpreted by the caller,
/// which knows what was conditional; this function is for everything else.
pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            RETRYABLE_CODES.contains(&code) || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let code = err.code().unwrap_or("unknown").to_owned();
    let detail = err.message().map_or_else(
        || {
            // Dispatch and timeout errors carry their cause in the source chain, not a message.
            let mut text = err.to_string();
            let mut source = err.source();
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        },
        str::to_owned,
    );
    if code == "ValidationException" && detail.contains("size") {
        return StoreError::TooLarge {
            what: "item (as measured by DynamoDB)",
            actual: 0,
            limit: crate::store::DYNAMODB_MAX_ITEM_BYTES,
        };
    }
    StoreError::Unavailable {
        message: format!("{operation} failed ({code}): {detail}"),
        retryable,
    }
}
