//! RFC 9457 problem details with an open set of problem types: the library defines the kinds
//! every event-sourced API has, an application adds its own as constants, and errors become
//! problems through [`IntoProblem`] in one place per layer.
//!
//! A domain maps its refusals once, and every function that runs its commands answers them the
//! same way:
//!
//! ```
//! use eventfold::problem::{IntoProblem, Problem, ProblemType};
//!
//! /// A book lent to someone else.
//! pub const ON_LOAN: ProblemType = ProblemType::new(422, "on-loan", "Book on loan");
//!
//! #[derive(Debug, thiserror::Error)]
//! enum BookError {
//!     #[error("the book is on loan until {due}")]
//!     OnLoan { due: String },
//! }
//!
//! impl IntoProblem for BookError {
//!     fn to_problem(&self) -> Problem {
//!         match self {
//!             BookError::OnLoan { due } => Problem::new(ON_LOAN, self.to_string()).with("due", due.as_str()),
//!         }
//!     }
//! }
//!
//! let problem = BookError::OnLoan { due: "2026-12-24".into() }.to_problem();
//! assert_eq!(problem.status(), 422);
//! assert_eq!(problem.body("/books/1/loans")["due"], "2026-12-24");
//! assert_eq!(problem.retry_after, None, "a rule refused: retrying will not help");
//! ```

use serde_json::{Map, Value, json};

use crate::command::CommandError;
use crate::error::{StoreError, error_chain};
use crate::identity::Denied;
use crate::ids::IdError;

/// The base of the `type` URI of the library's problem types.
pub const DEFAULT_PROBLEM_BASE: &str = "https://eventfold.dev/problems/";

/// A kind of problem: its status, a stable `type` URI, a title, and whether a client should
/// retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProblemType {
    /// The HTTP status.
    pub status: u16,
    /// The last segment of the `type` URI.
    pub slug: &'static str,
    /// A short, human-readable summary (the same for every occurrence).
    pub title: &'static str,
    /// The `type` URI up to the slug.
    pub base: &'static str,
    /// Seconds a client waits before it retries (`Retry-After`), for problems a retry can
    /// cure; `None` for the rest.
    pub retry_after: Option<u32>,
}

impl ProblemType {
    /// A problem type under [`DEFAULT_PROBLEM_BASE`] that retrying does not cure.
    pub const fn new(status: u16, slug: &'static str, title: &'static str) -> Self {
        Self {
            status,
            slug,
            title,
            base: DEFAULT_PROBLEM_BASE,
            retry_after: None,
        }
    }

    /// The same type, telling clients to retry after `seconds`.
    #[must_use]
    pub const fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The same type under another base URI (an application's own).
    #[must_use]
    pub const fn with_base(mut self, base: &'static str) -> Self {
        self.base = base;
        self
    }

    /// The stable `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{}{}", self.base, self.slug)
    }
}

/// The problem types of the library: request handling, concurrency and availability.
pub mod kinds {
    use super::ProblemType;

