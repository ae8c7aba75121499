//! A read model in process memory, with the same conditional semantics as the table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{CounterDelta, ReadModelStore, Saved, StoredRow, checked_save};
use crate::error::StoreError;

#[derive(Debug, Default)]
struct State {
    rows: HashMap<String, StoredRow>,
    counters: HashMap<String, BTreeMap<String, i64>>,
}

/// Rows and counters held in memory, for tests and local tools.
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

    async fn save(
        &self,
        key: &str,
        expected: u64,
        row: &StoredRow,
        counters: &[CounterDelta],
    ) -> Result<Saved, StoreError> {
        let merged = checked_save(key, row, &self.key_attribute, counters)?;
        let mut state = self.lock();
        let current = state.rows.get(key).map_or(0, |r| r.version);
        if current != expected {
            return Ok(Saved::Stale);
        }
        state.rows.insert(key.to_owned(), row.clone());
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
        let deleted = state.rows.len() + state.counters.len();
        state.rows.clear();
        state.counters.clear();
        Ok(deleted)
    }
}
