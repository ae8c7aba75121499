//! # Eventfold
//!
//! Event sourcing on AWS serverless. A building block for each kind of function an
//! event-sourced service on Lambda has, so that a new service writes domain code and little
//! else:
//!
//! - [`store`]: an event store on DynamoDB (and in memory) with conditional appends, atomic
//!   multi-stream transactions, idempotent commands, paginated reads, upcasting ([`upcast`])
//!   and an integrity chain ([`chain`]);
//! - [`aggregate`] and [`command`]: pure `decide`/`evolve` aggregates, and the command
//!   service that loads, decides and appends, retrying conflicts within a deadline;
//! - [`http`]: API Gateway requests parsed strictly, problem+json with an open set of problem
//!   types, `Idempotency-Key`, `If-Match`/`ETag`, correlation ids;
//! - [`projection`]: the projector runtime for read models fed by DynamoDB Streams, generic
//!   over a projection, with DynamoDB and memory read-model stores;
//! - [`publish`] and [`snapshot`]: the publisher to SQS, and snapshots by aggregate category;
//! - [`testing`] (feature `testing`): given/when/then and conformance suites.
//!
//! It names no domain: the reference bank service and the example order service are built
//! on it in crates of their own.

#![warn(missing_docs)]

pub mod aggregate;
pub mod aws;
pub mod chain;
pub mod codec;
pub mod command;
pub mod config;
pub mod envelope;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod names;
pub mod projection;
pub mod publish;
pub mod snapshot;
mod state_cache;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upcast;

pub use chain::Verification;
pub use envelope::{EventMetadata, NewEvent, RecordedEvent, StreamHead};
pub use error::{StoreError, error_chain};
pub use ids::{CommandId, EntityId, IdError, StreamId};
pub use store::{
    AppendRequest, AppendResult, AsOf, DynamoStore, EventStore, ExpectedVersion, MemoryStore,
    ReadPage, StoreSettings, StreamWrite,
};
pub use upcast::Upcasters;
