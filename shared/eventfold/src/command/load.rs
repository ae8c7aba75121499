//! Loading a stream for a decision: the state this process kept, or else the snapshot (if
//! usable) and the events after it.
//!
//! A kept state is decided on without a read: the conditional write of the next version is the
//! proof that it was the head (events are never updated or deleted, so a kept prefix cannot go
//! stale in any other way). A cold load reads the snapshot and the stream's tail at once, so
//! that one round trip of latency comes before the write whenever the snapshot lies within the
//! tail.

use chrono::{DateTime, Utc};

use super::CommandService;
use crate::aggregate::Aggregate;
use crate::encoding::fold;
use crate::envelope::{RecordedEvent, StreamHead};
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::kept::Kept;
use crate::store::{AsOf, RawRead, ReadRange, Snapshot, snapshot_mac_input};

/// How far behind a kept state may be and still be caught up from (else the snapshot is read).
const KEPT_CATCH_UP: usize = 1000;

/// The longest tail a cold load reads beside the snapshot.
const MAX_COLD_TAIL: u64 = 1000;

/// What a load's warning begins with when it refuses a snapshot: one that does not verify
/// against its MAC, or one ahead of its stream (events are never deleted, so no genuine
/// snapshot is). A deployment counts these lines (a metric filter on the function's log
/// group) and alarms on any.
pub const SNAPSHOT_REFUSED: &str = "snapshot refused";

/// What [`CommandService::load_as_of_within`] calls the events it would fold past its bound.
pub const HISTORY_TO_FOLD: &str = "history to fold";

fn as_of_version(as_of: AsOf) -> Option<u64> {
    match as_of {
        AsOf::Version(version) => Some(version),
        AsOf::Time(_) => None,
    }
}

