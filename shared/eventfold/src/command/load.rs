//! Loading a stream for a decision: the state this process kept, or else the snapshot (if
//! usable) and the events after it.

use chrono::{DateTime, Utc};

use super::CommandService;
use crate::aggregate::Aggregate;
use crate::encoding::fold;
use crate::envelope::{RecordedEvent, StreamHead};
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::kept::Kept;
use crate::store::AsOf;

/// How far behind a kept state may be and still be caught up from (else the snapshot is read).
const KEPT_CATCH_UP: usize = 1000;

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

    /// Loads an aggregate from the stores: its snapshot if usable, then every event after it.
    async fn load_stored<A: Aggregate>(
        &self,
        stream_id: &StreamId,
    ) -> Result<Loaded<A>, StoreError> {
        if let Some((state, version)) = self.usable_snapshot::<A>(stream_id).await? {
            // Read from the snapshot's own version: it proves the snapshot is not ahead of the
            // stream and gives the head's chain, in the same single query.
            let events = self.store.read_all(stream_id, version).await?;
            if let Some(first) = events.first().filter(|e| e.version == version) {
                let mut loaded = Loaded::at(state, first.head(), Some(first.occurred_at));
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
    pub(crate) async fn catch_up<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
    ) -> Result<(), StoreError> {
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
}
