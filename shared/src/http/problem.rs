//! RFC 9457 problem details: one kind per failure, one status and type URI per kind, and the
//! single mapping from library errors to them.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::{Map, Value, json};

use crate::domain::account::AccountError;
use crate::domain::user::UserError;
use crate::error::StoreError;
use crate::service::ServiceError;

/// Every kind of failure the API reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    MalformedJson,
    InvalidRequest,
    NotFound,
    RouteNotFound,
    ConcurrencyConflict,
    PreconditionFailed,
    PayloadTooLarge,
    InsufficientFunds,
    CurrencyMismatch,
    AccountClosed,
    BalanceNotZero,
    SameAccount,
    BalanceOverflow,
    AlreadyExists,
    EmailTaken,
    IdempotencyKeyReused,
    StoreUnavailable,
    Internal,
}

impl ProblemKind {
    /// Every kind, for documentation and tests.
    pub const ALL: [Self; 18] = [
        Self::MalformedJson,
        Self::InvalidRequest,
        Self::NotFound,
        Self::RouteNotFound,
        Self::ConcurrencyConflict,
        Self::PreconditionFailed,
        Self::PayloadTooLarge,
        Self::InsufficientFunds,
        Self::CurrencyMismatch,
        Self::AccountClosed,
        Self::BalanceNotZero,
        Self::SameAccount,
        Self::BalanceOverflow,
        Self::AlreadyExists,
        Self::EmailTaken,
        Self::IdempotencyKeyReused,
        Self::StoreUnavailable,
        Self::Internal,
    ];

    /// (status, slug of the type URI, title).
    pub fn describe(self) -> (u16, &'static str, &'static str) {
        match self {
            Self::MalformedJson => (400, "malformed-json", "Malformed JSON"),
            Self::InvalidRequest => (400, "invalid-request", "Invalid request"),
            Self::NotFound => (404, "not-found", "Not found"),
            Self::RouteNotFound => (404, "route-not-found", "No such route"),
            Self::ConcurrencyConflict => (409, "concurrency-conflict", "Concurrent modification"),
            Self::PreconditionFailed => (412, "precondition-failed", "Version mismatch"),
            Self::PayloadTooLarge => (413, "payload-too-large", "Payload too large"),
            Self::InsufficientFunds => (422, "insufficient-funds", "Insufficient funds"),
            Self::CurrencyMismatch => (422, "currency-mismatch", "Currency mismatch"),
            Self::AccountClosed => (422, "account-closed", "Account closed"),
            Self::BalanceNotZero => (422, "balance-not-zero", "Balance not zero"),
            Self::SameAccount => (422, "same-account", "Transfer to the same account"),
            Self::BalanceOverflow => (422, "balance-overflow", "Balance overflow"),
            Self::AlreadyExists => (409, "already-exists", "Already exists"),
            Self::EmailTaken => (422, "email-taken", "Email already registered"),
            Self::IdempotencyKeyReused => (422, "idempotency-key-reused", "Idempotency key reused"),
            Self::StoreUnavailable => (503, "store-unavailable", "Service unavailable"),
            Self::Internal => (500, "internal", "Internal error"),
        }
    }

    /// The stable `type` URI.
    pub fn type_uri(self) -> String {
        format!("https://eventfold.dev/problems/{}", self.describe().1)
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        self.describe().0
    }
}

/// A problem to report.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    /// Extension members (e.g. `balance`, `requested`).
    pub extensions: Map<String, Value>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem of a kind with a human-readable detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let retry_after = matches!(
            kind,
            ProblemKind::ConcurrencyConflict | ProblemKind::StoreUnavailable
        )
        .then_some(1);
        Self {
            kind,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after,
        }
    }

    /// Adds an extension member.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// The `application/problem+json` response; `instance` is the request path.
    pub fn into_response(self, instance: &str) -> ApiGatewayV2httpResponse {
        let (status, _, title) = self.kind.describe();
        let mut body = json!({
            "type": self.kind.type_uri(),
            "title": title,
            "status": status,
            "detail": self.detail,
            "instance": instance,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extensions);
        }
        let mut response = super::json_response(status, &body);
        super::set_header(&mut response, "content-type", "application/problem+json");
        if let Some(seconds) = self.retry_after {
            super::set_header(&mut response, "retry-after", &seconds.to_string());
        }
        response
    }
}

impl From<&AccountError> for Problem {
    fn from(error: &AccountError) -> Self {
        use AccountError as E;
        let detail = error.to_string();
        match error {
            E::NotFound => Self::new(ProblemKind::NotFound, detail),
            E::AlreadyOpen => Self::new(ProblemKind::AlreadyExists, detail),
            E::Closed => Self::new(ProblemKind::AccountClosed, detail),
            E::InsufficientFunds { balance, requested } => {
                Self::new(ProblemKind::InsufficientFunds, detail)
                    .with("balance", *balance)
                    .with("requested", *requested)
            }
            E::CurrencyMismatch { account, requested } => {
                Self::new(ProblemKind::CurrencyMismatch, detail)
                    .with("account_currency", account.to_string())
                    .with("requested_currency", requested.to_string())
            }
            E::BalanceNotZero { balance } => {
                Self::new(ProblemKind::BalanceNotZero, detail).with("balance", *balance)
            }
            E::InvalidAmount { .. } | E::InvalidOwner => {
                Self::new(ProblemKind::InvalidRequest, detail)
            }
            E::SameAccount => Self::new(ProblemKind::SameAccount, detail),
            E::BalanceOverflow => Self::new(ProblemKind::BalanceOverflow, detail),
        }
    }
}

impl From<&UserError> for Problem {
    fn from(error: &UserError) -> Self {
        let detail = error.to_string();
        match error {
            UserError::AlreadyRegistered => Self::new(ProblemKind::AlreadyExists, detail),
            UserError::InvalidEmail | UserError::InvalidName => {
                Self::new(ProblemKind::InvalidRequest, detail)
            }
            UserError::EmailTaken => Self::new(ProblemKind::EmailTaken, detail),
        }
    }
}

impl From<&StoreError> for Problem {
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => {
                Self::new(ProblemKind::ConcurrencyConflict, error.to_string())
            }
            StoreError::IdempotencyMismatch { .. } => Self::new(
                ProblemKind::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            ),
            StoreError::TooLarge { .. } => {
                Self::new(ProblemKind::PayloadTooLarge, error.to_string())
            }
            StoreError::InvalidInput(detail) => {
                Self::new(ProblemKind::InvalidRequest, detail.clone())
            }
            StoreError::Unavailable { .. } => Self::new(
                ProblemKind::StoreUnavailable,
                "the event store is unavailable; retry after the indicated delay",
            ),
            // Never leak internals: the detail is logged by the handler, not returned.
            StoreError::Corrupt(_) => Self::new(
                ProblemKind::Internal,
                "stored data failed an integrity check",
            ),
        }
    }
}

impl From<&ServiceError> for Problem {
    fn from(error: &ServiceError) -> Self {
        match error {
            ServiceError::Account(e) => e.into(),
            ServiceError::User(e) => e.into(),
            ServiceError::PreconditionFailed {
                expected, actual, ..
            } => Self::new(ProblemKind::PreconditionFailed, error.to_string())
                .with("expected_version", *expected)
                .with("current_version", *actual),
            ServiceError::Conflict { .. } => {
                Self::new(ProblemKind::ConcurrencyConflict, error.to_string())
            }
            ServiceError::Store(e) => e.into(),
        }
    }
}
