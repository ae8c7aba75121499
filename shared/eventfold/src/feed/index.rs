//! The indexer: a batch of appended events into the feed, exactly once each, in version order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::{
    FeedStore, MARKS_PER_WRITE, MarkMove, PAGE_EVENTS, PAGES_PER_WRITE, Page, PageWrite, Span,
    Written, partition_of,
};
use crate::envelope::RecordedEvent;
use crate::error::{StoreError, Unavailable};
use crate::ids::StreamId;
use crate::store::{EventStore, ReadRange};

/// How often a batch's writes are tried in all while other writers keep taking the positions.
const ATTEMPTS: u32 = 10;

/// What indexing a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Events given a position.
    pub indexed: usize,
    /// Events already indexed (a redelivered record): nothing written for them.
    pub duplicates: usize,
    /// Events the batch lacked before a later one of their stream, read back from the events
    /// table and indexed first.
    pub repaired: usize,
    /// Atomic writes made (each one partition's pages and the marks they move).
    pub writes: usize,
    /// Writes that found their positions taken and were planned again.
    pub retries: usize,
}

/// What a batch holds of a stream: its newest version, and the types of the versions it has.
#[derive(Default)]
struct Wanted {
    newest: u64,
    types: BTreeMap<u64, String>,
}

/// A stream's events still to index: versions after its mark up to the newest in the batch.
struct Pending {
    stream_id: StreamId,
    from: u64,
    types: Vec<String>,
    repaired: usize,
    duplicates: usize,
}

/// Indexes batches of appended events into a feed, built once per process.
#[derive(Debug)]
pub struct Indexer {
    feed: Arc<dyn FeedStore>,
    events: Arc<dyn EventStore>,
    /// Each partition's end as this process last wrote it: a writer alone on a partition needs
    /// no read before it writes; one that is not learns so from a refused write.
    ends: Mutex<HashMap<u32, u64>>,
    /// Whether the feed was found made with this indexer's partition count.
    checked: std::sync::atomic::AtomicBool,
}

