//! Why a command did not execute, and what every command came to.

use crate::error::StoreError;
use crate::identity::Denied;
use crate::ids::StreamId;

/// Why a command did not execute.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The domain refused the command.
    #[error(transparent)]
    Rejected(E),
    /// The caller may not: an access rule refused it on the loaded state, before `decide`.
    #[error(transparent)]
    Denied(Denied),
    /// The caller's `If-Match` version is not the stream's.
    #[error("{stream_id} is at version {actual}, not {expected}")]
    PreconditionFailed {
        /// The pinned stream.
        stream_id: StreamId,
        /// The version the caller named.
        expected: u64,
        /// The stream's version (at least).
        actual: u64,
    },
    /// Still conflicting when retries or time ran out.
    #[error("{stream_id} kept changing; gave up after {attempts} attempts")]
    Conflict {
        /// The contended stream.
        stream_id: StreamId,
        /// Attempts made.
        attempts: u32,
    },
    /// A uniqueness claim is held by someone else.
    #[error("{stream_id} is already claimed")]
    ClaimTaken {
        /// The claiming stream that exists.
        stream_id: StreamId,
    },
    /// The deadline passed before the command finished.
    #[error("the command ran out of time{}", if *.outcome_unknown { "; its write may have been applied" } else { "" })]
    DeadlineExceeded {
        /// Whether an append was under way: it may have been applied.
        outcome_unknown: bool,
    },
    /// The store failed (or refused the append as too large, or the events as unreadable).
    #[error(transparent)]
    Store(StoreError),
}

/// What a command came to, in the words metrics and logs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its events were written.
    Written,
    /// A repeat of an earlier command: its first execution was answered again.
    Replayed,
    /// The domain refused it (or a uniqueness claim was taken).
    Rejected,
    /// The caller may not do it (an access rule refused).
    Denied,
    /// Other writers kept winning until retries or time ran out.
    Conflict,
    /// The caller's `If-Match` was not the stream's version.
    PreconditionFailed,
    /// It may or may not have been written.
    OutcomeUnknown,
    /// A dependency was unavailable; nothing was written.
    Unavailable,
    /// Refused before it ran: a malformed request, a reused key, a payload over a limit.
    Invalid,
    /// A bug: stored data that does not decode, a misuse of the store.
    Internal,
}

impl Outcome {
    /// The name metrics carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Replayed => "replayed",
            Self::Rejected => "rejected",
            Self::Denied => "denied",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition-failed",
            Self::OutcomeUnknown => "outcome-unknown",
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
            Self::Internal => "internal",
        }
    }
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// The same error with the domain's refusal mapped (e.g. into an application's error
    /// covering several aggregates).
    pub fn map_rejected<F: std::error::Error + 'static>(
        self,
        map: impl FnOnce(E) -> F,
    ) -> CommandError<F> {
        match self {
            Self::Rejected(domain) => CommandError::Rejected(map(domain)),
            Self::Denied(denied) => CommandError::Denied(denied),
            Self::PreconditionFailed {
                stream_id,
                expected,
                actual,
            } => CommandError::PreconditionFailed {
                stream_id,
                expected,
                actual,
            },
            Self::Conflict {
                stream_id,
                attempts,
            } => CommandError::Conflict {
                stream_id,
                attempts,
            },
            Self::ClaimTaken { stream_id } => CommandError::ClaimTaken { stream_id },
            Self::DeadlineExceeded { outcome_unknown } => {
                CommandError::DeadlineExceeded { outcome_unknown }
            }
            Self::Store(store) => CommandError::Store(store),
        }
    }

    /// Whether the command may have been applied although it reported failure.
    pub fn outcome_unknown(&self) -> bool {
        self.outcome() == Outcome::OutcomeUnknown
    }

    /// What the command came to.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Rejected(_) | Self::ClaimTaken { .. } => Outcome::Rejected,
            Self::Denied(_) => Outcome::Denied,
            Self::PreconditionFailed { .. } => Outcome::PreconditionFailed,
            Self::Conflict { .. } => Outcome::Conflict,
            Self::DeadlineExceeded {
                outcome_unknown: true,
            } => Outcome::OutcomeUnknown,
            Self::DeadlineExceeded { .. } => Outcome::Unavailable,
            Self::Store(store) => match store {
                StoreError::Unavailable(u) if u.outcome_unknown => Outcome::OutcomeUnknown,
                StoreError::Unavailable(_) => Outcome::Unavailable,
                StoreError::Conflict { .. } => Outcome::Conflict,
                StoreError::IdempotencyMismatch { .. } | StoreError::TooLarge { .. } => {
                    Outcome::Invalid
                }
                StoreError::Misuse(_) | StoreError::Corrupt(_) | StoreError::Unreadable { .. } => {
                    Outcome::Internal
                }
            },
        }
    }
}

impl<E: std::error::Error + 'static> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}
