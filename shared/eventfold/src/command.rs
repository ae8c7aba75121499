//! The command service: the only place that loads, decides and appends.
//!
//! Load = the state this process loaded last time, or else the snapshot (if usable), + the
//! events after it; decide = the aggregate's pure function;
//! append = one conditional write continuing from the head that was read, with the command's
//! idempotency record in the same transaction. On a concurrency conflict it folds in the event
//! that was in its way (returned with the refusal) and decides again at once; refused again, it
//! backs off (jittered) and catches up with one read; for as long as its deadline allows,
//! unless the caller pinned a version (`If-Match`).
//!
//! The service returns what happened as data ([`Executed`]): the versions written and the
//! caller's receipt (the ids the command generated). A repeat of a command returns the first
//! execution's, read from the commands table, so whoever renders it answers identically.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::try_join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::aggregate::{Aggregate, fold, to_new_event};
use crate::chain::write_canonical_json;
use crate::envelope::{EventMetadata, NewEvent, RecordedEvent, StreamHead, now};
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::state_cache::{Cached, StateCache};
use crate::store::{
    AppendRequest, AppendResult, AsOf, CommandRecord, EventStore, ExpectedVersion, NewCommand,
    StreamWrite, WrittenStream,
};

/// How the service retries concurrency conflicts and transient store failures.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; the deadline usually ends retrying first.
    pub max_attempts: u32,
    /// The first backoff's cap.
    pub base_delay: Duration,
    /// The largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 100,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// "Full jitter" in units of the store's own round trip: a random delay up to a cap that
    /// doubles with each attempt, starting from the last append's duration (or `base_delay`,
    /// if that was shorter). Contenders then spread over about as many round trips as there
    /// are of them, whatever the store's latency, so few attempts are wasted and the stream's
    /// throughput stays up.
    fn delay(&self, attempt: u32, round_trip: Duration) -> Duration {
        let cap = round_trip
            .max(self.base_delay)
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// The fingerprint of a request: SHA-256 over its kind and the canonical JSON of its parsed
/// form. Formatting, key order and Rust field names do not change it; what the request means
/// does. The same command id with another fingerprint is refused.
pub fn request_fingerprint<T: Serialize>(kind: &str, request: &T) -> Result<String, StoreError> {
    let value = serde_json::to_value(request)
        .map_err(|e| StoreError::misuse(format!("a {kind} request does not serialize: {e}")))?;
    let mut canonical = String::new();
    write_canonical_json(&value, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// Who is asking, under which idempotency key, and by when the answer is due.
#[derive(Clone, Debug, Default)]
pub struct CommandContext {
    /// Makes the command idempotent: a repeat returns the first execution and writes nothing.
    pub command_id: Option<CommandId>,
    /// Fingerprint of the request behind the command id ([`request_fingerprint`]).
    pub request_hash: String,
    /// Correlation, causation and actor, copied onto every event written.
    pub metadata: EventMetadata,
    /// When the caller stops waiting (a Lambda's deadline less a margin): retries stop, and
    /// a store call still running is abandoned, in time to answer.
    pub deadline: Option<Instant>,
    /// The command id was generated for this very request, so no earlier execution can
    /// exist and the read that looks for one is skipped.
    pub fresh_id: bool,
}

impl CommandContext {
    /// A context for an idempotent command.
    pub fn new(command_id: CommandId, request_hash: impl Into<String>) -> Self {
        Self {
            command_id: Some(command_id),
            request_hash: request_hash.into(),
            ..Self::default()
        }
    }

    /// Sets the event metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// A stream loaded for a decision.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    /// The stream.
    pub stream_id: StreamId,
    /// The state folded from it.
    pub state: A,
    /// The version the state reflects (0: the stream does not exist).
    pub version: u64,
    head: Option<StreamHead>,
    /// The snapshot version the load started from, if one was used.
    pub snapshot_version: Option<u64>,
    /// Events read and folded on top of the snapshot (or from the start).
    pub events_folded: usize,
    /// When the last event the state reflects occurred.
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<A: Aggregate> Loaded<A> {
    fn empty(stream_id: StreamId) -> Self {
        Self {
            stream_id,
            state: A::default(),
            version: 0,
            head: None,
            snapshot_version: None,
            events_folded: 0,
            occurred_at: None,
        }
    }

    fn fold_in(&mut self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        if let Some(last) = events.last() {
            self.state = fold(std::mem::take(&mut self.state), events)?;
            self.version = last.version;
            self.head = Some(last.head());
            self.events_folded += events.len();
            self.occurred_at = Some(last.occurred_at);
        }
        Ok(())
    }
}

/// A stream the command acts on, optionally pinned to a version by the caller.
#[derive(Clone, Debug)]
pub struct Target {
    /// The stream.
    pub stream_id: StreamId,
    /// `If-Match`: fail with `PreconditionFailed` unless the stream is at this version.
    pub if_match: Option<u64>,
}

impl Target {
    /// A target the service may retry on.
    pub fn new(stream_id: StreamId) -> Self {
        Self {
            stream_id,
            if_match: None,
        }
    }

    /// A target pinned to a version (or not, for `None`).
    #[must_use]
    pub fn if_match(mut self, version: Option<u64>) -> Self {
        self.if_match = version;
        self
    }
}

/// A uniqueness claim: a stream that must not exist yet, created in the same transaction.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The claiming stream (e.g. one named after a hash of the unique value).
    pub stream_id: StreamId,
    /// Its first event.
    pub event: NewEvent,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed<R> {
    /// The receipt of the execution (for a replay: the first execution's).
    pub receipt: R,
    /// The versions written, per stream that got events, in target order, claims last.
    pub streams: Vec<WrittenStream>,
    /// True when this was a repeat of an earlier command and nothing was written.
    pub replayed: bool,
    /// How the execution went, for metrics.
    pub stats: ExecutionStats,
}

/// How an execution went: what metrics report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Appends tried, the successful one included (1 without a conflict).
    pub attempts: u32,
    /// How long the successful append took.
    pub append_latency: Duration,
    /// Events folded on top of the snapshots (or from the start) by the first load: how far
    /// behind the snapshots were.
    pub events_folded: usize,
}

impl<R> Executed<R> {
    /// The new version of a stream, if the command wrote to it.
    pub fn version_of(&self, stream_id: &StreamId) -> Option<u64> {
        self.streams
            .iter()
            .find(|s| &s.stream_id == stream_id)
            .map(|s| s.last_version)
    }
}

/// Why a command did not execute.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The domain refused the command.
    #[error(transparent)]
    Rejected(E),
    /// The caller's `If-Match` version is not the stream's.
    #[error("{stream_id} is at version {actual}, not {expected}")]
    PreconditionFailed {
        /// The pinned stream.
        stream_id: StreamId,
        /// The version the caller named.
        expected: u64,
        /// The stream's version.
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
    /// The store failed (or refused the append as too large).
    #[error(transparent)]
    Store(StoreError),
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
        match self {
            Self::DeadlineExceeded { outcome_unknown } => *outcome_unknown,
            Self::Store(store) => store.outcome_unknown(),
            _ => false,
        }
    }
}

impl<E: std::error::Error + 'static> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Loads, decides and appends.
#[derive(Clone, Debug)]
pub struct CommandService {
    store: Arc<dyn EventStore>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    retry: RetryPolicy,
    gates: Option<Arc<StreamGates>>,
    cache: Option<Arc<StateCache>>,
}

/// States kept per process by default: at a few hundred bytes each, well under a megabyte.
pub const DEFAULT_STATE_CACHE: usize = 1024;

/// How far behind a kept state may be and still be caught up from (else the snapshot is read).
const CACHE_CATCH_UP: usize = 1000;

/// One queue per stream for the commands of one process: a command waits for the one before
/// it on the same stream instead of racing it to a conflict. Writers in other processes still
/// meet at the conditional write.
#[derive(Debug, Default)]
struct StreamGates {
    gates: std::sync::Mutex<HashMap<StreamId, Weak<tokio::sync::Mutex<()>>>>,
}

impl StreamGates {
    /// The gates of `streams` (sorted, so multi-stream commands cannot deadlock).
    fn for_streams<'a>(
        &self,
        streams: impl Iterator<Item = &'a StreamId>,
    ) -> Vec<Arc<tokio::sync::Mutex<()>>> {
        let mut streams: Vec<&StreamId> = streams.collect();
        streams.sort_unstable();
        streams.dedup();
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if gates.len() > 4096 {
            gates.retain(|_, gate| gate.strong_count() > 0);
        }
        streams
            .into_iter()
            .map(|stream| {
                if let Some(gate) = gates.get(stream).and_then(Weak::upgrade) {
                    return gate;
                }
                let gate = Arc::new(tokio::sync::Mutex::new(()));
                gates.insert(stream.clone(), Arc::downgrade(&gate));
                gate
            })
            .collect()
    }
}

impl CommandService {
    /// A service over a store, without snapshots, queueing the commands of this process per
    /// stream, and keeping the last [`DEFAULT_STATE_CACHE`] states it loaded.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshots: None,
            retry: RetryPolicy::default(),
            gates: Some(Arc::default()),
            cache: Some(Arc::new(StateCache::new(DEFAULT_STATE_CACHE))),
        }
    }

    /// Keeps up to `capacity` loaded states (the least recently used go first), or none with 0.
    /// A command on a stream whose state is kept reads only the events since it.
    #[must_use]
    pub fn with_state_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(StateCache::new(capacity)));
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

    /// Loads an aggregate: the state this process kept from an earlier load, or else its
    /// snapshot if usable, then every event after it.
    pub async fn load<A: Aggregate>(&self, stream_id: &StreamId) -> Result<Loaded<A>, StoreError> {
        let loaded = match self.load_kept::<A>(stream_id).await? {
            Some(loaded) => loaded,
            None => self.load_stored::<A>(stream_id).await?,
        };
        self.keep(&loaded);
        Ok(loaded)
    }

    /// The kept state caught up, in one read from its own version (which proves the stream
    /// still continues from it); `None` if none is kept or it is too far behind.
    async fn load_kept<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Loaded<A>>, StoreError> {
        let Some(kept) = self.cache.as_ref().and_then(|c| c.get::<A>(stream_id)) else {
            return Ok(None);
        };
        let version = kept.head.version();
        let page = self
            .store
            .read_stream(stream_id, version, CACHE_CATCH_UP)
            .await?;
        let continues = page
            .events
            .first()
            .is_some_and(|e| e.version == version && e.chain == kept.head.chain());
        if !continues || page.next.is_some() {
            return Ok(None);
        }
        let mut loaded = Loaded::empty(stream_id.clone());
        loaded.state = kept.state;
        loaded.version = version;
        loaded.head = Some(kept.head);
        loaded.occurred_at = kept.occurred_at;
        loaded.fold_in(&page.events[1..])?;
        Ok(Some(loaded))
    }

    /// Keeps a loaded state for the next command on its stream.
    fn keep<A: Aggregate>(&self, loaded: &Loaded<A>) {
        if let (Some(cache), Some(head)) = (&self.cache, &loaded.head) {
            cache.put(
                &loaded.stream_id,
                Cached {
                    state: loaded.state.clone(),
                    head: head.clone(),
                    occurred_at: loaded.occurred_at,
                },
            );
        }
    }

    /// Loads an aggregate from the stores: its snapshot if usable, then every event after it.
    async fn load_stored<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        if let Some((state, version)) = self.usable_snapshot::<A>(stream_id).await? {
            // Read from the snapshot's own version: it proves the snapshot is not ahead of the
            // stream and gives the head's chain, in the same single query.
            let events = self.store.read_all(stream_id, version).await?;
            if events.first().is_some_and(|e| e.version == version) {
                let mut loaded = Loaded::empty(stream_id.clone());
                loaded.state = state;
                loaded.version = version;
                loaded.head = events.first().map(RecordedEvent::head);
                loaded.occurred_at = events.first().map(|e| e.occurred_at);
                loaded.snapshot_version = Some(version);
                loaded.fold_in(&events[1..])?;
                return Ok(loaded);
            }
            tracing::warn!(%stream_id, version, "snapshot is ahead of the stream; folding from the start");
        }
        let mut loaded = Loaded::empty(stream_id.clone());
        self.catch_up(&mut loaded).await?;
        Ok(loaded)
    }

    /// Folds the events after `loaded.version` into it: one read.
    async fn catch_up<A: Aggregate>(&self, loaded: &mut Loaded<A>) -> Result<(), StoreError> {
        let events = self
            .store
            .read_all(&loaded.stream_id, loaded.version + 1)
            .await?;
        loaded.fold_in(&events)
    }

    async fn usable_snapshot<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<(A, u64)>, StoreError> {
        let Some(snapshots) = &self.snapshots else {
            return Ok(None);
        };
        let snapshot = match snapshots.load_snapshot(stream_id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Ok(None),
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(%stream_id, %reason, "snapshot does not decode; folding from the start");
                return Ok(None);
            }
            Err(other) => return Err(other),
        };
        if snapshot.state_schema != A::STATE_SCHEMA {
            tracing::info!(%stream_id, found = snapshot.state_schema, current = A::STATE_SCHEMA,
                "snapshot has another state schema; folding from the start");
            return Ok(None);
        }
        match serde_json::from_value::<A>(snapshot.state) {
            Ok(state) if snapshot.version > 0 => Ok(Some((state, snapshot.version))),
            Ok(_) => Ok(None),
            Err(reason) => {
                tracing::warn!(%stream_id, %reason, "snapshot state does not decode; folding from the start");
                Ok(None)
            }
        }
    }

    /// The state as it was at a version or an instant (time travel); never uses snapshots.
    pub async fn load_as_of<A: Aggregate>(
        &self,
        stream_id: &StreamId,
        as_of: AsOf,
    ) -> Result<Loaded<A>, StoreError> {
        let events = self.store.read_as_of(stream_id, as_of).await?;
        let mut loaded = Loaded::empty(stream_id.clone());
        loaded.fold_in(&events)?;
        Ok(loaded)
    }

    /// Takes a snapshot of a stream's current state; returns it if it was newer than the
    /// stored one and so written.
    pub async fn snapshot<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let Some(snapshots) = &self.snapshots else {
            return Err(StoreError::misuse(
                "this command service has no snapshot store",
            ));
        };
        let loaded = self.load::<A>(stream_id).await?;
        if loaded.version == 0 || loaded.snapshot_version == Some(loaded.version) {
            return Ok(None);
        }
        let snapshot = Snapshot {
            stream_id: stream_id.clone(),
            version: loaded.version,
            state_schema: A::STATE_SCHEMA,
            state: serde_json::to_value(&loaded.state)
                .map_err(|e| StoreError::misuse(format!("state does not serialize: {e}")))?,
            taken_at: now(),
        };
        Ok(snapshots
            .save_snapshot(&snapshot)
            .await?
            .then_some(snapshot))
    }

    /// Runs one command on one stream through the aggregate's `decide`.
    pub async fn execute_one<A, R>(
        &self,
        context: &CommandContext,
        target: Target,
        command: &A::Command,
        receipt: R,
    ) -> Result<Executed<R>, CommandError<A::Error>>
    where
        A: Aggregate,
        R: Serialize + DeserializeOwned + Send + Sync,
    {
        self.execute::<A, R>(
            context,
            &[target],
            &[],
            |loaded| Ok(vec![loaded[0].state.decide(command)?]),
            receipt,
        )
        .await
    }

    /// Runs a decision over several streams of one aggregate type, appending every stream's
    /// events (and any uniqueness claims) in one transaction.
    ///
    /// `decide` sees the loaded streams in `targets` order and returns events per stream.
    /// `receipt` is stored with the command record and returned, so a repeat of the command
    /// reports what the first execution generated.
    pub async fn execute<A, R>(
        &self,
        context: &CommandContext,
        targets: &[Target],
        claims: &[Claim],
        decide: impl Fn(&[Loaded<A>]) -> Result<Vec<Vec<A::Event>>, A::Error> + Send + Sync,
        receipt: R,
    ) -> Result<Executed<R>, CommandError<A::Error>>
    where
        A: Aggregate,
        R: Serialize + DeserializeOwned + Send + Sync,
    {
        let receipt_value = serde_json::to_value(&receipt)
            .map_err(|e| StoreError::misuse(format!("the receipt does not serialize: {e}")))?;
        let gates = self.gates.as_ref().map_or_else(Vec::new, |gates| {
            gates.for_streams(targets.iter().map(|t| &t.stream_id))
        });
        let mut _held = Vec::with_capacity(gates.len());
        for gate in &gates {
            let guard = self
                .within::<_, A::Error>(context, false, async { Ok(gate.lock().await) })
                .await?;
            _held.push(guard);
        }
        // The idempotency check and the loads are independent: one round trip of latency, not
        // two (a replay wastes the load, and replays are rare).
        let loading = Instant::now();
        let (replayed, loaded) = self
            .within(context, false, async {
                Ok(futures::join!(
                    self.earlier_execution(context),
                    try_join_all(targets.iter().map(|t| self.load::<A>(&t.stream_id)))
                ))
            })
            .await?;
        if let Some(record) = replayed? {
            return replayed_from(record);
        }
        let mut loaded = loaded?;
        // An attempt is a read and a write: backoff is measured in attempts.
        let mut read_took = loading.elapsed();
        let events_folded = loaded.iter().map(|l| l.events_folded).sum();
        let mut attempt = 1;
        let mut stepped = false;
        loop {
            for (target, stream) in targets.iter().zip(&loaded) {
                if let Some(expected) = target.if_match.filter(|v| *v != stream.version) {
                    return Err(CommandError::PreconditionFailed {
                        stream_id: target.stream_id.clone(),
                        expected,
                        actual: stream.version,
                    });
                }
            }
            let decided = decide(&loaded).map_err(CommandError::Rejected)?;
            let request =
                self.append_request(context, &loaded, &decided, claims, &receipt_value)?;
            let sent = Instant::now();
            let appended = self
                .within(context, true, async {
                    Ok(self.store.append(request).await)
                })
                .await?;
            let round_trip = sent.elapsed();
            let retry_after_conflict = match appended {
                Ok(AppendResult::Written(outcome)) => {
                    return Ok(Executed {
                        receipt,
                        streams: outcome.streams,
                        replayed: false,
                        stats: ExecutionStats {
                            attempts: attempt,
                            append_latency: round_trip,
                            events_folded,
                        },
                    });
                }
                Ok(AppendResult::Replayed(record)) => return replayed_from(record),
                Err(StoreError::Conflict {
                    stream_id, next, ..
                }) => {
                    self.refuse_conflict(targets, claims, &stream_id, &loaded)?;
                    // The event in the way came with the refusal: fold it in and try again at
                    // once, without a read or a wait. A step either wins or learns the next
                    // event; a writer refused twice in a row backs off and reads, so one that
                    // is far behind catches up in one read.
                    if !stepped
                        && attempt < self.retry.max_attempts
                        && let Some(event) = next
                        && let Some(stream) = loaded.iter_mut().find(|l| l.stream_id == stream_id)
                        && event.version == stream.version + 1
                    {
                        stream.fold_in(std::slice::from_ref(&*event))?;
                        self.keep(stream);
                        stepped = true;
                        attempt += 1;
                        continue;
                    }
                    stepped = false;
                    stream_id
                }
                Err(error) if self.may_retry(context, &error) => {
                    tracing::warn!(attempt, error = %crate::error::error_chain(&error),
                        "append failed; retrying");
                    if attempt >= self.retry.max_attempts
                        || !self.backoff(context, attempt, read_took + round_trip).await
                    {
                        return self.settle(context, error).await;
                    }
                    attempt += 1;
                    continue;
                }
                Err(error) => return self.settle(context, error).await,
            };
            if attempt >= self.retry.max_attempts
                || !self.backoff(context, attempt, read_took + round_trip).await
            {
                return Err(CommandError::Conflict {
                    stream_id: retry_after_conflict,
                    attempts: attempt,
                });
            }
            attempt += 1;
            let reading = Instant::now();
            let caught_up = self
                .within(context, false, async {
                    for stream in &mut loaded {
                        self.catch_up(stream).await?;
                        self.keep(stream);
                    }
                    Ok(())
                })
                .await;
            caught_up?;
            read_took = reading.elapsed();
        }
    }

    /// Runs a store call within the context's deadline. Past it, a read is abandoned as
    /// `DeadlineExceeded`; so is a write, whose outcome is then unknown.
    async fn within<T, E: std::error::Error + 'static>(
        &self,
        context: &CommandContext,
        is_write: bool,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, CommandError<E>> {
        let outcome = match context.remaining() {
            None => call.await,
            Some(left) if left.is_zero() => {
                return Err(CommandError::DeadlineExceeded {
                    outcome_unknown: false,
                });
            }
            Some(left) => match tokio::time::timeout(left, call).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(CommandError::DeadlineExceeded {
                        outcome_unknown: is_write,
                    });
                }
            },
        };
        outcome.map_err(CommandError::Store)
    }

    /// A conflict the service must not retry: a claim taken, or a stream the caller pinned.
    fn refuse_conflict<A: Aggregate>(
        &self,
        targets: &[Target],
        claims: &[Claim],
        stream_id: &StreamId,
        loaded: &[Loaded<A>],
    ) -> Result<(), CommandError<A::Error>> {
        if claims.iter().any(|c| &c.stream_id == stream_id) {
            return Err(CommandError::ClaimTaken {
                stream_id: stream_id.clone(),
            });
        }
        let pinned = targets
            .iter()
            .zip(loaded)
            .find(|(t, _)| &t.stream_id == stream_id)
            .and_then(|(t, l)| t.if_match.map(|expected| (expected, l.version)));
        if let Some((expected, loaded_version)) = pinned {
            return Err(CommandError::PreconditionFailed {
                stream_id: stream_id.clone(),
                expected,
                // The stream moved past the version loaded (which was the pinned one).
                actual: loaded_version + 1,
            });
        }
        Ok(())
    }

    /// Transient failures are retried; a write whose outcome is unknown only under a command
    /// id, whose record makes the retry a replay if the first attempt landed.
    fn may_retry(&self, context: &CommandContext, error: &StoreError) -> bool {
        error.is_retryable() && (!error.outcome_unknown() || context.command_id.is_some())
    }

    /// Waits before the next attempt; false if the deadline leaves no room for it.
    async fn backoff(&self, context: &CommandContext, attempt: u32, round_trip: Duration) -> bool {
        let delay = self.retry.delay(attempt, round_trip);
        if context.remaining().is_some_and(|left| left <= delay) {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }

    /// A write that failed without an answer may have committed: under a command id, its
    /// record says, if the store answers in time. Returns the command's execution if it did.
    async fn committed_after_all<R, E>(
        &self,
        context: &CommandContext,
        error: &StoreError,
    ) -> Option<Result<Executed<R>, CommandError<E>>>
    where
        R: DeserializeOwned,
        E: std::error::Error + 'static,
    {
        let command_id = context
            .command_id
            .as_ref()
            .filter(|_| error.outcome_unknown())?;
        let lookup = self
            .within::<_, E>(context, false, self.store.read_command(command_id))
            .await;
        match lookup {
            Ok(Some(record)) if record.request_hash == context.request_hash => {
                tracing::info!(%command_id, "the write whose answer was lost had committed");
                Some(replayed_from(record).map(|executed| Executed {
                    replayed: false,
                    ..executed
                }))
            }
            _ => None,
        }
    }

    /// The error to report for a failed append, unless it turns out to have committed.
    async fn settle<R, E>(
        &self,
        context: &CommandContext,
        error: StoreError,
    ) -> Result<Executed<R>, CommandError<E>>
    where
        R: DeserializeOwned,
        E: std::error::Error + 'static,
    {
        match self.committed_after_all(context, &error).await {
            Some(executed) => executed,
            None => Err(error.into()),
        }
    }

    /// The first execution of this command id, if there was one: the single read that makes
    /// a repeat answer identically even if the decision would now go another way.
    async fn earlier_execution(
        &self,
        context: &CommandContext,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let Some(command_id) = context.command_id.as_ref().filter(|_| !context.fresh_id) else {
            return Ok(None);
        };
        match self.store.read_command(command_id).await? {
            Some(record) => Ok(Some(record.replay_for(&context.request_hash)?)),
            None => Ok(None),
        }
    }

    fn append_request<A: Aggregate>(
        &self,
        context: &CommandContext,
        loaded: &[Loaded<A>],
        decided: &[Vec<A::Event>],
        claims: &[Claim],
        receipt: &Value,
    ) -> Result<AppendRequest, StoreError> {
        if decided.len() != loaded.len() {
            return Err(StoreError::misuse(format!(
                "decision returned events for {} streams, expected {}",
                decided.len(),
                loaded.len()
            )));
        }
        let mut metadata = context.metadata.clone();
        metadata.command_id = context.command_id.as_ref().map(ToString::to_string);
        let mut request = AppendRequest::default();
        for (stream, events) in loaded.iter().zip(decided) {
            if events.is_empty() {
                continue;
            }
            let new_events = events
                .iter()
                .map(|e| to_new_event(e, &metadata))
                .collect::<Result<Vec<_>, _>>()?;
            request.writes.push(match &stream.head {
                Some(head) => StreamWrite::after(head.clone(), new_events),
                None => StreamWrite::new(
                    stream.stream_id.clone(),
                    ExpectedVersion::NoStream,
                    new_events,
                ),
            });
        }
        for claim in claims {
            let mut event = claim.event.clone();
            event.metadata = metadata.clone();
            request.writes.push(StreamWrite::new(
                claim.stream_id.clone(),
                ExpectedVersion::NoStream,
                vec![event],
            ));
        }
        request.command = context.command_id.as_ref().map(|command_id| NewCommand {
            command_id: command_id.clone(),
            request_hash: context.request_hash.clone(),
            receipt: Some(receipt.clone()),
        });
        Ok(request)
    }
}

fn replayed_from<R: DeserializeOwned, E: std::error::Error + 'static>(
    record: CommandRecord,
) -> Result<Executed<R>, CommandError<E>> {
    let receipt = serde_json::from_value(record.receipt.unwrap_or(Value::Null)).map_err(|e| {
        StoreError::corrupt(format!(
            "the receipt of command {} does not decode: {e}",
            record.command_id
        ))
    })?;
    Ok(Executed {
        receipt,
        streams: record.streams,
        replayed: true,
        stats: ExecutionStats::default(),
    })
}
