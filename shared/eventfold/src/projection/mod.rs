//! Read models: the projector runtime, generic over a [`Projection`].
//!
//! A projection says which row each event goes to and what it does there; the
//! runtime ([`Projector`]) gives it exactly-once effect on an at-least-once stream, with rows
//! that follow one stream or rows shared by many ([`Rows`]); batches of events go through it a
//! stream at a time ([`project_batch`]). Rows live in a [`ReadModelStore`]:
//! [`MemoryReadModel`] in process, or (feature `aws`) `DynamoReadModel` on a table; both pass
//! one conformance suite (`testing::read_model_suite`).

mod batch;
mod contract;
mod memory;
mod runtime;
mod store;

pub use batch::{BatchReport, StreamFailure, project_batch, project_in_order, project_streams};
pub use contract::{CounterDelta, Projection, Rows, Update};
pub use memory::MemoryReadModel;
pub use runtime::{Projected, Projector, SAVE_ATTEMPTS, StreamOutcome, StreamProjector};
pub use store::{
    CHECKPOINT_PREFIX, COUNTER_PREFIX, Checkpoint, CheckpointWrite, Commit, MergedCounters,
    ReadModelStore, RowWrite, Saved, StoredRow, check_commit, checkpoint_key,
};
