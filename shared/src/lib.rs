//! # Eventfold
//!
//! Event sourcing on AWS serverless: a DynamoDB event store with conditional appends,
//! idempotent commands, paginated reads, upcasting and an integrity chain; a command service
//! that loads, decides and appends with bounded retries; projections and snapshots fed by
//! DynamoDB Streams. The reference domain (bank accounts and users) lives in [`domain`].

pub mod aggregate;
pub mod aws;
pub mod chain;
pub mod codec;
pub mod command;
pub mod config;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod http;
pub mod ids;
pub mod names;
pub mod projection;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod upcast;

pub use chain::Verification;
pub use envelope::{EventMetadata, NewEvent, RecordedEvent, StreamHead};
pub use error::StoreError;
pub use ids::{CommandId, StreamId};
pub use store::{
    AppendRequest, AppendResult, AsOf, DynamoStore, EventStore, ExpectedVersion, MemoryStore,
    ReadPage, StoreSettings, StreamWrite,
};
pub use upcast::Upcasters;