impl Indexer {
    /// An indexer into `feed` that repairs gaps from `events`.
    pub fn new(feed: Arc<dyn FeedStore>, events: Arc<dyn EventStore>) -> Self {
        Self {
            feed,
            events,
            ends: Mutex::new(HashMap::new()),
            checked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The feed it writes.
    pub fn feed(&self) -> &Arc<dyn FeedStore> {
        &self.feed
    }

    /// Indexes `events` (any streams, each stream's in the order the events stream delivered
    /// them, duplicates and gaps allowed): afterwards every stream's events up to the newest
    /// given have a position, each exactly once. Costs one read of the marks (per 100 streams)
    /// and one atomic write per partition touched (per 1,000 events), plus a read per stream
    /// with a gap.
    pub async fn index<'a>(
        &self,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<IndexReport, StoreError> {
        let mut wanted: BTreeMap<StreamId, Wanted> = BTreeMap::new();
        for event in events {
            let stream = wanted.entry(event.stream_id.clone()).or_default();
            stream.newest = stream.newest.max(event.version);
            stream.types.insert(event.version, event.event_type.clone());
        }
        self.index_wanted(&wanted).await
    }

    /// Indexes every stream up to the version given (its head in the events table, say),
    /// reading from the events table whatever the feed lacks: what repairing a feed does.
    pub async fn catch_up(
        &self,
        heads: &BTreeMap<StreamId, u64>,
    ) -> Result<IndexReport, StoreError> {
        let wanted = heads
            .iter()
            .map(|(stream, &newest)| {
                let wanted = Wanted {
                    newest,
                    types: BTreeMap::new(),
                };
                (stream.clone(), wanted)
            })
            .collect();
        self.index_wanted(&wanted).await
    }

    async fn index_wanted(
        &self,
        seen: &BTreeMap<StreamId, Wanted>,
    ) -> Result<IndexReport, StoreError> {
        self.check_partitions().await?;
        let mut report = IndexReport::default();
        let mut left: BTreeSet<StreamId> = seen.keys().cloned().collect();
        for attempt in 0..ATTEMPTS {
            if left.is_empty() {
                break;
            }
            if attempt > 0 {
                report.retries += 1;
                let cap = Duration::from_millis(5 << attempt.min(6));
                tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
            }
            let streams: Vec<StreamId> = left.iter().cloned().collect();
            let marks = self.feed.marks(&streams).await?;
            let mut by_partition: BTreeMap<u32, Vec<Pending>> = BTreeMap::new();
            for stream_id in streams {
                let mark = marks.get(&stream_id).copied().unwrap_or(0);
                let pending = self.pending(&stream_id, &seen[&stream_id], mark).await?;
                if pending.types.is_empty() {
                    report.duplicates += pending.duplicates;
                    left.remove(&stream_id);
                    continue;
                }
                let partition = partition_of(&stream_id, self.feed.partitions());
                by_partition.entry(partition).or_default().push(pending);
            }
            for (partition, pendings) in by_partition {
                if self
                    .write_partition(partition, &pendings, &mut report)
                    .await?
                {
                    for pending in pendings {
                        report.indexed += pending.types.len();
                        report.repaired += pending.repaired;
                        report.duplicates += pending.duplicates;
                        left.remove(&pending.stream_id);
                    }
                }
            }
        }
        if left.is_empty() {
            return Ok(report);
        }
        Err(StoreError::Unavailable(Box::new(Unavailable {
            operation: "index the feed",
            resource: format!("{} streams", left.len()),
            code: None,
            retryable: true,
            outcome_unknown: false,
            source: format!("feed positions taken by other writers {ATTEMPTS} times").into(),
        })))
    }

    /// Refuses to index into a feed made with another partition count (its streams would move
    /// between partitions, and their order with them); asked once per process.
    async fn check_partitions(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let recorded = self.feed.record_partitions().await?;
        if recorded != self.feed.partitions() {
            return Err(StoreError::misuse(format!(
                "the feed was made with {recorded} partitions and is now read with {}: \
                 FEED_PARTITIONS may never change for a feed",
                self.feed.partitions()
            )));
        }
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// What a stream still needs after its mark: the batch's events, or, where the batch lacks
    /// some, the events table's.
    async fn pending(
        &self,
        stream_id: &StreamId,
        wanted: &Wanted,
        mark: u64,
    ) -> Result<Pending, StoreError> {
        let (versions, newest) = (&wanted.types, wanted.newest);
        let duplicates = versions.range(..=mark).count();
        let mut pending = Pending {
            stream_id: stream_id.clone(),
            from: mark + 1,
            types: Vec::new(),
            repaired: 0,
            duplicates,
        };
        if newest <= mark {
            return Ok(pending);
        }
        let complete = (mark + 1..=newest).all(|v| versions.contains_key(&v));
        if complete {
            pending.types = (mark + 1..=newest).map(|v| versions[&v].clone()).collect();
            return Ok(pending);
        }
        let read = self
            .events
            .read_raw(stream_id, ReadRange::from(mark + 1).to(newest))
            .await?;
        if !read.events.iter().map(|e| e.version).eq(mark + 1..=newest) {
            return Err(StoreError::corrupt(format!(
                "the events table lacks events of {stream_id} between versions {} and {newest}, \
                 which the events stream delivered past",
                mark + 1
            )));
        }
        pending.repaired = (mark + 1..=newest)
            .filter(|v| !versions.contains_key(v))
            .count();
        pending.types = read.events.into_iter().map(|e| e.event_type).collect();
        Ok(pending)
    }

    /// Writes one partition's pending streams from its end; `false` if another writer took the
    /// positions first (some writes may have landed: the next attempt reads the marks again).
    async fn write_partition(
        &self,
        partition: u32,
        pendings: &[Pending],
        report: &mut IndexReport,
    ) -> Result<bool, StoreError> {
        let cached = self.ends.lock().expect("ends").get(&partition).copied();
        let mut end = match cached {
            Some(end) => end,
            None => self.feed.end(partition).await?,
        };
        for write in plan_writes(partition, end, pendings) {
            let next_end = write.pages.last().map_or(end, Page::end);
            match self.feed.write(&write).await? {
                Written::Written => {
                    report.writes += 1;
                    end = next_end;
                    self.ends.lock().expect("ends").insert(partition, end);
                }
                Written::Stale => {
                    self.ends.lock().expect("ends").remove(&partition);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// Lays pending streams out from position `end`: pages of at most [`PAGE_EVENTS`] events,
/// writes of at most [`PAGES_PER_WRITE`] pages and [`MARKS_PER_WRITE`] marks, each write moving
/// every mark it touches to the last version it holds (a stream longer than a write continues
/// in the next, from there).
fn plan_writes(partition: u32, end: u64, pendings: &[Pending]) -> Vec<PageWrite> {
    let indexed_at = Utc::now();
    let mut writes = Vec::new();
    let mut write = PageWrite {
        partition,
        pages: Vec::new(),
        marks: Vec::new(),
    };
    let mut position = end;
    for pending in pendings {
        let mut mark_from = pending.from - 1;
        for (version, event_type) in (pending.from..).zip(&pending.types) {
            let page_full = write
                .pages
                .last()
                .is_none_or(|page| page.len() >= PAGE_EVENTS);
            let write_full = page_full && write.pages.len() >= PAGES_PER_WRITE;
            let marks_full = write.marks.last().map(|m| &m.stream_id) != Some(&pending.stream_id)
                && write.marks.len() >= MARKS_PER_WRITE;
            if write_full || marks_full {
                writes.push(std::mem::replace(
                    &mut write,
                    PageWrite {
                        partition,
                        pages: Vec::new(),
                        marks: Vec::new(),
                    },
                ));
            }
            if write
                .pages
                .last()
                .is_none_or(|page| page.len() >= PAGE_EVENTS)
            {
                write.pages.push(Page {
                    partition,
                    first: position,
                    spans: Vec::new(),
                    indexed_at,
                });
            }
            let page = write.pages.last_mut().expect("a page");
            match page.spans.last_mut() {
                Some(span) if span.stream_id == pending.stream_id => {
                    span.types.push(event_type.clone());
                }
                _ => page.spans.push(Span {
                    stream_id: pending.stream_id.clone(),
                    first_version: version,
                    types: vec![event_type.clone()],
                }),
            }
            match write.marks.last_mut() {
                Some(mark) if mark.stream_id == pending.stream_id => mark.to = version,
                _ => write.marks.push(MarkMove {
                    stream_id: pending.stream_id.clone(),
                    from: mark_from,
                    to: version,
                }),
            }
            mark_from = version;
            position += 1;
        }
    }
    if !write.pages.is_empty() {
        writes.push(write);
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(stream: &str, from: u64, count: usize) -> Pending {
        Pending {
            stream_id: StreamId::parse(stream).expect("id"),
            from,
            types: vec!["Happened".to_owned(); count],
            repaired: 0,
            duplicates: 0,
        }
    }

    #[test]
    fn writes_are_contiguous_bounded_and_move_each_mark_to_what_they_hold() {
        let pendings = vec![pending("Account-a", 4, 1_250), pending("Account-b", 1, 3)];
        let writes = plan_writes(2, 500, &pendings);
        assert_eq!(writes.len(), 2);
        let mut position = 500;
        for write in &writes {
            assert!(write.pages.len() <= PAGES_PER_WRITE);
            for page in &write.pages {
                assert_eq!(page.first, position, "contiguous");
                assert!(page.len() <= PAGE_EVENTS && !page.is_empty());
                position = page.end();
            }
        }
        assert_eq!(position, 500 + 1_253);
        let moves: Vec<(String, u64, u64)> = writes
            .iter()
            .flat_map(|w| &w.marks)
            .map(|m| (m.stream_id.to_string(), m.from, m.to))
            .collect();
        assert_eq!(
            moves,
            vec![
                ("Account-a".into(), 3, 1_003),
                ("Account-a".into(), 1_003, 1_253),
                ("Account-b".into(), 0, 3),
            ]
        );
    }

    #[test]
    fn many_streams_split_by_marks() {
        let pendings: Vec<Pending> = (0..200)
            .map(|n| pending(&format!("Account-{n}"), 1, 1))
            .collect();
        let writes = plan_writes(0, 0, &pendings);
        let marks: Vec<usize> = writes.iter().map(|w| w.marks.len()).collect();
        assert_eq!(marks, vec![80, 80, 40]);
    }
}
