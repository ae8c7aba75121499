//! One queue per stream for the commands of one process: a command waits for the one before it
//! on the same stream instead of racing it to a conflict. Writers in other processes still meet
//! at the conditional write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::ids::StreamId;

/// Gates past this many are pruned of those no command holds.
const PRUNE_ABOVE: usize = 4096;

/// The gates of one command service (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct StreamGates {
    gates: Mutex<HashMap<StreamId, Weak<tokio::sync::Mutex<()>>>>,
}

/// The gates a command holds until it is done.
pub(crate) type Held = Vec<tokio::sync::OwnedMutexGuard<()>>;

impl StreamGates {
    /// The gates of `streams` (sorted, so multi-stream commands cannot deadlock).
    pub(crate) fn for_streams<'a>(
        &self,
        streams: impl Iterator<Item = &'a StreamId>,
    ) -> Vec<Arc<tokio::sync::Mutex<()>>> {
        let mut streams: Vec<&StreamId> = streams.collect();
        streams.sort_unstable();
        streams.dedup();
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        if gates.len() > PRUNE_ABOVE {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_stream_in_order_and_shared_while_held() {
        let gates = StreamGates::default();
        let a = StreamId::new("Thing", "a").expect("id");
        let b = StreamId::new("Thing", "b").expect("id");
        let first = gates.for_streams([&b, &a, &b].into_iter());
        assert_eq!(first.len(), 2, "duplicates share a gate");
        let again = gates.for_streams(std::iter::once(&a));
        assert!(
            Arc::ptr_eq(&first[0], &again[0]),
            "sorted: a first, and the same gate"
        );
    }
}