    /// The body is not JSON (or has a key twice).
    pub const MALFORMED_JSON: ProblemType =
        ProblemType::new(400, "malformed-json", "Malformed JSON");
    /// The request is well-formed but not valid (types, ranges, unknown fields).
    pub const INVALID_REQUEST: ProblemType =
        ProblemType::new(400, "invalid-request", "Invalid request");
    /// The request carries no credentials the authorizer accepted.
    pub const UNAUTHENTICATED: ProblemType =
        ProblemType::new(401, "unauthenticated", "Authentication required");
    /// The caller may see the resource but may not do this to it.
    pub const FORBIDDEN: ProblemType = ProblemType::new(403, "forbidden", "Forbidden");
    /// The resource does not exist (or the caller may not see it).
    pub const NOT_FOUND: ProblemType = ProblemType::new(404, "not-found", "Not found");
    /// No route matches the path.
    pub const ROUTE_NOT_FOUND: ProblemType =
        ProblemType::new(404, "route-not-found", "No such route");
    /// The path exists, the method does not.
    pub const METHOD_NOT_ALLOWED: ProblemType =
        ProblemType::new(405, "method-not-allowed", "Method not allowed");
    /// Concurrent writers kept winning.
    pub const CONCURRENCY_CONFLICT: ProblemType =
        ProblemType::new(409, "concurrency-conflict", "Concurrent modification").retry_after(1);
    /// A uniqueness claim is held already.
    pub const CLAIM_TAKEN: ProblemType = ProblemType::new(409, "claim-taken", "Already claimed");
    /// `If-Match` named another version.
    pub const PRECONDITION_FAILED: ProblemType =
        ProblemType::new(412, "precondition-failed", "Version mismatch");
    /// The body is over the limit.
    pub const PAYLOAD_TOO_LARGE: ProblemType =
        ProblemType::new(413, "payload-too-large", "Payload too large");
    /// The URI is over the limit.
    pub const URI_TOO_LONG: ProblemType = ProblemType::new(414, "uri-too-long", "URI too long");
    /// A body that is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: ProblemType =
        ProblemType::new(415, "unsupported-media-type", "Unsupported media type");
    /// An `Idempotency-Key` reused for another request.
    pub const IDEMPOTENCY_KEY_REUSED: ProblemType =
        ProblemType::new(422, "idempotency-key-reused", "Idempotency key reused");
    /// The headers are over the limit.
    pub const HEADERS_TOO_LARGE: ProblemType =
        ProblemType::new(431, "headers-too-large", "Request header fields too large");
    /// A bug: nothing the client can change.
    pub const INTERNAL: ProblemType = ProblemType::new(500, "internal", "Internal error");
    /// A dependency is unavailable; nothing was written.
    pub const STORE_UNAVAILABLE: ProblemType =
        ProblemType::new(503, "store-unavailable", "Service unavailable").retry_after(1);
    /// A write may or may not have been applied: retry with the same `Idempotency-Key`.
    pub const OUTCOME_UNKNOWN: ProblemType =
        ProblemType::new(503, "outcome-unknown", "Outcome unknown").retry_after(1);

    /// A read whose work would exceed one request's bound (time travel too far past a
    /// stream's start or its snapshot).
    pub const HISTORY_TOO_LONG: ProblemType =
        ProblemType::new(422, "history-too-long", "Too much history for one request");

    /// Every library kind, for documentation and tests.
    pub const ALL: [ProblemType; 19] = [
        MALFORMED_JSON,
        INVALID_REQUEST,
        UNAUTHENTICATED,
        FORBIDDEN,
        NOT_FOUND,
        ROUTE_NOT_FOUND,
        METHOD_NOT_ALLOWED,
        CONCURRENCY_CONFLICT,
        CLAIM_TAKEN,
        PRECONDITION_FAILED,
        PAYLOAD_TOO_LARGE,
        URI_TOO_LONG,
        UNSUPPORTED_MEDIA_TYPE,
        IDEMPOTENCY_KEY_REUSED,
        HEADERS_TOO_LARGE,
        INTERNAL,
        STORE_UNAVAILABLE,
        OUTCOME_UNKNOWN,
        HISTORY_TOO_LONG,
    ];
}

/// A problem to report.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Its type.
    pub kind: ProblemType,
    /// What happened this time, for the client.
    pub detail: String,
    /// Extension members (e.g. `balance`, `current_version`).
    pub extensions: Map<String, Value>,
    /// Seconds for `Retry-After` (the kind's, unless changed).
    pub retry_after: Option<u32>,
    /// The cause, for the log line only (never in the body).
    pub cause: Option<String>,
}

impl Problem {
    /// A problem of a kind with a human-readable detail.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: kind.retry_after,
            cause: None,
        }
    }

    /// A bug: `internal` for the client, the cause for the log.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(kinds::INTERNAL, "internal error").with_cause_text(cause)
    }

    /// Adds an extension member.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// Records the cause for the log.
    #[must_use]
    pub fn caused_by(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.cause = Some(error_chain(cause));
        self
    }

    /// Records a cause given as text, for the log.
    #[must_use]
    pub fn with_cause_text(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status
    }

    /// The problem document.
    pub fn body(&self, instance: &str) -> Value {
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title,
            "status": self.kind.status,
            "detail": self.detail,
            "instance": instance,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extensions.clone());
        }
        body
    }
}

