//! Kept states: the states this process has loaded or written, so the next command on the same
//! stream decides at once and writes, with no read. A starting point, never the truth: the
//! conditional write of the next version proves it was the head, or is refused with the event
//! that beat it; a refusal decided on it is checked on a fresh read. Bounded: past its capacity
//! the least recently used tenth is dropped.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::envelope::StreamHead;
use crate::ids::StreamId;

/// A state as loaded at a version.
#[derive(Clone, Debug)]
pub(crate) struct Kept<A> {
    pub(crate) state: A,
    pub(crate) head: StreamHead,
    pub(crate) occurred_at: Option<DateTime<Utc>>,
}

type Entry = (u64, Arc<dyn Any + Send + Sync>);

/// The kept states of one command service (shared by its clones).
#[derive(Debug)]
pub(crate) struct KeptStates {
    capacity: usize,
    clock: AtomicU64,
    entries: Mutex<HashMap<(TypeId, StreamId), Entry>>,
}

impl KeptStates {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: AtomicU64::new(0),
            entries: Mutex::default(),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The state of `stream_id` as an `A`, if this process loaded it.
    pub(crate) fn get<A: Clone + Send + Sync + 'static>(
        &self,
        stream_id: &StreamId,
    ) -> Option<Kept<A>> {
        let tick = self.tick();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (used, value) = entries.get_mut(&(TypeId::of::<A>(), stream_id.clone()))?;
        *used = tick;
        value.downcast_ref::<Kept<A>>().cloned()
    }

    /// Keeps `kept` unless a newer state of the stream is kept already.
    pub(crate) fn put<A: Clone + Send + Sync + 'static>(
        &self,
        stream_id: &StreamId,
        kept: Kept<A>,
    ) {
        let tick = self.tick();
        let key = (TypeId::of::<A>(), stream_id.clone());
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let newer_kept = entries.get(&key).is_some_and(|(_, existing)| {
            existing
                .downcast_ref::<Kept<A>>()
                .is_some_and(|existing| existing.head.version() > kept.head.version())
        });
        if newer_kept {
            return;
        }
        entries.insert(key, (tick, Arc::new(kept)));
        if entries.len() > self.capacity {
            let mut ticks: Vec<u64> = entries.values().map(|(used, _)| *used).collect();
            ticks.sort_unstable();
            let cutoff = ticks[(self.capacity / 10).max(1).min(ticks.len() - 1)];
            entries.retain(|_, (used, _)| *used >= cutoff);
        }
    }

    /// Entries kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(stream: &StreamId, version: u64) -> StreamHead {
        StreamHead::new(stream.clone(), version, format!("chain{version}"))
    }

    fn kept(stream: &StreamId, version: u64, state: u64) -> Kept<u64> {
        Kept {
            state,
            head: head(stream, version),
            occurred_at: None,
        }
    }

    #[test]
    fn keeps_the_newest_state_per_stream_and_type() {
        let kept_states = KeptStates::new(10);
        let a = StreamId::new("Thing", "a").expect("id");
        kept_states.put(&a, kept(&a, 2, 20));
        kept_states.put(&a, kept(&a, 1, 10));
        assert_eq!(
            kept_states.get::<u64>(&a).map(|c| c.state),
            Some(20),
            "older is ignored"
        );
        kept_states.put(&a, kept(&a, 3, 30));
        assert_eq!(
            kept_states.get::<u64>(&a).map(|c| c.head.version()),
            Some(3)
        );
        assert!(
            kept_states.get::<u32>(&a).is_none(),
            "another type is another entry"
        );
    }

    #[test]
    fn drops_the_least_recently_used_past_capacity() {
        let kept_states = KeptStates::new(10);
        let streams: Vec<StreamId> = (0..10)
            .map(|n| StreamId::new("Thing", &n.to_string()).expect("id"))
            .collect();
        for stream in &streams {
            kept_states.put(stream, kept(stream, 1, 1));
        }
        assert!(
            kept_states.get::<u64>(&streams[0]).is_some(),
            "touched: recently used"
        );
        let extra = StreamId::new("Thing", "extra").expect("id");
        kept_states.put(&extra, kept(&extra, 1, 1));
        assert!(kept_states.len() <= 10);
        assert!(kept_states.get::<u64>(&streams[0]).is_some());
        assert!(kept_states.get::<u64>(&extra).is_some());
        assert!(
            kept_states.get::<u64>(&streams[1]).is_none(),
            "the oldest went"
        );
    }
}
