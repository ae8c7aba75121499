//! # Eventfold
//!
//! Event sourcing on AWS serverless. A building block for each kind of function an
//! event-sourced service on Lambda has, so that a new service writes domain code and little
//! else. Start with the [`prelude`] and the guide (`docs/guide.md`).
//!
//! The core builds without the AWS SDK, so a domain crate and its tests cannot reach AWS:
//! - [`aggregate`] and [`encoding`]: pure `decide`/`evolve` aggregates, and domain events
//!   (`#[derive(DomainEvent)]`) that are refused if they would not read back;
//! - [`command`]: the command service that loads, decides and appends, retrying conflicts
//!   within a deadline, with typed outcomes;
//! - [`store`]: the event store contract, with conditional appends, atomic multi-stream
//!   transactions, idempotent commands, paginated reads, upcasting ([`upcast`]) and an
//!   integrity chain ([`chain`]), in memory; snapshots;
//! - [`projection`]: the projector runtime for read models, rows per stream or shared by many;
//! - [`identity`]: the caller (a typed principal) and the refusals of access rules;
//! - [`keyed`]: keyed hashes, so ids derived from personal data cannot be reversed by guessing;
//! - [`personal`]: personal data sealed with its subject's key, forgotten by deleting the key;
//! - [`problem`]: problem+json with an open set of problem types;
//! - [`testing`] (feature `testing`): given/when/then, a fault-injecting store, and the
//!   conformance suites.
//!
//! Feature `aws` adds the backends: [`aws::DynamoStore`], DynamoDB snapshots and read models,
//! and typed configuration. Feature `lambda` adds the Lambda side: API Gateway requests and
//! answers ([`lambda::http`]), stream-record decoding, the publisher and the function shells.
//!
//! It names no domain: the reference bank service and the example order service are built
//! on it in crates of their own.

#![warn(missing_docs)]

// The derive names `::eventfold`; within this crate that is the crate itself.
extern crate self as eventfold;

pub mod aggregate;
pub mod chain;
pub mod command;
pub mod encoding;
pub mod envelope;
pub mod error;
pub mod feed;
pub mod identity;
pub mod ids;
mod kept;
pub mod keyed;
pub mod limits;
pub mod names;
pub mod personal;
pub mod problem;
pub mod projection;
pub mod reactor;
pub mod snapshot;
pub mod store;
pub mod stored;
pub mod upcast;
pub mod version;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "testing")]
pub mod testing;

/// The guide (`docs/guide.md`): from the dependency to a tested aggregate, a read model fed by
/// many streams, and a command function. Its examples are doctests.
#[cfg(all(any(doc, doctest), feature = "testing", feature = "lambda"))]
#[doc = include_str!("../../../docs/guide.md")]
pub mod guide {}

pub use aggregate::{Aggregate, DomainEvent};
/// `#[derive(DomainEvent)]`: the event type of each variant is the name serde writes for it.
pub use eventfold_derive::DomainEvent;

pub use envelope::{EventMetadata, NewEvent, RecordedEvent, StreamHead};
pub use error::{StoreError, error_chain};
pub use ids::{CommandId, EntityId, IdError, StreamId};

/// What an adopter uses first: aggregates and events, the command service, projections, the
/// memory stores, ids, problems.
pub mod prelude {
    pub use crate::command::{
        Claim, CommandContext, CommandError, CommandService, Executed, Outcome, Target,
    };
    pub use crate::encoding::{decode_known, from_recorded};
    pub use crate::envelope::RecordedEvent;
    pub use crate::error::StoreError;
    pub use crate::ids::{EntityId, StreamId};
    pub use crate::problem::{IntoProblem, Problem, ProblemType};
    pub use crate::projection::{CounterDelta, MemoryReadModel, Projection, Projector, Update};
    pub use crate::store::{EventStore, MemoryStore};
    pub use crate::{Aggregate, DomainEvent};
}
