//! The global feed: every append, indexed in order, kept as long as the events are.
//!
//! DynamoDB Streams keep a record for 24 hours and order records only per item. The feed is an
//! index of appends that lasts: the [`Indexer`] (run by the events stream's second reader, the
//! publisher, so the stream keeps at most two readers) writes each event's place into one of a
//! fixed number of *partitions*, chosen by a stable hash of its stream, so every stream lives in
//! one partition and a partition's writers never contend with another's.
//!
//! - A partition is a log of *positions* 0, 1, 2, … with no gaps: each position is one event
//!   (stream, version, type). Positions are written as *pages* of at most [`PAGE_EVENTS`]
//!   events, each page starting where the one before it ends; a page is written only if no page
//!   already starts there, so two writers can never take the same positions.
//! - Each stream has a *high-water mark*, the last version indexed, moved in the same atomic
//!   write as the pages: a record delivered twice finds the mark past it and changes nothing,
//!   and a version after `mark + 1` means records were missed, which the indexer reads back from
//!   the events table and indexes first (a gap is repaired, never skipped).
//! - A reader's place is a [`Cursor`], the next position in every partition: nothing is skipped
//!   or read twice across partitions however their writes interleave. [`read_feed`] merges the
//!   partitions by indexing time, so the feed reads in the order appends were indexed, while
//!   each stream's events are always in version order.
//!
//! [`MemoryFeed`] keeps a feed in process; with the `aws` feature, `DynamoFeed` keeps it in a
//! table. Both pass one conformance suite (`testing::feed_suite`).

mod consumer;
mod index;
mod memory;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use consumer::{ConsumerReport, FeedConsumer, FeedHandler, Lag, Projecting, Rejected, lag};
pub use index::{IndexReport, Indexer};
pub use memory::MemoryFeed;
#[cfg(feature = "aws")]
pub(crate) use memory::check_write;
pub use verify::{FeedCheck, check_feed};

use crate::error::StoreError;
use crate::ids::StreamId;

/// Events in one page at most: a page of the longest stream ids and type names stays far under
/// DynamoDB's item limit (100 × (105 + 100) bytes of names, about 21 KB).
pub const PAGE_EVENTS: u64 = 100;

/// Pages one atomic write holds at most (with the marks it moves, under DynamoDB's 100 items per
/// transaction).
pub const PAGES_PER_WRITE: usize = 10;

/// Marks one atomic write moves at most.
pub const MARKS_PER_WRITE: usize = 80;

/// Partitions when the environment does not say.
pub const DEFAULT_PARTITIONS: u32 = 4;

/// Partitions a feed may have at most (a reader reads every one).
pub const MAX_PARTITIONS: u32 = 64;

/// The partition a stream's events are indexed in: FNV-1a over its id, stable across releases
/// and machines (unlike the standard library's hasher), modulo the partition count.
pub fn partition_of(stream_id: &StreamId, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream_id.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// A stream's consecutive events within a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The stream.
    pub stream_id: StreamId,
    /// The version of its first event here.
    pub first_version: u64,
    /// The types of its events here, one per version.
    pub types: Vec<String>,
}

/// Consecutive positions of one partition, written at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The partition.
    pub partition: u32,
    /// The position of its first event.
    pub first: u64,
    /// Its events, stream by stream, in position order.
    pub spans: Vec<Span>,
    /// When the indexer wrote it.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub indexed_at: DateTime<Utc>,
}

impl Page {
    /// How many events (positions) it holds.
    pub fn len(&self) -> u64 {
        self.spans.iter().map(|span| span.types.len() as u64).sum()
    }

    /// Whether it holds no event (never true of a stored page).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position after its last event: where the next page starts.
    pub fn end(&self) -> u64 {
        self.first + self.len()
    }

    /// Its events, each at its position.
    pub fn entries(&self) -> impl Iterator<Item = FeedEntry> + '_ {
        let positions = self.first..;
        self.spans
            .iter()
            .flat_map(|span| {
                span.types
                    .iter()
                    .zip(span.first_version..)
                    .map(move |(event_type, version)| (span, version, event_type))
            })
            .zip(positions)
            .map(|((span, version, event_type), position)| FeedEntry {
                partition: self.partition,
                position,
                stream_id: span.stream_id.clone(),
                version,
                event_type: event_type.clone(),
                indexed_at: self.indexed_at,
            })
    }
}

/// One event's place in the feed: a reference to it in the events table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Its partition.
    pub partition: u32,
    /// Its position in the partition.
    pub position: u64,
    /// Its stream.
    pub stream_id: StreamId,
    /// Its version in the stream.
    pub version: u64,
    /// Its type.
    pub event_type: String,
    /// When it was indexed.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub indexed_at: DateTime<Utc>,
}

/// A stream's high-water mark moved by a write: from the last version indexed before (0 for a
/// stream never indexed) to the last one the write indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkMove {
    /// The stream.
    pub stream_id: StreamId,
    /// The mark the write expects.
    pub from: u64,
    /// The mark it sets.
    pub to: u64,
}

