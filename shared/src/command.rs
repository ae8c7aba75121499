//! The command service: the only place that loads, decides and appends.
//!
//! Load = snapshot (if usable) + the events after it; decide = the aggregate's pure function;
//! append = one conditional write continuing from the head that was read. On a concurrency
//! conflict it catches up with the events it missed and decides again, a bounded number of
//! times with jittered backoff, unless the caller pinned a version (`If-Match`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use serde_json::Value;

use crate::aggregate::{Aggregate, fold, to_new_event};
use crate::envelope::{EventMetadata, NewEvent, StreamHead, now};
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::{
    AppendRequest, AppendResult, AsOf, EventStore, ExpectedVersion, NewCommand, StreamWrite,
    WrittenStream,
};

/// Bounded, jittered retries on concurrency conflicts.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// "Full jitter": a random delay up to an exponentially growing cap.
    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// Who is asking, and under which idempotency key.
#[derive(Clone, Debug, Default)]
pub struct CommandContext {
    /// Makes the command idempotent: a repeat returns the first response and writes nothing.
    pub command_id: Option<CommandId>,
    /// Fingerprint of the request behind the command id.
    pub request_hash: String,
    /// Correlation, causation and actor, copied onto every event written.
    pub metadata: EventMetadata,
}

/// A stream loaded for a decision.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub stream_id: StreamId,
    pub state: A,
    /// The version the state reflects (0: the stream does not exist).
    pub version: u64,
    head: Option<StreamHead>,
    /// The snapshot version the load started from, if one was used.
    pub snapshot_version: Option<u64>,
    /// Events read and folded on top of the snapshot (or from the start).
    pub events_folded: usize,
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
        }
    }
}

/// A stream the command acts on, optionally pinned to a version by the caller.
#[derive(Clone, Debug)]
pub struct Target {
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
}

/// A uniqueness claim: a stream that must not exist yet, created in the same transaction.
#[derive(Clone, Debug)]
pub struct Claim {
    pub stream_id: StreamId,
    pub event: NewEvent,
}

/// What the command did.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// The response stored with the command (for a replay: the first execution's).
    pub response: Value,
    /// True when this was a repeat of an earlier command and nothing was written.
    pub replayed: bool,
    pub streams: Vec<WrittenStream>,
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
        stream_id: StreamId,
        expected: u64,
        actual: u64,
    },
    /// Still conflicting after every retry.
    #[error("{stream_id} kept changing; gave up after {attempts} attempts")]
    Conflict { stream_id: StreamId, attempts: u32 },
    /// A uniqueness claim is held by someone else.
    #[error("{stream_id} is already claimed")]
    ClaimTaken { stream_id: StreamId },
    /// The store failed (or refused the append as invalid or too large).
    #[error(transparent)]
    Store(StoreError),
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
}

