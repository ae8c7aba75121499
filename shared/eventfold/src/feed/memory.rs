//! A feed kept in process, for tests and local tools: the same rules as the table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Checkpoint, FeedStore, MAX_PARTITIONS, Page, PageWrite, Parked, Written};
use crate::error::StoreError;
use crate::ids::StreamId;

#[derive(Debug, Default)]
struct State {
    /// Each partition's pages by first position.
    pages: HashMap<u32, BTreeMap<u64, Page>>,
    marks: BTreeMap<StreamId, u64>,
    checkpoints: BTreeMap<(String, u32), Checkpoint>,
    parked: BTreeMap<String, BTreeMap<StreamId, Parked>>,
    partitions: Option<u32>,
}

/// A feed in memory.
#[derive(Debug)]
pub struct MemoryFeed {
    partitions: u32,
    state: Mutex<State>,
}

impl MemoryFeed {
    /// An empty feed of `partitions` partitions (1 to [`MAX_PARTITIONS`]).
    pub fn new(partitions: u32) -> Self {
        Self {
            partitions: partitions.clamp(1, MAX_PARTITIONS),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("feed state")
    }
}

/// Checks what every store checks before a write: one partition, pages contiguous and not
/// empty, marks moving forward.
pub(crate) fn check_write(write: &PageWrite, partitions: u32) -> Result<(), StoreError> {
    if write.partition >= partitions {
        return Err(StoreError::misuse(format!(
            "partition {} of a feed of {partitions}",
            write.partition
        )));
    }
    let mut expected = None;
    for page in &write.pages {
        if page.partition != write.partition || page.is_empty() {
            return Err(StoreError::misuse(
                "a page write holds non-empty pages of its own partition",
            ));
        }
        if expected.is_some_and(|end| end != page.first) {
            return Err(StoreError::misuse("a page write's pages are contiguous"));
        }
        expected = Some(page.end());
    }
    if write.marks.iter().any(|mark| mark.to <= mark.from) {
        return Err(StoreError::misuse("a mark only moves forward"));
    }
    Ok(())
}

#[async_trait]
impl FeedStore for MemoryFeed {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn record_partitions(&self) -> Result<u32, StoreError> {
        Ok(*self.state().partitions.get_or_insert(self.partitions))
    }

    async fn marks(&self, streams: &[StreamId]) -> Result<HashMap<StreamId, u64>, StoreError> {
        // Reads yield, as a table's do: writers in one process interleave between a read and
        // the write it informs, and race as they do on DynamoDB.
        tokio::task::yield_now().await;
        let state = self.state();
        Ok(streams
            .iter()
            .filter_map(|stream| Some((stream.clone(), *state.marks.get(stream)?)))
            .collect())
    }

    async fn all_marks(&self) -> Result<BTreeMap<StreamId, u64>, StoreError> {
        Ok(self.state().marks.clone())
    }

    async fn end(&self, partition: u32) -> Result<u64, StoreError> {
        tokio::task::yield_now().await;
        Ok(self
            .state()
            .pages
            .get(&partition)
            .and_then(|pages| pages.values().next_back())
            .map_or(0, Page::end))
    }

    async fn write(&self, write: &PageWrite) -> Result<Written, StoreError> {
        check_write(write, self.partitions)?;
        let mut state = self.state();
        let pages = state.pages.entry(write.partition).or_default();
        // A page is written only where none starts (the table's condition): contiguity is
        // the writers' to keep, by starting at the end they read.
        if write
            .pages
            .iter()
            .any(|page| pages.contains_key(&page.first))
        {
            return Ok(Written::Stale);
        }
        let marks_moved = write
            .marks
            .iter()
            .all(|mark| state.marks.get(&mark.stream_id).copied().unwrap_or(0) == mark.from);
        if !marks_moved {
            return Ok(Written::Stale);
        }
        let pages = state.pages.entry(write.partition).or_default();
        for page in &write.pages {
            pages.insert(page.first, page.clone());
        }
        for mark in &write.marks {
            state.marks.insert(mark.stream_id.clone(), mark.to);
        }
        Ok(Written::Written)
    }

    async fn read_pages(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Page>, StoreError> {
        let state = self.state();
        let Some(pages) = state.pages.get(&partition) else {
            return Ok(Vec::new());
        };
        // The page holding `from` starts at most a page's length before it.
        let earliest = from.saturating_sub(super::PAGE_EVENTS - 1);
        let mut read = Vec::new();
        let mut held = 0;
        for page in pages.range(earliest..).map(|(_, page)| page) {
            if page.end() <= from {
                continue;
            }
            held += page.end() - page.first.max(from);
            read.push(page.clone());
            if held >= limit as u64 {
                break;
            }
        }
        Ok(read)
    }

    async fn acquire(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<u64>, StoreError> {
        tokio::task::yield_now().await;
        let mut state = self.state();
        let key = (consumer.to_owned(), partition);
        let held = state
            .checkpoints
            .get(&key)
            .is_some_and(|c| c.owner != owner && c.lease_until >= now);
        if held {
            return Ok(None);
        }
        let checkpoint = state.checkpoints.entry(key).or_insert(Checkpoint {
            partition,
            position: 0,
            owner: owner.to_owned(),
            lease_until: until,
        });
        checkpoint.owner = owner.to_owned();
        checkpoint.lease_until = until;
        Ok(Some(checkpoint.position))
    }

    async fn advance(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        from: u64,
        to: u64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.checkpoints.get_mut(&(consumer.to_owned(), partition)) {
            Some(checkpoint) if checkpoint.owner == owner && checkpoint.position == from => {
                checkpoint.position = to;
                checkpoint.lease_until = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn checkpoints(&self, consumer: &str) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self
            .state()
            .checkpoints
            .iter()
            .filter(|((name, _), _)| name == consumer)
            .map(|(_, checkpoint)| checkpoint.clone())
            .collect())
    }

    async fn parked(&self, consumer: &str) -> Result<BTreeMap<StreamId, Parked>, StoreError> {
        Ok(self
            .state()
            .parked
            .get(consumer)
            .cloned()
            .unwrap_or_default())
    }

    async fn park(&self, consumer: &str, parked: &Parked, replace: bool) -> Result<(), StoreError> {
        let mut state = self.state();
        let streams = state.parked.entry(consumer.to_owned()).or_default();
        if replace || !streams.contains_key(&parked.stream_id) {
            streams.insert(parked.stream_id.clone(), parked.clone());
        }
        Ok(())
    }

    async fn parking_consumers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state().parked.keys().cloned().collect())
    }

    async fn request_redrive(
        &self,
        consumer: &str,
        stream_id: &StreamId,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let parked = state
            .parked
            .get_mut(consumer)
            .and_then(|parked| parked.get_mut(stream_id));
        Ok(parked.map(|parked| parked.redrive = true).is_some())
    }

    async fn unpark(&self, consumer: &str, stream_id: &StreamId) -> Result<(), StoreError> {
        if let Some(parked) = self.state().parked.get_mut(consumer) {
            parked.remove(stream_id);
        }
        Ok(())
    }
}