/// Pages of one partition, contiguous from the partition's end, and the marks they move:
/// written all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWrite {
    /// The partition.
    pub partition: u32,
    /// The pages, in position order; the first starts at the partition's end.
    pub pages: Vec<Page>,
    /// The marks they move.
    pub marks: Vec<MarkMove>,
}

/// Whether a [`PageWrite`] was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Pages and marks are stored.
    Written,
    /// Another writer took the positions or moved a mark first; nothing was written.
    Stale,
}

/// Where a feed is kept. Reads are consistent: a read after a write sees it.
#[async_trait]
pub trait FeedStore: Send + Sync + fmt::Debug {
    /// How many partitions it has.
    fn partitions(&self) -> u32;

    /// Records the partition count the first time it is asked; the count recorded (a feed's
    /// streams are placed by it, so it may never change).
    async fn record_partitions(&self) -> Result<u32, StoreError>;

    /// The marks of `streams` (absent for a stream never indexed).
    async fn marks(&self, streams: &[StreamId]) -> Result<HashMap<StreamId, u64>, StoreError>;

    /// Every stream's mark (for verification).
    async fn all_marks(&self) -> Result<BTreeMap<StreamId, u64>, StoreError>;

    /// The partition's end: the position its next page starts at.
    async fn end(&self, partition: u32) -> Result<u64, StoreError>;

    /// Writes pages and moves marks, all or nothing; [`Written::Stale`] if a page's position is
    /// taken or a mark is not where the write expects it.
    async fn write(&self, write: &PageWrite) -> Result<Written, StoreError>;

    /// The pages holding positions from `from` on, in order, until they hold at least `limit`
    /// events from `from` (or the partition ends).
    async fn read_pages(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Page>, StoreError>;

    /// Takes `consumer`'s lease on `partition` for `owner` until `until` (epoch milliseconds) if
    /// nobody holds it, its holder's lease ended before `now`, or `owner` holds it already;
    /// the position the consumer reads from next (0 for a new consumer), or `None` if another
    /// owner holds a live lease.
    async fn acquire(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<u64>, StoreError>;

    /// Moves `consumer`'s checkpoint on `partition` from `from` to `to` and renews the lease
    /// until `until`, if `owner` still holds it and the checkpoint is at `from`; whether it did.
    async fn advance(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        from: u64,
        to: u64,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// `consumer`'s checkpoints, one per partition it has read.
    async fn checkpoints(&self, consumer: &str) -> Result<Vec<Checkpoint>, StoreError>;

    /// The streams `consumer` has parked.
    async fn parked(&self, consumer: &str) -> Result<BTreeMap<StreamId, Parked>, StoreError>;

    /// Parks a stream for `consumer`: unless it is parked already (the earlier failure stays),
    /// or, with `replace`, whether it is or not (a redrive that failed again). The consumer is
    /// named among [`parking_consumers`](Self::parking_consumers) first.
    async fn park(&self, consumer: &str, parked: &Parked, replace: bool) -> Result<(), StoreError>;

    /// Every consumer that has ever parked a stream (whether or not it still has one): where an
    /// operator looks for parked streams without knowing the consumers' names.
    async fn parking_consumers(&self) -> Result<Vec<String>, StoreError>;

    /// Asks `consumer` to apply a parked stream again (its instances do, on their next poll);
    /// `false` if the stream is not parked.
    async fn request_redrive(
        &self,
        consumer: &str,
        stream_id: &StreamId,
    ) -> Result<bool, StoreError>;

    /// Takes a stream off `consumer`'s parked streams.
    async fn unpark(&self, consumer: &str, stream_id: &StreamId) -> Result<(), StoreError>;
}

/// A stream a consumer could not apply: its events from `version` on are held (not applied)
/// until it is redriven.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The stream.
    pub stream_id: StreamId,
    /// The first version not applied.
    pub version: u64,
    /// Why.
    pub error: String,
    /// When.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub parked_at: DateTime<Utc>,
    /// Whether an operator asked for it to be applied again.
    #[serde(default)]
    pub redrive: bool,
}

impl Parked {
    /// A stream parked now at `version`, for `error`.
    pub fn now(stream_id: StreamId, version: u64, error: &StoreError) -> Self {
        Self {
            stream_id,
            version,
            error: crate::error::error_chain(error),
            parked_at: Utc::now(),
            redrive: false,
        }
    }
}

/// Streams one batch may park: past that, the cause is not the events'.
pub(crate) const MAX_PARKS: usize = 10;

/// Whether an error is an event's own (it cannot be applied, and applying it again will not
/// change that), which parks its stream: not the store's or the network's, nor a race with
/// another writer, which a retry may cure.
pub fn parkable(error: &StoreError) -> bool {
    !matches!(
        error,
        StoreError::Unavailable(_) | StoreError::Conflict { .. }
    )
}

/// Where a feed consumer is in one partition, and who holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The partition.
    pub partition: u32,
    /// The next position the consumer reads.
    pub position: u64,
    /// The instance holding the lease.
    pub owner: String,
    /// When the lease ends (epoch milliseconds).
    pub lease_until: i64,
}

/// A cursor that does not parse, or does not fit the feed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a feed position is one number per partition joined by '.', {partitions} here (start: {start}); got {got:?}"
)]
pub struct CursorError {
    partitions: u32,
    start: String,
    got: String,
}