impl CommandService {
    /// A service over a store, without snapshots.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshots: None,
            retry: RetryPolicy::default(),
        }
    }

    /// Uses snapshots to load long streams.
    #[must_use]
    pub fn with_snapshots(mut self, snapshots: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Sets the conflict retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Loads an aggregate: its snapshot if usable, then every event after it.
    pub async fn load<A: Aggregate>(&self, stream_id: &StreamId) -> Result<Loaded<A>, StoreError> {
        if let Some((state, version)) = self.usable_snapshot::<A>(stream_id).await? {
            // Read from the snapshot's own version: it proves the snapshot is not ahead of the
            // stream and gives the head's chain, in the same single query.
            let events = self.store.read_all(stream_id, version).await?;
            if events.first().is_some_and(|e| e.version == version) {
                let tail = &events[1..];
                let mut loaded = Loaded::empty(stream_id.clone());
                loaded.state = fold(state, tail)?;
                loaded.version = events.last().map_or(version, |e| e.version);
                loaded.head = events.last().map(crate::envelope::RecordedEvent::head);
                loaded.snapshot_version = Some(version);
                loaded.events_folded = tail.len();
                return Ok(loaded);
            }
            tracing::warn!(%stream_id, version, "snapshot is ahead of the stream; folding from the start");
        }
        let mut loaded = Loaded::empty(stream_id.clone());
        self.catch_up(&mut loaded).await?;
        Ok(loaded)
    }

    /// Folds the events after `loaded.version` into it.
    async fn catch_up<A: Aggregate>(&self, loaded: &mut Loaded<A>) -> Result<(), StoreError> {
        let events = self
            .store
            .read_all(&loaded.stream_id, loaded.version + 1)
            .await?;
        if let Some(last) = events.last() {
            loaded.state = fold(std::mem::take(&mut loaded.state), &events)?;
            loaded.version = last.version;
            loaded.head = Some(last.head());
            loaded.events_folded += events.len();
        }
        Ok(())
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
        loaded.state = fold(A::default(), &events)?;
        loaded.version = events.last().map_or(0, |e| e.version);
        loaded.head = events.last().map(crate::envelope::RecordedEvent::head);
        loaded.events_folded = events.len();
        Ok(loaded)
    }

    /// Takes a snapshot of a stream's current state; returns it if it was newer than the
    /// stored one and so written.
    pub async fn snapshot<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let Some(snapshots) = &self.snapshots else {
            return Err(StoreError::invalid(
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
                .map_err(|e| StoreError::invalid(format!("state does not serialize: {e}")))?,
            taken_at: now(),
        };
        Ok(snapshots
            .save_snapshot(&snapshot)
            .await?
            .then_some(snapshot))
    }

    /// Runs one command on one stream through the aggregate's `decide`.
    pub async fn execute_one<A: Aggregate>(
        &self,
        context: &CommandContext,
        target: Target,
        command: &A::Command,
        respond: impl Fn(&[WrittenStream]) -> Value + Send + Sync,
    ) -> Result<Executed, CommandError<A::Error>> {
        self.execute::<A>(
            context,
            &[target],
            &[],
            |loaded| Ok(vec![loaded[0].state.decide(command)?]),
            respond,
        )
        .await
    }

    /// Runs a decision over several streams of one aggregate type, appending every stream's
    /// events (and any uniqueness claims) in one transaction.
    ///
    /// `decide` sees the loaded streams in `targets` order and returns events per stream;
    /// `respond` builds the response stored with the command, from the versions about to be
    /// written, so a repeat of the command can answer identically.
    pub async fn execute<A: Aggregate>(
        &self,
        context: &CommandContext,
        targets: &[Target],
        claims: &[Claim],
        decide: impl Fn(&[Loaded<A>]) -> Result<Vec<Vec<A::Event>>, A::Error> + Send + Sync,
        respond: impl Fn(&[WrittenStream]) -> Value + Send + Sync,
    ) -> Result<Executed, CommandError<A::Error>> {
        // The idempotency check and the loads are independent: one round trip of latency, not
        // two (a replay wastes the load, and replays are rare).
        let (replayed, loaded) = futures::join!(
            self.replay(context),
            try_join_all(targets.iter().map(|t| self.load::<A>(&t.stream_id)))
        );
        if let Some(replayed) = replayed? {
            return Ok(replayed);
        }
        let mut loaded = loaded?;
        let mut attempt = 1;
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
            let (request, response) =
                self.append_request(context, &loaded, &decided, claims, &respond)?;
            let conflict = match self.store.append(request).await {
                Ok(AppendResult::Written(outcome)) => {
                    return Ok(Executed {
                        response,
                        replayed: false,
                        streams: outcome.streams,
                    });
                }
                Ok(AppendResult::Replayed(record)) => return Ok(replayed_from(record)),
                Err(StoreError::Conflict {
                    stream_id, actual, ..
                }) => (stream_id, actual),
                Err(other) => return Err(other.into()),
            };
            let (stream_id, actual) = conflict;
            if claims.iter().any(|c| c.stream_id == stream_id) {
                return Err(CommandError::ClaimTaken { stream_id });
            }
            if let Some(target) = targets.iter().find(|t| t.stream_id == stream_id) {
                if let Some(expected) = target.if_match {
                    return Err(CommandError::PreconditionFailed {
                        stream_id,
                        expected,
                        actual: actual.unwrap_or(0),
                    });
                }
            }
            if attempt >= self.retry.max_attempts {
                return Err(CommandError::Conflict {
                    stream_id,
                    attempts: attempt,
                });
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
            for stream in &mut loaded {
                self.catch_up(stream).await?;
            }
        }
    }

    /// A repeat of a command already executed: its stored response, or a mismatch.
    async fn replay<E: std::error::Error + 'static>(
        &self,
        context: &CommandContext,
    ) -> Result<Option<Executed>, CommandError<E>> {
        let Some(command_id) = &context.command_id else {
            return Ok(None);
        };
        match self.store.read_command(command_id).await? {
            Some(record) if record.request_hash == context.request_hash => {
                Ok(Some(replayed_from(record)))
            }
            Some(_) => Err(StoreError::IdempotencyMismatch {
                command_id: command_id.clone(),
            }
            .into()),
            None => Ok(None),
        }
    }

    fn append_request<A: Aggregate>(
        &self,
        context: &CommandContext,
        loaded: &[Loaded<A>],
        decided: &[Vec<A::Event>],
        claims: &[Claim],
        respond: &(impl Fn(&[WrittenStream]) -> Value + Send + Sync),
    ) -> Result<(AppendRequest, Value), StoreError> {
        if decided.len() != loaded.len() {
            return Err(StoreError::invalid(format!(
                "decision returned events for {} streams, expected {}",
                decided.len(),
                loaded.len()
            )));
        }
        let mut metadata = context.metadata.clone();
        metadata.command_id = context.command_id.as_ref().map(ToString::to_string);
        let mut request = AppendRequest::default();
        let mut streams = Vec::new();
        for (stream, events) in loaded.iter().zip(decided) {
            if events.is_empty() {
                continue;
            }
            let new_events = events
                .iter()
                .map(|e| to_new_event(e, &metadata))
                .collect::<Result<Vec<_>, _>>()?;
            streams.push(WrittenStream {
                stream_id: stream.stream_id.clone(),
                first_version: stream.version + 1,
                last_version: stream.version + new_events.len() as u64,
            });
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
        let response = respond(&streams);
        request.command = context.command_id.as_ref().map(|command_id| NewCommand {
            command_id: command_id.clone(),
            request_hash: context.request_hash.clone(),
            response: Some(response.clone()),
        });
        Ok((request, response))
    }
}

fn replayed_from(record: crate::store::CommandRecord) -> Executed {
    Executed {
        response: record.response.unwrap_or(Value::Null),
        replayed: true,
        streams: record.streams,
    }
}
