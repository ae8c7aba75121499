//! A read model in process memory, with the same conditional semantics as the table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::store::{Checkpoint, Commit, ReadModelStore, Saved, StoredRow, check_commit};
use crate::error::StoreError;
use crate::ids::StreamId;

#[derive(Debug, Default)]
struct State {
    rows: HashMap<String, StoredRow>,
    checkpoints: HashMap<StreamId, Checkpoint>,
    counters: HashMap<String, BTreeMap<String, i64>>,
}

/// Rows, counters and checkpoints held in memory, for tests and local tools.
#[derive(Debug)]
pub struct MemoryReadModel {
    key_attribute: String,
    state: Mutex<State>,
}

impl MemoryReadModel {
    /// An empty read model whose rows are keyed by `key_attribute` (reserved in row documents,
    /// as on the table).
    pub fn new(key_attribute: impl Into<String>) -> Self {
        Self {
            key_attribute: key_attribute.into(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Writes mutate only after every check, so a poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ReadModelStore for MemoryReadModel {
    fn key_attribute(&self) -> &str {
        &self.key_attribute
    }

    async fn load(&self, key: &str) -> Result<Option<StoredRow>, StoreError> {
        Ok(self.lock().rows.get(key).cloned())
    }

    async fn load_checkpoint(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(stream_id).cloned())
    }

    async fn commit(&self, commit: &Commit) -> Result<Saved, StoreError> {
        let merged = check_commit(commit, &self.key_attribute)?;
        let mut state = self.lock();
        let rows_current = commit
            .rows
            .iter()
            .all(|w| state.rows.get(&w.key).map_or(0, |r| r.version) == w.expected);
        let checkpoint_current = commit.checkpoint.as_ref().is_none_or(|w| {
            state.checkpoints.get(&w.stream_id).map_or(0, |c| c.version) == w.expected
        });
        if !rows_current || !checkpoint_current {
            return Ok(Saved::Stale);
        }
        for write in &commit.rows {
            state.rows.insert(write.key.clone(), write.row.clone());
        }
        if let Some(write) = &commit.checkpoint {
            state
                .checkpoints
                .insert(write.stream_id.clone(), write.checkpoint.clone());
        }
        for (counter_key, deltas) in merged {
            let counters = state.counters.entry(counter_key.to_owned()).or_default();
            for (name, delta) in deltas {
                *counters.entry(name.to_owned()).or_default() += delta;
            }
        }
        Ok(Saved::Written)
    }

    async fn counters(&self, key: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        Ok(self.lock().counters.get(key).cloned().unwrap_or_default())
    }

    async fn rows(&self) -> Result<BTreeMap<String, StoredRow>, StoreError> {
        Ok(self
            .lock()
            .rows
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn clear(&self) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let deleted = state.rows.len() + state.counters.len() + state.checkpoints.len();
        *state = State::default();
        Ok(deleted)
    }
}
