//! The one mapping from AWS SDK errors into the library's: whether a retry may help, and
//! whether a write may have been applied although no answer came back. An unavailable
//! dependency keeps the SDK error as its source, so the log line names the whole chain.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::error::{StoreError, Unavailable, error_chain};
use crate::limits::MAX_ITEM_BYTES;

/// An SQS call that failed, naming the queue.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct QueueError(pub Box<Unavailable>);

impl QueueError {
    /// A message that could not be encoded for a queue.
    pub fn encoding(queue_url: &str, source: impl Into<crate::error::BoxError>) -> Self {
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

/// Whether the call was a write: one without an answer may have been applied.
#[derive(Clone, Copy)]
enum Call {
    Read,
    Write,
}

fn unavailable<E>(
    operation: &'static str,
    resource: &str,
    err: SdkError<E, HttpResponse>,
    call: Call,
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
        outcome_unknown: matches!(call, Call::Write) && sent && !answered,
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
    classify(unavailable(operation, resource, err, Call::Read))
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
    classify(unavailable(operation, resource, err, Call::Write))
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
    QueueError(Box::new(unavailable(
        operation,
        queue_url,
        err,
        Call::Write,
    )))
}

fn classify(unavailable: Unavailable) -> StoreError {
    let too_large = unavailable.code.as_deref() == Some("ValidationException")
        && error_chain(&unavailable).contains("size");
    if too_large {
        return StoreError::TooLarge {
            what: "item (as measured by DynamoDB)",
            actual: 0,
            limit: MAX_ITEM_BYTES,
        };
    }
    StoreError::Unavailable(Box::new(unavailable))
}
