//! How a store validates and encodes: limits, snapshot marking, upcasting, command retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::limits::MAX_ITEM_BYTES;
use crate::upcast::Upcasters;

/// Events per category between snapshots; 0 disables snapshots for a category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// The interval for categories not named below.
    pub default_every: u64,
    /// Intervals per category.
    pub per_category: BTreeMap<String, u64>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            default_every: 100,
            per_category: BTreeMap::new(),
        }
    }
}

impl SnapshotPolicy {
    /// The interval for a category.
    pub fn every(&self, category: &str) -> u64 {
        self.per_category
            .get(category)
            .copied()
            .unwrap_or(self.default_every)
    }

    /// Whether going from `before` to `after` events crosses a multiple of the interval.
    pub fn crossed(&self, category: &str, before: u64, after: u64) -> bool {
        match self.every(category) {
            0 => false,
            every => before / every != after / every,
        }
    }
}

/// How a store validates and encodes: limits, snapshot marking, upcasting, command retention.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Largest encoded event item accepted, in bytes (never above DynamoDB's 400 KB).
    pub max_event_bytes: usize,
    /// Where streams are marked snapshot-due.
    pub snapshot_policy: SnapshotPolicy,
    /// Applied to every event read.
    pub upcasters: Arc<Upcasters>,
    /// How long command records (idempotency keys) are kept.
    pub command_ttl: chrono::Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            snapshot_policy: SnapshotPolicy::default(),
            upcasters: Arc::new(Upcasters::new()),
            command_ttl: chrono::Duration::days(7),
        }
    }
}

impl StoreSettings {
    /// The largest event item accepted: the setting, capped at DynamoDB's limit.
    pub fn event_item_limit(&self) -> usize {
        self.max_event_bytes.min(MAX_ITEM_BYTES)
    }
}
