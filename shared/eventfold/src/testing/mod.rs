//! The testing kit (feature `testing`): given/when/then for aggregates and for workflows (with
//! a virtual clock), a store that fails on
//! cue, a toy aggregate, helpers to feed a projector and seed streams, and the conformance
//! suites for event stores and read-model stores. With feature `lambda`, API Gateway requests
//! built like the real ones ([`request`]); with `aws`, tables and a harness on DynamoDB.
//!
//! ```toml
//! [dev-dependencies]
//! eventfold = { version = "…", features = ["testing"] }
//! ```

#[cfg(feature = "aws")]
mod dynamo;
mod faults;
pub mod feed_suite;
mod given;
pub mod read_model_suite;
#[cfg(feature = "lambda")]
pub mod records;
#[cfg(feature = "lambda")]
pub mod request;
pub mod store_suite;
pub mod timers_suite;
pub mod toy;
mod workflow;

#[cfg(feature = "aws")]
pub use dynamo::{DynamoHarness, TableShape, bulk_load, create_table};
pub use faults::{AppendFault, Calls, FaultyStore};
pub use given::{Outcome, Scenario, given};
pub use workflow::{Then, Workflow, workflow};

use crate::error::StoreError;
use crate::projection::{BatchReport, StreamProjector, project_in_order};
use crate::store::{AppendRequest, EventStore, ExpectedVersion, MemoryStore};
use crate::{NewEvent, StreamId};

/// Plans an append as both stores do before any I/O (validation, sizing, encoding, the chain)
/// against the streams' heads, and says how many items it would write: the CPU side of a write,
/// for instruction counts.
#[doc(hidden)]
pub fn plan_append(
    request: AppendRequest,
    heads: Vec<Option<crate::envelope::StreamHead>>,
    settings: &crate::store::StoreSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let prepared = crate::store::plan::PreparedAppend::new(request, settings)?;
    Ok(prepared.plan(heads, settings, now)?.item_count())
}

/// Appends `events` to a new stream, 99 per transaction (DynamoDB's 100 items less the
/// command record): long streams for tests and benchmarks, written without a command service.
pub async fn append_in_chunks(
    store: &dyn EventStore,
    stream_id: &StreamId,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<u64, StoreError> {
    let mut version = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(99).collect();
        let count = chunk.len() as u64;
        store
            .append(AppendRequest::single(
                stream_id.clone(),
                ExpectedVersion::Exact(version),
                chunk,
            ))
            .await?;
        version += count;
    }
    Ok(version)
}

/// Feeds everything a memory store holds through a projector, stream by stream in version
/// order, as the projector function would see it: what a test of a projection calls after its
/// commands ran.
pub async fn project_all(
    store: &MemoryStore,
    projector: &dyn StreamProjector,
) -> Result<BatchReport, StoreError> {
    let upcasters = &store.settings().upcasters;
    let events = store
        .all_events()?
        .into_iter()
        .map(|e| upcasters.upcast(e))
        .collect::<Result<Vec<_>, _>>()?;
    project_in_order(projector, events).await
}

/// Defines one `#[tokio::test]` per case of the event store conformance suite, each on the
/// harness the expression makes (a fresh one per test). Every case the suite has is listed
/// (a test of the library holds the list against the suite), so none is skipped silently.
///
/// ```text
/// eventfold::event_store_conformance!(eventfold::testing::store_suite::MemoryHarness::new());
/// ```
#[macro_export]
macro_rules! event_store_conformance {
    ($harness:expr) => {
        $crate::__store_suite_cases!([$crate::event_store_conformance] (@cases $harness;));
    };
    (@cases $harness:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $harness;
                $crate::testing::store_suite::$case(&harness).await;
            }
        )*
    };
}

/// Defines one `#[tokio::test]` per case of the read-model conformance suite, each on the
/// `Arc<dyn ReadModelStore>` the expression makes (a fresh, empty store per test: one case
/// clears its store). Every case the suite has is listed, so none is skipped silently.
#[macro_export]
macro_rules! read_model_conformance {
    ($store:expr) => {
        $crate::__read_model_suite_cases!([$crate::read_model_conformance] (@cases $store;));
    };
    (@cases $store:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::projection::ReadModelStore> = $store;
                $crate::testing::read_model_suite::$case(store).await;
            }
        )*
    };
}

/// Makes every case of the feed conformance suite a test over a fresh feed from `$feed` (an
/// `Arc<dyn FeedStore>`).
#[macro_export]
macro_rules! feed_conformance {
    ($feed:expr) => {
        $crate::__feed_suite_cases!([$crate::feed_conformance] (@cases $feed;));
    };
    (@cases $feed:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let feed: std::sync::Arc<dyn $crate::feed::FeedStore> = $feed;
                $crate::testing::feed_suite::$case(feed).await;
            }
        )*
    };
}

/// Makes every case of the timer-store conformance suite a test over a fresh store from
/// `$timers` (an `Arc<dyn TimerStore>`).
#[macro_export]
macro_rules! timers_conformance {
    ($timers:expr) => {
        $crate::__timers_suite_cases!([$crate::timers_conformance] (@cases $timers;));
    };
    (@cases $timers:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let timers: std::sync::Arc<dyn $crate::reactor::TimerStore> = $timers;
                $crate::testing::timers_suite::$case(timers).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// The names a cases macro lists.
    macro_rules! names {
        ($($case:ident)*) => {
            &[$(stringify!($case)),*]
        };
    }

    /// Every `pub async fn` of a suite's sources, sorted.
    fn cases_in(sources: &[&str]) -> Vec<String> {
        let mut cases: Vec<String> = sources
            .iter()
            .flat_map(|source| source.lines())
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .map(|rest| rest.split('(').next().unwrap_or_default().to_owned())
            .collect();
        cases.sort();
        cases
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_conformance_macros_list_every_case_of_their_suites() {
        let listed: &[&str] = crate::__store_suite_cases!([names]());
        let store_suite = [
            include_str!("store_suite/mod.rs"),
            include_str!("store_suite/writes.rs"),
            include_str!("store_suite/reads.rs"),
        ];
        assert_eq!(sorted(listed), cases_in(&store_suite));
        let listed: &[&str] = crate::__read_model_suite_cases!([names]());
        let read_model_suite = [
            include_str!("read_model_suite/mod.rs"),
            include_str!("read_model_suite/shared.rs"),
        ];
        assert_eq!(sorted(listed), cases_in(&read_model_suite));
        let listed: &[&str] = crate::__feed_suite_cases!([names]());
        assert_eq!(sorted(listed), cases_in(&[include_str!("feed_suite.rs")]));
        let listed: &[&str] = crate::__timers_suite_cases!([names]());
        assert_eq!(sorted(listed), cases_in(&[include_str!("timers_suite.rs")]));
    }
}
