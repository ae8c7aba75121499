//! The event store conformance suite: written once, run against any [`EventStore`].
//!
//! This crate runs it against [`MemoryStore`] and, on an emulator, the DynamoDB store;
//! an implementation of your own passes it too, or says where it differs. Each case is an
//! `async fn(&dyn Harness)`; [`crate::event_store_conformance!`] turns them all into tests.
//! Build the store under test with [`settings`]: the cases rely on its snapshot interval and
//! upcasters.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::store::{
    AppendRequest, AppendResult, AsOf, CurrentVersion, EventStore, ExpectedVersion, NewCommand,
    ReadRange, StreamWrite,
};
use crate::store::{MemoryStore, StoreSettings};
use crate::stored::Document;
use crate::upcast::Upcasters;
use crate::{CommandId, NewEvent, StoreError, StreamId};

/// The cases of the suite, for [`crate::event_store_conformance!`]: `$callback!($args case…)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_suite_cases {
    ([$($callback:tt)*] ($($args:tt)*)) => {
        $($callback)*! { $($args)*
            append_then_read_back expected_versions append_after_head multi_stream_atomicity
            transaction_item_limits invalid_appends_write_nothing large_stream_reads_every_page
            paged_reads tail_reads as_of_reads idempotent_commands upcasting_on_read
            integrity_chain_detects_tampering integrity_chain_verifies_by_ranges
            snapshot_due_marking }
    };
}

mod reads;
mod writes;

pub use reads::*;
pub use writes::*;

/// A raw change to a stored event (its document: what DynamoDB holds as the item).
pub type Edit = Box<dyn for<'a> FnOnce(&'a mut Document) + Send>;

/// A store under test plus what an attacker (or an old deployment) could do to its table.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    fn store(&self) -> Arc<dyn EventStore>;
    /// Rewrites a stored event item, bypassing every check.
    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit);
}

/// The memory store.
#[derive(Debug)]
pub struct MemoryHarness(pub Arc<MemoryStore>);

impl MemoryHarness {
    /// A memory store with the suite's [`settings`].
    pub fn new() -> Self {
        Self(Arc::new(MemoryStore::with_settings(settings())))
    }
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn EventStore> {
        self.0.clone()
    }
    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit) {
        assert!(
            self.0.tamper_with(stream_id, version, edit),
            "no such event"
        );
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("Conformance", id).expect("valid stream id")
}

fn unique_stream() -> StreamId {
    stream(&uuid::Uuid::new_v4().simple().to_string())
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", json!({ "n": n, "label": format!("event {n}") }))
}

fn events(range: std::ops::RangeInclusive<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

/// Appends `events` to `id`, a stream that must not exist yet.
async fn create(store: &dyn EventStore, id: &StreamId, events: Vec<NewEvent>) {
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::NoStream,
            events,
        ))
        .await
        .expect("append");
}

async fn length(store: &dyn EventStore, id: &StreamId) -> usize {
    store.read_all(id, 1).await.expect("read").len()
}

fn written(result: AppendResult) -> crate::store::AppendOutcome {
    match result {
        AppendResult::Written(outcome) => outcome,
        AppendResult::Replayed(record) => panic!("expected a write, got a replay of {record:?}"),
    }
}

/// The registry the upcasting case expects: `Renamed` v1 `{fullname}` → v2 `{first, last}`.
pub fn upcasters() -> Upcasters {
    Upcasters::new().register("Renamed", 1, |mut payload| {
        let full = payload
            .get("fullname")
            .and_then(|v| v.as_str())
            .ok_or("v1 Renamed has no fullname")?
            .to_owned();
        let (first, last) = full.split_once(' ').unwrap_or((full.as_str(), ""));
        payload = json!({ "first": first, "last": last });
        Ok(payload)
    })
}

/// Store settings every harness uses: small snapshot interval for `Snappy`, test upcasters.
pub fn settings() -> StoreSettings {
    let mut settings = StoreSettings::default();
    settings
        .snapshot_policy
        .per_category
        .insert("Snappy".into(), 5);
    settings.upcasters = Arc::new(upcasters());
    settings
}
