//! Feed consumers: read a partition from a checkpoint, apply a batch, move the checkpoint;
//! partitions shared between a consumer's instances by leases.
//!
//! A consumer (by its name) keeps one checkpoint per partition in the feed's table: the next
//! position to read, the instance holding the partition, and until when. An instance takes a
//! partition that nobody holds or whose holder's lease ran out, applies the next batch, and
//! moves the checkpoint only if it still holds the lease and the checkpoint is where it read
//! from: an instance that stalled past its lease cannot move what another has moved since.
//! Each poll takes at most one partition it did not hold, so instances started together end up
//! sharing the partitions, and one that stops polling hands its partitions to the others when
//! its leases run out.
//!
//! A batch that fails, or whose instance dies before moving the checkpoint, comes again: the
//! handler's effect must be idempotent (a projection's rows carry the version they are at, so
//! an event applied again changes nothing).
//!
//! An event the handler cannot apply, for a reason a retry would not cure, *parks* its stream:
//! the stream's events are passed over from that version on (held in the events table, never
//! applied past the failure) while every other stream flows. Parked streams are listed in the
//! feed's table with the failing version and error (`eventfold feed parked`); once the cause is
//! fixed, an operator asks for a redrive (`eventfold feed redrive`), and the next poll of any
//! instance applies the stream's events again in order, from the failing one to the head.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use super::{FeedEntry, FeedStore, MAX_PARKS, Page, Parked, parkable};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::projection::StreamProjector;
use crate::store::{EventStore, ReadRange};

/// Events one batch applies at most, unless told otherwise.
pub const DEFAULT_BATCH: usize = 100;
/// How long a lease lasts after each batch, unless told otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Why a handler did not apply a batch, and at which event, if one event is the cause.
#[derive(Debug)]
pub struct Rejected {
    /// The event that could not be applied (its stream and version), if it was one event.
    pub event: Option<(StreamId, u64)>,
    /// What went wrong.
    pub error: StoreError,
}

impl From<StoreError> for Rejected {
    fn from(error: StoreError) -> Self {
        Self { event: None, error }
    }
}

/// What a feed consumer does with events.
#[async_trait]
pub trait FeedHandler: Send + Sync + fmt::Debug {
    /// Applies one partition's next events, in feed order (each stream's in version order).
    ///
    /// A rejection naming an event, with an error a retry would not cure, parks that event's
    /// stream: the batch is applied again without the stream's events, and its later ones are
    /// held until an operator redrives it. Any other rejection leaves the checkpoint where it
    /// was, and the batch comes again.
    async fn apply(&self, events: Vec<RecordedEvent>) -> Result<(), Rejected>;
}

/// A projection fed from the feed: its rows catch up on every stream, in feed order, with the
/// projector's exactly-once effect (duplicates of what the stream readers applied change
/// nothing).
#[derive(Debug)]
pub struct Projecting(pub Arc<dyn StreamProjector>);

#[async_trait]
impl FeedHandler for Projecting {
    async fn apply(&self, events: Vec<RecordedEvent>) -> Result<(), Rejected> {
        let mut start = 0;
        while start < events.len() {
            let stream = &events[start].stream_id;
            let run = events[start..]
                .iter()
                .take_while(|e| &e.stream_id == stream)
                .count();
            let outcome = self.0.project_stream(&events[start..start + run]).await;
            if let Some(error) = outcome.failure {
                let failed = &events[start + outcome.outcomes.len().min(run - 1)];
                return Err(Rejected {
                    event: Some((failed.stream_id.clone(), failed.version)),
                    error,
                });
            }
            start += run;
        }
        Ok(())
    }
}

/// What one poll (or a catch-up) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Events applied.
    pub applied: usize,
    /// Batches applied.
    pub batches: usize,
    /// Checkpoints that could not move because another instance had taken the partition.
    pub lost: usize,
    /// Streams parked by this round (their events held).
    pub parked: usize,
    /// Events of parked streams passed over (held in the events table until a redrive).
    pub held: usize,
    /// Parked streams applied again and taken off the parked list.
    pub redriven: usize,
}

