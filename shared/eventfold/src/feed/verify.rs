//! Checking the feed against the events table: every event once, each stream in order, every
//! partition without gaps, every mark where the pages say.

use std::collections::BTreeMap;

use super::{FeedStore, partition_of};
use crate::error::StoreError;
use crate::ids::StreamId;

/// What is wrong with a feed, each finding naming where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedCheck {
    /// Events indexed, all partitions together.
    pub events: u64,
    /// Streams indexed.
    pub streams: usize,
    /// Streams whose newest events are not indexed: (stream, first version missing, head).
    pub missing: Vec<(StreamId, u64, u64)>,
    /// Everything else found wrong (gaps between pages, a stream's versions out of order or
    /// twice, a stream in the wrong partition, a mark that disagrees with the pages, events
    /// indexed that the events table does not hold): nothing the indexer does, so nothing it
    /// repairs.
    pub broken: Vec<String>,
}

impl FeedCheck {
    /// Whether the feed holds exactly the events table's events.
    pub fn is_sound(&self) -> bool {
        self.missing.is_empty() && self.broken.is_empty()
    }
}

/// Reads the whole feed and compares it with `heads`, every stream's newest version in the
/// events table (streams appended to while this runs may show as missing: check again).
pub async fn check_feed(
    feed: &dyn FeedStore,
    heads: &BTreeMap<StreamId, u64>,
) -> Result<FeedCheck, StoreError> {
    let mut check = FeedCheck::default();
    let mut indexed: BTreeMap<StreamId, u64> = BTreeMap::new();
    let partitions = feed.partitions();
    // The marks first: a mark moves with its pages, atomically, so pages read afterwards hold
    // at least what each mark says, even while the indexer writes.
    let marks = feed.all_marks().await?;
    for partition in 0..partitions {
        let mut end = 0;
        for page in feed.read_pages(partition, 0, usize::MAX).await? {
            if page.first != end {
                check.broken.push(format!(
                    "partition {partition}: positions {end} to {} are missing",
                    page.first
                ));
            }
            end = page.end();
            for entry in page.entries() {
                check.events += 1;
                let last = indexed.entry(entry.stream_id.clone()).or_insert(0);
                if entry.version != *last + 1 {
                    check.broken.push(format!(
                        "partition {partition} position {}: {} version {} follows version {}",
                        entry.position, entry.stream_id, entry.version, last
                    ));
                }
                *last = (*last).max(entry.version);
                let home = partition_of(&entry.stream_id, partitions);
                if home != partition {
                    check.broken.push(format!(
                        "{} is indexed in partition {partition}, not its own {home}",
                        entry.stream_id
                    ));
                }
            }
        }
    }
    check.streams = indexed.len();
    for (stream, &mark) in &marks {
        let pages = indexed.get(stream).copied().unwrap_or(0);
        if mark > pages {
            check.broken.push(format!(
                "{stream}'s mark says version {mark}, its pages end at {pages}"
            ));
        }
    }
    for (stream, &head) in heads {
        let done = indexed.get(stream).copied().unwrap_or(0);
        if done < head {
            check.missing.push((stream.clone(), done + 1, head));
        }
    }
    for (stream, &done) in &indexed {
        let head = heads.get(stream).copied().unwrap_or(0);
        if done > head {
            check.broken.push(format!(
                "{stream} is indexed to version {done}, the events table holds {head}"
            ));
        }
    }
    Ok(check)
}