/// A reader's place in the feed: the next position in every partition.
///
/// Written as those positions joined by `.` (`"0.0.0.0"` is the start of a four-partition feed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u64>);

impl Cursor {
    /// The start of a feed of `partitions` partitions.
    pub fn start(partitions: u32) -> Self {
        Self(vec![0; partitions as usize])
    }

    /// Parses a cursor for a feed of `partitions` partitions.
    pub fn parse(text: &str, partitions: u32) -> Result<Self, CursorError> {
        let positions: Option<Vec<u64>> = text.split('.').map(|part| part.parse().ok()).collect();
        match positions {
            Some(positions) if positions.len() == partitions as usize => Ok(Self(positions)),
            _ => Err(CursorError {
                partitions,
                start: Self::start(partitions).to_string(),
                got: text.chars().take(80).collect(),
            }),
        }
    }

    /// The next position in `partition`.
    pub fn next(&self, partition: u32) -> u64 {
        self.0.get(partition as usize).copied().unwrap_or(0)
    }

    /// Events before this place, in all partitions together.
    pub fn passed(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The same place, past `entry`.
    fn advance(&mut self, entry: &FeedEntry) {
        if let Some(next) = self.0.get_mut(entry.partition as usize) {
            *next = (*next).max(entry.position + 1);
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// A read of the feed: entries in order, and where the next read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRead {
    /// Up to the limit of entries after the cursor.
    pub entries: Vec<FeedEntry>,
    /// The cursor past them (the same cursor when nothing was new).
    pub next: Cursor,
}

/// Reads up to `limit` entries after `after`: every partition's next entries, each partition's
/// in position order, merged by when they were indexed (then partition). A partition's next
/// entry is always the one after its last taken, so nothing is skipped even where writers'
/// clocks disagree. One request per partition and page read.
pub async fn read_feed(
    feed: &dyn FeedStore,
    after: &Cursor,
    limit: usize,
) -> Result<FeedRead, StoreError> {
    let mut heads: Vec<std::collections::VecDeque<FeedEntry>> = Vec::new();
    for partition in 0..feed.partitions() {
        let from = after.next(partition);
        let pages = feed.read_pages(partition, from, limit).await?;
        heads.push(
            pages
                .iter()
                .flat_map(Page::entries)
                .filter(|entry| entry.position >= from)
                .take(limit)
                .collect(),
        );
    }
    let mut entries = Vec::with_capacity(limit.min(1_000));
    let mut next = after.clone();
    while entries.len() < limit {
        let earliest = heads
            .iter()
            .enumerate()
            .filter_map(|(p, queue)| queue.front().map(|entry| (entry.indexed_at, p)))
            .min();
        let Some((_, partition)) = earliest else {
            break;
        };
        let entry = heads[partition].pop_front().expect("a head");
        next.advance(&entry);
        entries.push(entry);
    }
    Ok(FeedRead { entries, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> StreamId {
        StreamId::parse(text).expect("a stream id")
    }

    #[test]
    fn a_stream_always_hashes_to_the_same_partition() {
        // FNV-1a's published values: a release that changed them would move streams between
        // partitions.
        let partitions: Vec<u32> = ["Account-1", "Account-2", "User-abc", "Order-9"]
            .iter()
            .map(|id| partition_of(&stream(id), 4))
            .collect();
        assert_eq!(partitions, vec![2, 3, 3, 1]);
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|n| partition_of(&stream(&format!("Account-{n}")), 4))
            .collect();
        assert_eq!(spread.len(), 4, "every partition used");
    }

    #[test]
    fn cursors_round_trip_and_refuse_the_wrong_shape() {
        let cursor = Cursor::parse("3.0.12.7", 4).expect("four positions");
        assert_eq!(cursor.to_string(), "3.0.12.7");
        assert_eq!(cursor.next(2), 12);
        assert_eq!(cursor.passed(), 22);
        for bad in ["", "1.2.3", "1.2.3.4.5", "a.b.c.d", "-1.0.0.0"] {
            let error = Cursor::parse(bad, 4).expect_err(bad);
            assert!(error.to_string().contains("0.0.0.0"), "{error}");
        }
    }

    #[test]
    fn a_page_numbers_its_events_from_its_first_position() {
        let page = Page {
            partition: 1,
            first: 40,
            spans: vec![
                Span {
                    stream_id: stream("Account-1"),
                    first_version: 7,
                    types: vec!["Deposited".into(), "Withdrawn".into()],
                },
                Span {
                    stream_id: stream("Account-2"),
                    first_version: 1,
                    types: vec!["Opened".into()],
                },
            ],
            indexed_at: Utc::now(),
        };
        let places: Vec<(u64, String, u64)> = page
            .entries()
            .map(|e| (e.position, e.stream_id.to_string(), e.version))
            .collect();
        assert_eq!(
            places,
            vec![
                (40, "Account-1".into(), 7),
                (41, "Account-1".into(), 8),
                (42, "Account-2".into(), 1)
            ]
        );
        assert_eq!(page.end(), 43);
    }
}