impl ConsumerReport {
    /// Adds another round's counts to these.
    pub fn add(&mut self, round: &Self) {
        self.applied += round.applied;
        self.batches += round.batches;
        self.lost += round.lost;
        self.parked += round.parked;
        self.held += round.held;
        self.redriven += round.redriven;
    }
}

/// How far behind the feed's end a consumer is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lag {
    /// Events not yet applied, all partitions together.
    pub positions: u64,
    /// How long ago the oldest of them was indexed (0 when none).
    pub seconds: f64,
}

/// One instance of a named feed consumer.
#[derive(Debug)]
pub struct FeedConsumer {
    name: String,
    owner: String,
    feed: Arc<dyn FeedStore>,
    events: Arc<dyn EventStore>,
    handler: Arc<dyn FeedHandler>,
    batch: usize,
    lease: Duration,
    held: Mutex<HashMap<u32, Lease>>,
}

/// A partition an instance holds: where its checkpoint is, and until when the lease is ours.
#[derive(Clone, Copy, Debug)]
struct Lease {
    position: u64,
    until: i64,
}

fn millis_now() -> i64 {
    Utc::now().timestamp_millis()
}

impl FeedConsumer {
    /// An instance of the consumer `name` (its checkpoints' name: `[A-Za-z0-9_-]{1,64}`),
    /// reading `feed`, fetching the events from `events`, applying them with `handler`.
    pub fn new(
        name: &str,
        feed: Arc<dyn FeedStore>,
        events: Arc<dyn EventStore>,
        handler: Arc<dyn FeedHandler>,
    ) -> Result<Self, StoreError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(StoreError::misuse(format!(
                "a feed consumer's name is 1-64 characters of [A-Za-z0-9_-], got {name:?}"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            owner: uuid::Uuid::new_v4().to_string(),
            feed,
            events,
            handler,
            batch: DEFAULT_BATCH,
            lease: DEFAULT_LEASE,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The same consumer applying at most `batch` events at once.
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The same consumer holding a partition for `lease` after each batch.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    fn lease_millis(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// When a lease taken or renewed at `now` (epoch milliseconds) ends.
    fn lease_from(&self, now: i64) -> i64 {
        now.saturating_add(self.lease_millis())
    }

    fn hold(&self, partition: u32, position: u64, until: i64) {
        let lease = Lease { position, until };
        self.held.lock().expect("held").insert(partition, lease);
    }

    /// Gives up every partition this instance holds, where its checkpoint is: another instance
    /// takes them at once instead of when their leases end (what an instance about to stop
    /// does). Returns how many it gave up.
    pub async fn release(&self) -> Result<usize, StoreError> {
        let held: Vec<(u32, Lease)> = self.held.lock().expect("held").drain().collect();
        let mut released = 0;
        for (partition, lease) in held {
            let (name, owner) = (&self.name, &self.owner);
            let at = lease.position;
            if self.feed.advance(name, partition, owner, at, at, 0).await? {
                released += 1;
            }
        }
        Ok(released)
    }

    /// This instance's id (the owner its leases name).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The partitions this instance holds.
    pub fn held(&self) -> Vec<u32> {
        let mut held: Vec<u32> = self.held.lock().expect("held").keys().copied().collect();
        held.sort_unstable();
        held
    }

    /// One round: renews the partitions this instance holds and applies a batch on each,
    /// taking at most one more partition that is free.
    pub async fn poll(&self) -> Result<ConsumerReport, StoreError> {
        self.round(1).await
    }

    /// Applies everything up to the feed's end, taking every free partition: what a new
    /// projection's catch-up, or a rebuild in feed order, does. Returns when a round finds
    /// nothing new.
    pub async fn catch_up(&self) -> Result<ConsumerReport, StoreError> {
        let mut total = ConsumerReport::default();
        loop {
            let round = self.round(usize::MAX).await?;
            total.add(&round);
            if round.applied == 0 {
                return Ok(total);
            }
        }
    }

    async fn round(&self, claims: usize) -> Result<ConsumerReport, StoreError> {
        let partitions = self.feed.partitions();
        let offset = fastrand::u32(..partitions);
        let mut report = ConsumerReport::default();
        let mut parked = self.feed.parked(&self.name).await?;
        let mut claimed = 0;
        for n in 0..partitions {
            let partition = (offset + n) % partitions;
            let now = millis_now();
            let lease = self.held.lock().expect("held").get(&partition).copied();
            let ours = lease.is_some();
            if !ours && claimed >= claims {
                continue;
            }
            // A lease with more than half its time left is ours without asking: an idle poll
            // reads, and writes nothing.
            let position = match lease {
                Some(lease) if lease.until - now > self.lease_millis() / 2 => lease.position,
                _ => {
                    let until = self.lease_from(now);
                    let acquired = self
                        .feed
                        .acquire(&self.name, partition, &self.owner, now, until)
                        .await?;
                    let Some(position) = acquired else {
                        self.held.lock().expect("held").remove(&partition);
                        continue;
                    };
                    if !ours {
                        claimed += 1;
                    }
                    self.hold(partition, position, until);
                    position
                }
            };
            // Only the partition's holder redrives its streams, before it moves on: nobody
            // else passes over their events meanwhile.
            self.redrive(partition, &mut parked, &mut report).await?;
            let applied = self
                .apply_batch(partition, position, &mut parked, &mut report)
                .await?;
            match applied {
                Some(0) => {}
                Some(count) => {
                    report.applied += count;
                    report.batches += 1;
                }
                None => {
                    report.lost += 1;
                    self.held.lock().expect("held").remove(&partition);
                }
            }
        }
        Ok(report)
    }

    /// Applies the partition's next batch from `position` (but the events of parked streams)
    /// and moves the checkpoint past it: how many events, or `None` if the lease was lost
    /// meanwhile.
    async fn apply_batch(
        &self,
        partition: u32,
        position: u64,
        parked: &mut BTreeMap<StreamId, Parked>,
        report: &mut ConsumerReport,
    ) -> Result<Option<usize>, StoreError> {
        let pages = self
            .feed
            .read_pages(partition, position, self.batch)
            .await?;
        let entries: Vec<FeedEntry> = pages
            .iter()
            .flat_map(Page::entries)
            .filter(|entry| entry.position >= position)
            .take(self.batch)
            .collect();
        if entries.is_empty() {
            return Ok(Some(0));
        }
        if !entries
            .iter()
            .map(|e| e.position)
            .eq(position..position + entries.len() as u64)
        {
            return Err(StoreError::corrupt(format!(
                "feed partition {partition} has a gap after position {position}"
            )));
        }
        let count = entries.len();
        let events = self.fetch(&entries).await?;
        let mut parks = 0;
        loop {
            let is_held = |e: &RecordedEvent| {
                parked
                    .get(&e.stream_id)
                    .is_some_and(|p| e.version >= p.version)
            };
            let pending: Vec<RecordedEvent> =
                events.iter().filter(|e| !is_held(e)).cloned().collect();
            let held = events.len() - pending.len();
            // Whether the batch just given holds the event a rejection names.
            let named = |stream_id: &StreamId, version: u64| {
                events
                    .iter()
                    .any(|e| &e.stream_id == stream_id && e.version == version && !is_held(e))
            };
            match self.handler.apply(pending).await {
                Ok(()) => {
                    report.held += held;
                    break;
                }
                // An event's own fault (not the store's, nor one it named wrongly) parks its
                // stream; a batch that parks many streams has a cause of its own, not theirs.
                Err(Rejected {
                    event: Some((stream_id, version)),
                    error,
                }) if parkable(&error) && named(&stream_id, version) && parks < MAX_PARKS => {
                    tracing::error!(consumer = %self.name, stream = %stream_id, version,
                        error = %crate::error::error_chain(&error), "stream parked");
                    let stream = Parked::now(stream_id.clone(), version, &error);
                    self.feed.park(&self.name, &stream, false).await?;
                    parked.insert(stream_id, stream);
                    parks += 1;
                    report.parked += 1;
                }
                Err(rejected) => return Err(rejected.error),
            }
        }
        let (to, until) = (position + count as u64, self.lease_from(millis_now()));
        let moved = self
            .feed
            .advance(&self.name, partition, &self.owner, position, to, until)
            .await?;
        if moved {
            self.hold(partition, to, until);
        }
        Ok(moved.then_some(count))
    }

    /// Applies again every parked stream of `partition` an operator asked to redrive: its
    /// events from the parked version to its head, in order, then takes it off the list (the
    /// partition's later batches apply what comes after). A stream that fails again stays
    /// parked, with the new failure; a failure of the store leaves the redrive asked.
    async fn redrive(
        &self,
        partition: u32,
        parked: &mut BTreeMap<StreamId, Parked>,
        report: &mut ConsumerReport,
    ) -> Result<(), StoreError> {
        let partitions = self.feed.partitions();
        let asked: Vec<Parked> = parked
            .values()
            .filter(|p| p.redrive && super::partition_of(&p.stream_id, partitions) == partition)
            .cloned()
            .collect();
        for stream in asked {
            let events = self
                .events
                .read_all(&stream.stream_id, stream.version)
                .await?;
            match self.handler.apply(events).await {
                Ok(()) => {
                    self.feed.unpark(&self.name, &stream.stream_id).await?;
                    parked.remove(&stream.stream_id);
                    report.redriven += 1;
                }
                Err(rejected) if !parkable(&rejected.error) => return Err(rejected.error),
                Err(rejected) => {
                    let version = rejected.event.map_or(stream.version, |(_, v)| v);
                    let again = Parked::now(stream.stream_id.clone(), version, &rejected.error);
                    self.feed.park(&self.name, &again, true).await?;
                    parked.insert(stream.stream_id.clone(), again);
                }
            }
        }
        Ok(())
    }

    /// The events the entries name, in their order: one read per stream (a partition holds each
    /// stream's versions in order without gaps, so a batch's entries of one stream are one
    /// range of versions).
    async fn fetch(&self, entries: &[FeedEntry]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut ranges: BTreeMap<&StreamId, (u64, u64)> = BTreeMap::new();
        for entry in entries {
            let range = ranges
                .entry(&entry.stream_id)
                .or_insert((entry.version, entry.version));
            range.0 = range.0.min(entry.version);
            range.1 = range.1.max(entry.version);
        }
        let mut fetched: HashMap<(StreamId, u64), RecordedEvent> = HashMap::new();
        for (stream_id, (first, last)) in ranges {
            let read = self
                .events
                .read_raw(stream_id, ReadRange::from(first).to(last))
                .await?;
            for event in self.events.upcast_all(read.events)? {
                fetched.insert((event.stream_id.clone(), event.version), event);
            }
        }
        entries
            .iter()
            .map(|entry| {
                fetched
                    .remove(&(entry.stream_id.clone(), entry.version))
                    .ok_or_else(|| {
                        StoreError::corrupt(format!(
                            "the feed names version {} of {}, which the events table lacks",
                            entry.version, entry.stream_id
                        ))
                    })
            })
            .collect()
    }

    /// How far this consumer (all its instances) is behind the feed's end.
    pub async fn lag(&self) -> Result<Lag, StoreError> {
        lag(self.feed.as_ref(), &self.name).await
    }
}

/// How far the consumer `name` is behind the feed's end: events not applied, and the age of
/// the oldest (one read of the checkpoints, and two per partition behind).
pub async fn lag(feed: &dyn FeedStore, name: &str) -> Result<Lag, StoreError> {
    let checkpoints = feed.checkpoints(name).await?;
    let mut lag = Lag::default();
    let now = Utc::now();
    for partition in 0..feed.partitions() {
        let position = checkpoints
            .iter()
            .find(|c| c.partition == partition)
            .map_or(0, |c| c.position);
        let end = feed.end(partition).await?;
        if end <= position {
            continue;
        }
        lag.positions += end - position;
        let oldest = feed
            .read_pages(partition, position, 1)
            .await?
            .first()
            .map(|page| page.indexed_at);
        if let Some(at) = oldest {
            let seconds = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
            lag.seconds = lag.seconds.max(seconds);
        }
    }
    Ok(lag)
}
