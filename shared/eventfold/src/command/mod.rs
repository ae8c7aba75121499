//! The command service: the only place that loads, decides and appends.
//!
//! Load = the state this process kept last time, with no read at all, or else the snapshot (if
//! usable) and the stream's tail, read at once; decide = the aggregate's pure function;
//! append = one conditional write continuing from the head the state is at, with the command's
//! idempotency record in the same transaction, whose own condition says whether the command ran
//! before. The write proves a kept state current; on a concurrency conflict it folds in the
//! event that was in its way (returned with the refusal) and decides again at once; refused
//! again, it backs off (jittered) and catches up with one read; for as long as its deadline
//! allows. A refusal (the domain's, or an `If-Match` a newer state could meet) or an empty
//! decision made on a state that was not read for this command is made again on a fresh read.
//! A stream the caller pinned (`If-Match`) is never retried past: its precondition fails.
//!
//! The service returns what happened as data ([`Executed`], or a [`CommandError`] that knows
//! its [`Outcome`]): the versions written, the caller's receipt (the ids the command
//! generated) and how the execution went. A repeat of a command returns the first execution's,
//! from the commands table (returned by the refused write, or read when the command writes
//! nothing), so whoever renders it answers identically.
//!
//! # Who retries what
//!
//! Each kind of retry has one owner, so they never multiply unseen:
//! - **transient failures** (throttling, 5xx, timeouts, lost connections) are the AWS SDK's:
//!   its standard mode, 3 attempts per request (`aws::load_sdk_config`). A lost answer to a
//!   write is safe to retry: a transaction carries a client request token, and a lone
//!   `PutItem` that finds its own item already there is recognised as committed;
//! - **concurrency conflicts** are this service's: at most [`RetryPolicy::max_attempts`]
//!   attempts (100), each a write and at most one read, and never past the deadline;
//! - **a lost answer that outlived the SDK's retries** is settled here once: the command record
//!   says whether the write committed.
//!
//! The worst case per command is therefore 100 attempts × 2 requests × 3 SDK tries, and in
//! practice the deadline (the function's timeout less a margin) ends it first. The store's own
//! loop for `ExpectedVersion::Any` never runs under this service, which always appends after a
//! head it read.

mod context;
mod error;
mod execute;
mod gates;
mod load;
mod outcome;
mod retry;

use std::sync::Arc;

pub use context::{Claim, CommandContext, Target, request_fingerprint};
pub use error::{CommandError, Outcome};
pub use load::{HISTORY_TO_FOLD, Loaded, SNAPSHOT_REFUSED};
pub use outcome::{Executed, ExecutionStats};
pub use retry::RetryPolicy;

use crate::kept::KeptStates;
use crate::keyed::KeyedHash;
use crate::personal::SubjectKeys;
use crate::store::{EventStore, SnapshotStore};

/// States kept per process by default: at a few hundred bytes each, well under a megabyte.
pub const DEFAULT_KEPT_STATES: usize = 1024;

/// Loads, decides and appends.
///
/// ```
/// use std::sync::Arc;
/// use eventfold::prelude::*;
///
/// let service = CommandService::new(Arc::new(MemoryStore::new()))
///     .with_snapshots(Arc::new(eventfold::store::MemorySnapshots::new()))
///     .keep_states(256);
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct CommandService {
    store: Arc<dyn EventStore>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    retry: RetryPolicy,
    gates: Option<Arc<gates::StreamGates>>,
    kept: Option<Arc<KeptStates>>,
    subject_keys: Option<Arc<dyn SubjectKeys>>,
    snapshot_key: Option<Arc<dyn KeyedHash>>,
}

impl CommandService {
    /// A service over a store, without snapshots, queueing the commands of this process per
    /// stream, and keeping the last [`DEFAULT_KEPT_STATES`] states it loaded.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshots: None,
            retry: RetryPolicy::default(),
            gates: Some(Arc::default()),
            kept: Some(Arc::new(KeptStates::new(DEFAULT_KEPT_STATES))),
            subject_keys: None,
            snapshot_key: None,
        }
    }

    /// Keeps up to `capacity` loaded states (the least recently used go first), or none with 0.
    /// A command on a stream whose state is kept decides on it and writes without a read.
    #[must_use]
    pub fn keep_states(mut self, capacity: usize) -> Self {
        self.kept = (capacity > 0).then(|| Arc::new(KeptStates::new(capacity)));
        self
    }

    /// Lets this process's commands on one stream race each other to the conditional write
    /// (as separate processes do) instead of queueing; for measurements.
    #[must_use]
    pub fn without_stream_queues(mut self) -> Self {
        self.gates = None;
        self
    }

    /// Uses snapshots to load long streams.
    #[must_use]
    pub fn with_snapshots(mut self, snapshots: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Seals the personal values of the events it writes with their subjects' keys (see
    /// [`crate::personal`]); without keys, a command that would write personal data is refused.
    #[must_use]
    pub fn with_subject_keys(mut self, keys: Arc<dyn SubjectKeys>) -> Self {
        self.subject_keys = Some(keys);
        self
    }

    /// Signs the snapshots it takes, and uses only snapshots that verify, with `key`: a MAC
    /// over the state bound to the chain value at the snapshot's version. A snapshot without
    /// one, or whose state was changed, is refused: the stream is folded from its events and
    /// the refusal is counted ([`Loaded::snapshot_refused`]).
    #[must_use]
    pub fn with_snapshot_key(mut self, key: Arc<dyn KeyedHash>) -> Self {
        self.snapshot_key = Some(key);
        self
    }

    /// The key snapshots are signed with, if any.
    pub fn snapshot_key(&self) -> Option<&Arc<dyn KeyedHash>> {
        self.snapshot_key.as_ref()
    }

    /// The keys personal data is sealed with, if any.
    pub fn subject_keys(&self) -> Option<&Arc<dyn SubjectKeys>> {
        self.subject_keys.as_ref()
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The snapshot store, if any.
    pub fn snapshots(&self) -> Option<&Arc<dyn SnapshotStore>> {
        self.snapshots.as_ref()
    }
}