/// An error that has one answer over HTTP: the application's domain errors implement it, once,
/// and every function that runs its commands answers them the same way.
///
/// ```
/// use eventfold::problem::{IntoProblem, Problem, ProblemType, kinds};
///
/// const OVERDRAWN: ProblemType = ProblemType::new(422, "overdrawn", "Insufficient funds");
///
/// #[derive(Debug, thiserror::Error)]
/// enum WalletError {
///     #[error("the balance is {balance}")]
///     Overdrawn { balance: i64 },
///     #[error("no such wallet")]
///     Missing,
/// }
///
/// impl IntoProblem for WalletError {
///     fn to_problem(&self) -> Problem {
///         match self {
///             Self::Overdrawn { balance } => {
///                 Problem::new(OVERDRAWN, self.to_string()).with("balance", *balance)
///             }
///             Self::Missing => Problem::new(kinds::NOT_FOUND, self.to_string()),
///         }
///     }
/// }
///
/// assert_eq!(WalletError::Missing.to_problem().status(), 404);
/// assert_eq!(WalletError::Overdrawn { balance: 3 }.to_problem().extensions["balance"], 3);
/// ```
pub trait IntoProblem {
    /// The problem to answer with.
    fn to_problem(&self) -> Problem;
}

impl IntoProblem for IdError {
    fn to_problem(&self) -> Problem {
        Problem::new(kinds::INVALID_REQUEST, self.to_string())
    }
}

impl IntoProblem for Denied {
    fn to_problem(&self) -> Problem {
        match self {
            Self::Unauthenticated => Problem::new(kinds::UNAUTHENTICATED, self.to_string()),
            Self::Hidden => Problem::new(kinds::NOT_FOUND, HIDDEN_DETAIL),
            Self::Forbidden(why) => Problem::new(kinds::FORBIDDEN, why.clone()),
        }
    }
}

/// The detail of every 404 a caller gets for what does not exist or what it may not see.
pub const HIDDEN_DETAIL: &str = "no such resource, or none you may see";

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Self {
        denied.to_problem()
    }
}

impl IntoProblem for StoreError {
    fn to_problem(&self) -> Problem {
        match self {
            Self::Conflict { .. } => Problem::new(kinds::CONCURRENCY_CONFLICT, self.to_string()),
            Self::IdempotencyMismatch { .. } => Problem::new(
                kinds::IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was already used for a different request",
            ),
            Self::TooLarge { .. } => Problem::new(kinds::PAYLOAD_TOO_LARGE, self.to_string()),
            Self::Unavailable(unavailable) if unavailable.outcome_unknown => Problem::new(
                kinds::OUTCOME_UNKNOWN,
                "the write may or may not have been applied; retry with the same Idempotency-Key",
            )
            .caused_by(self),
            Self::Unavailable(_) => Problem::new(
                kinds::STORE_UNAVAILABLE,
                "the event store is unavailable and nothing was written; retry after the \
                 indicated delay",
            )
            .caused_by(self),
            // Never leak internals: the cause goes to the log, not to the client.
            Self::Corrupt(_) => {
                Problem::new(kinds::INTERNAL, "stored data failed a check").caused_by(self)
            }
            Self::Misuse(_) | Self::Unreadable { .. } => {
                Problem::new(kinds::INTERNAL, "internal error").caused_by(self)
            }
        }
    }
}

impl<E: IntoProblem + std::error::Error + 'static> IntoProblem for CommandError<E> {
    fn to_problem(&self) -> Problem {
        match self {
            Self::Rejected(domain) => domain.to_problem(),
            Self::Denied(denied) => denied.to_problem(),
            Self::PreconditionFailed {
                expected, actual, ..
            } => Problem::new(kinds::PRECONDITION_FAILED, self.to_string())
                .with("expected_version", *expected)
                .with("current_version", *actual),
            Self::Conflict { .. } => Problem::new(kinds::CONCURRENCY_CONFLICT, self.to_string()),
            Self::ClaimTaken { .. } => Problem::new(kinds::CLAIM_TAKEN, self.to_string()),
            Self::DeadlineExceeded {
                outcome_unknown: true,
            } => Problem::new(
                kinds::OUTCOME_UNKNOWN,
                "the command ran out of time while writing; it may or may not have been \
                 applied: retry with the same Idempotency-Key",
            )
            .caused_by(self),
            Self::DeadlineExceeded { .. } => Problem::new(
                kinds::STORE_UNAVAILABLE,
                "the command ran out of time before writing; nothing was written",
            )
            .caused_by(self),
            Self::Store(store) => store.to_problem(),
        }
    }
}