fn as_of_time(as_of: AsOf) -> Option<DateTime<Utc>> {
    match as_of {
        AsOf::Time(at) => Some(at),
        AsOf::Version(_) => None,
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
    pub(crate) head: Option<StreamHead>,
    /// The snapshot version the load started from, if one was used.
    pub snapshot_version: Option<u64>,
    /// Events read and folded on top of the snapshot (or from the start).
    pub events_folded: usize,
    /// When the last event the state reflects occurred.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Whether the state was read from the store for this command (else it was kept, or
    /// stepped over one refused write, and the next write is what proves it current).
    pub current: bool,
    /// Whether a snapshot was found that did not verify against its MAC, and so was not used.
    pub snapshot_refused: bool,
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
            current: true,
            snapshot_refused: false,
        }
    }

    /// A state at `head`, as kept or snapshotted.
    fn at(state: A, head: StreamHead, occurred_at: Option<DateTime<Utc>>) -> Self {
        Self {
            stream_id: head.stream_id().clone(),
            state,
            version: head.version(),
            head: Some(head),
            snapshot_version: None,
            events_folded: 0,
            occurred_at,
            current: false,
            snapshot_refused: false,
        }
    }

    /// Folds events that continue the stream from `version`.
    pub(crate) fn fold_in(&mut self, events: &[RecordedEvent]) -> Result<(), StoreError> {
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

impl CommandService {
    /// Loads an aggregate as the store has it now: the state this process kept, caught up in
    /// one read from its own version, or else its snapshot if usable and the events after it.
    pub async fn load<A: Aggregate>(&self, stream_id: &StreamId) -> Result<Loaded<A>, StoreError> {
        let loaded = match self.load_kept::<A>(stream_id).await? {
            Some(loaded) => loaded,
            None => self.load_stored::<A>(stream_id).await?,
        };
        self.keep(&loaded);
        Ok(loaded)
    }

    /// Loads an aggregate for a decision: the state kept, with no read at all (the write will
    /// prove it, or bring back the event that beat it), or else as [`Self::load`].
    pub(crate) async fn load_for_decision<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        if let Some(kept) = self.kept.as_ref().and_then(|k| k.get::<A>(stream_id)) {
            return Ok(Loaded::at(kept.state, kept.head, kept.occurred_at));
        }
        let loaded = self.load_stored::<A>(stream_id).await?;
        self.keep(&loaded);
        Ok(loaded)
    }

    /// Makes a state that was not read for this command current: one read.
    pub(crate) async fn make_current<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
    ) -> Result<(), StoreError> {
        if !loaded.current {
            *loaded = self.load::<A>(&loaded.stream_id).await?;
        }
        Ok(())
    }

    /// The kept state caught up, in one read from its own version (which proves the stream
    /// still continues from it); `None` if none is kept or it is too far behind.
    async fn load_kept<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Loaded<A>>, StoreError> {
        let Some(kept) = self.kept.as_ref().and_then(|k| k.get::<A>(stream_id)) else {
            return Ok(None);
        };
        let version = kept.head.version();
        let page = self
            .store
            .read_stream(stream_id, version, KEPT_CATCH_UP)
            .await?;
        let Some(first) = page.events.first() else {
            return Ok(None);
        };
        if first.version != version || first.chain != kept.head.chain() || page.next.is_some() {
            return Ok(None);
        }
        let mut loaded = Loaded::at(kept.state, kept.head, kept.occurred_at);
        loaded.fold_in(&page.events[1..])?;
        loaded.current = true;
        Ok(Some(loaded))
    }

    /// Keeps a loaded state for the next command on its stream.
    pub(crate) fn keep<A: Aggregate>(&self, loaded: &Loaded<A>) {
        if let (Some(kept), Some(head)) = (&self.kept, &loaded.head) {
            kept.put(
                &loaded.stream_id,
                Kept {
                    state: loaded.state.clone(),
                    head: head.clone(),
                    occurred_at: loaded.occurred_at,
                },
            );
        }
    }

    /// Loads an aggregate from the stores. With snapshots, the snapshot and the stream's tail
    /// (one snapshot interval of its newest events) are read at once; a snapshot within the
    /// tail is folded on from there, one further than the tail is caught up to it by one more
    /// read, and one ahead of the stream is ignored.
    async fn load_stored<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        let tail = self
            .store
            .settings()
            .snapshot_policy
            .every(stream_id.category())
            .min(MAX_COLD_TAIL);
        if self.snapshots.is_none() || tail == 0 {
            let mut loaded = Loaded::empty(stream_id.clone());
            self.catch_up(&mut loaded).await?;
            return Ok(loaded);
        }
        let tail = usize::try_from(tail).unwrap_or(usize::MAX);
        let (snapshot, tail) = futures::try_join!(
            self.usable_snapshot::<A>(stream_id),
            self.store
                .read_raw(stream_id, ReadRange::from(1).newest(tail))
        )?;
        let tail = self.store.upcast_all(tail.events)?;
        let head = tail.last().map_or(0, |e| e.version);
        let mut loaded = Loaded::empty(stream_id.clone());
        let mut refused = false;
        match snapshot {
            Some((_, snapshot)) if snapshot.version > head => {
                let version = snapshot.version;
                refused = true;
                tracing::warn!(%stream_id, version, head,
                    "{SNAPSHOT_REFUSED}: it is ahead of the stream; folding from the start");
            }
            Some((state, snapshot)) => {
                let version = snapshot.version;
                // The snapshot's own event proves it is not ahead and gives the chain; when the
                // tail does not reach back to it, one read brings it and the events between.
                let first = tail.first().map_or(u64::MAX, |e| e.version);
                let before = if version < first {
                    self.read_between(stream_id, version, first - 1).await?
                } else {
                    Vec::new()
                };
                let own = if version < first {
                    before.first()
                } else {
                    tail.iter().find(|e| e.version == version)
                };
                if let Some(own) = own.filter(|e| e.version == version) {
                    if self.proves(&snapshot, &own.chain).await? {
                        loaded = Loaded::at(state, own.head(), Some(own.occurred_at));
                        loaded.snapshot_version = Some(version);
                        loaded.fold_in(before.get(1..).unwrap_or_default())?;
                    } else {
                        refused = true;
                    }
                }
            }
            None => {}
        }
        self.fold_tail(&mut loaded, tail).await?;
        loaded.snapshot_refused = refused;
        Ok(loaded)
    }

    /// Folds a stream's tail onto `loaded`, reading first the events between the two if the
    /// tail does not reach back to it.
    async fn fold_tail<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
        tail: Vec<RecordedEvent>,
    ) -> Result<(), StoreError> {
        let after = loaded.version + 1;
        if let Some(first) = tail.first().filter(|e| e.version > after) {
            let between = self
                .read_between(&loaded.stream_id, after, first.version - 1)
                .await?;
            loaded.fold_in(&between)?;
        }
        let start = tail.partition_point(|e| e.version <= loaded.version);
        loaded.fold_in(&tail[start..])?;
        loaded.current = true;
        Ok(())
    }

    /// The events of a version range, upcast.
    async fn read_between(
        &self,
        stream_id: &StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let RawRead { events, .. } = self
            .store
            .read_raw(stream_id, ReadRange::from(from).to(to))
            .await?;
        self.store.upcast_all(events)
    }

    /// Folds the events after `loaded.version` into it: one read, after which it is current.
    pub(crate) async fn catch_up<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
    ) -> Result<(), StoreError> {
        let events = self
            .store
            .read_all(&loaded.stream_id, loaded.version + 1)
            .await?;
        loaded.fold_in(&events)?;
        loaded.current = true;
        Ok(())
    }

    /// Whether `snapshot` carries the MAC the snapshot key gives it over `chain`, the chain
    /// value of the event at its version (always, without a key). A refusal is logged.
    async fn proves(&self, snapshot: &Snapshot, chain: &str) -> Result<bool, StoreError> {
        let Some(key) = &self.snapshot_key else {
            return Ok(true);
        };
        let expected = key.mac(&snapshot_mac_input(snapshot, chain)).await?;
        let proven = snapshot
            .mac
            .as_deref()
            .is_some_and(|mac| constant_time_eq(mac.as_bytes(), expected.as_bytes()));
        if !proven {
            tracing::warn!(stream_id = %snapshot.stream_id, version = snapshot.version,
                "{SNAPSHOT_REFUSED}: it does not verify against its MAC; folding from the events");
        }
        Ok(proven)
    }

    async fn usable_snapshot<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<(A, Snapshot)>, StoreError> {
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
        match serde_json::from_value::<A>(snapshot.state.clone()) {
            Ok(state) if snapshot.version > 0 => Ok(Some((state, snapshot))),
            Ok(_) => Ok(None),
            Err(reason) => {
                tracing::warn!(%stream_id, %reason, "snapshot state does not decode; folding from the start");
                Ok(None)
            }
        }
    }

    /// The state as it was at a version or an instant (time travel), folded from the start.
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

    /// [`Self::load_as_of`] folding at most `max_events` events, so that one request's work
    /// is bounded however long the stream: from the snapshot when the point lies at or after
    /// it (the snapshot's own event says when it was), else from the start. Reads stop at the
    /// point, or one past the bound: more than `max_events` to fold is
    /// [`StoreError::TooLarge`] (`what` is `"history to fold"`).
    pub async fn load_as_of_within<A: Aggregate>(
        &self,
        stream_id: &StreamId,
        as_of: AsOf,
        max_events: usize,
    ) -> Result<Loaded<A>, StoreError> {
        let mut refused = false;
        if let Some((state, snapshot)) = self.usable_snapshot::<A>(stream_id).await?
            && as_of_version(as_of).is_none_or(|point| snapshot.version <= point)
        {
            let version = snapshot.version;
            // The snapshot's own event first: it proves the snapshot and says when it was.
            let events = self
                .read_to_point(stream_id, version, as_of, max_events + 1)
                .await?;
            let own = events.first().filter(|e| e.version == version);
            let proven = match own {
                Some(own) => self.proves(&snapshot, &own.chain).await?,
                None => false,
            };
            refused = own.is_some() && !proven;
            if let Some(own) = own.filter(|_| proven)
                && as_of_time(as_of).is_none_or(|at| own.occurred_at <= at)
            {
                let mut loaded = Loaded::at(state, own.head(), Some(own.occurred_at));
                loaded.snapshot_version = Some(version);
                loaded.fold_in(&events[1..])?;
                loaded.current = true;
                return Ok(loaded);
            }
        }
        let events = self.read_to_point(stream_id, 1, as_of, max_events).await?;
        let mut loaded = Loaded::empty(stream_id.clone());
        loaded.snapshot_refused = refused;
        loaded.fold_in(&events)?;
        Ok(loaded)
    }

    /// The events from `from` up to the point `as_of`, at most `max_events` of them (more is
    /// `TooLarge`), upcast.
    async fn read_to_point(
        &self,
        stream_id: &StreamId,
        from: u64,
        as_of: AsOf,
        max_events: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let range = ReadRange::from(from)
            .to(as_of_version(as_of).unwrap_or(u64::MAX))
            .limit(max_events);
        let RawRead { mut events, more } = self.store.read_raw(stream_id, range).await?;
        let cut = as_of_time(as_of).and_then(|at| events.iter().position(|e| e.occurred_at > at));
        match cut {
            Some(cut) => events.truncate(cut),
            None if more => {
                return Err(StoreError::TooLarge {
                    what: HISTORY_TO_FOLD,
                    actual: max_events + 1,
                    limit: max_events,
                });
            }
            None => {}
        }
        self.store.upcast_all(events)
    }
}

/// Whether two byte strings are equal, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
