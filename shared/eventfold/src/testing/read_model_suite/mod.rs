//! The read-model conformance suite: written once, run against any [`ReadModelStore`].
//!
//! The store cases pin the contract the projector runtime relies on (conditional writes on
//! the checkpoint, counters atomic with the row, checkpoints without rows, reserved names);
//! the projector cases run the runtime over the store, so two stores cannot disagree on what
//! a projection ends up holding. [`crate::read_model_conformance!`] makes them tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::StoreError;
use crate::projection::{
    CounterDelta, Projected, Projection, Projector, ReadModelStore, Rows, Saved, StoredRow,
    StreamProjector, Update, project_in_order,
};
use crate::store::MemoryStore;
use crate::store::{AppendRequest, EventStore, ExpectedVersion};
use crate::{NewEvent, RecordedEvent, StreamId};

/// The cases of the suite, for [`crate::read_model_conformance!`]: `$callback!($args case…)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __read_model_suite_cases {
    ([$($callback:tt)*] ($($args:tt)*)) => {
        $($callback)*! { $($args)*
            saves_are_conditional_on_the_checkpoint checkpoints_without_rows
            counters_move_with_the_row misuse_is_refused_before_writing values_round_trip
            rows_and_clear an_unused_first_event_moves_only_the_checkpoint duplicates_and_gaps
            unfollowed_streams_write_nothing shared_rows_gather_events_of_many_streams
            shared_rows_ignore_duplicates_and_repair_gaps a_stream_moves_between_shared_rows
            concurrent_streams_meet_at_a_shared_row shared_rows_rebuild_to_the_same_rows }
    };
}

mod shared;

pub use shared::*;

fn unique_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn document(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn row(version: u64, value: Value) -> StoredRow {
    StoredRow {
        version,
        row: Some(document(value)),
    }
}

/// Writes are conditional on the stored checkpoint; a stale write changes nothing.
pub async fn saves_are_conditional_on_the_checkpoint(store: Arc<dyn ReadModelStore>) {
    let key = unique_key();
    let first = row(1, json!({"name": "first"}));
    assert_eq!(
        store.save(&key, 0, &first, &[]).await.expect("save"),
        Saved::Written
    );
    assert_eq!(
        store
            .save(&key, 0, &row(1, json!({"name": "again"})), &[])
            .await
            .expect("save"),
        Saved::Stale,
        "a second first write is stale"
    );
    let third = row(3, json!({"name": "third"}));
    assert_eq!(
        store.save(&key, 1, &third, &[]).await.expect("save"),
        Saved::Written
    );
    assert_eq!(
        store
            .save(&key, 2, &row(4, json!({"name": "lost"})), &[])
            .await
            .expect("save"),
        Saved::Stale
    );
    assert_eq!(store.load(&key).await.expect("load"), Some(third));
    assert_eq!(store.load(&unique_key()).await.expect("load"), None);
}

/// A checkpoint can be stored without a row, and a row can follow it.
pub async fn checkpoints_without_rows(store: Arc<dyn ReadModelStore>) {
    let key = unique_key();
    let bare = StoredRow {
        version: 1,
        row: None,
    };
    assert_eq!(
        store.save(&key, 0, &bare, &[]).await.expect("save"),
        Saved::Written
    );
    assert_eq!(store.load(&key).await.expect("load"), Some(bare));
    let full = row(2, json!({"name": "now a row"}));
    assert_eq!(
        store.save(&key, 1, &full, &[]).await.expect("save"),
        Saved::Written
    );
    assert_eq!(store.load(&key).await.expect("load"), Some(full));
}

/// Counters move with the row write, merged, and not at all when the write is stale.
pub async fn counters_move_with_the_row(store: Arc<dyn ReadModelStore>) {
    let key = unique_key();
    let totals = format!("#totals-{}", unique_key());
    let deltas = [
        CounterDelta::new(&totals, "opened", 1),
        CounterDelta::new(&totals, "held_EUR", 250),
        CounterDelta::new(&totals, "held_EUR", -50),
    ];
    store
        .save(&key, 0, &row(1, json!({"n": 1})), &deltas)
        .await
        .expect("save");
    let stale = store
        .save(&key, 0, &row(1, json!({"n": 1})), &deltas)
        .await
        .expect("save");
    assert_eq!(stale, Saved::Stale);
    let expected = BTreeMap::from([("held_EUR".to_owned(), 200), ("opened".to_owned(), 1)]);
    assert_eq!(store.counters(&totals).await.expect("counters"), expected);
    assert!(
        store
            .counters(&unique_key())
            .await
            .expect("counters")
            .is_empty()
    );
}

/// Reserved field names, empty rows, keys outside their namespaces and a counter row that is
/// the row itself are refused, and nothing is written.
pub async fn misuse_is_refused_before_writing(store: Arc<dyn ReadModelStore>) {
    let key = unique_key();
    let key_attribute = store.key_attribute().to_owned();
    for bad in [
        json!({"version": 3}),
        json!({ key_attribute.clone(): "x" }),
        json!({}),
    ] {
        let error = store
            .save(&key, 0, &row(1, bad.clone()), &[])
            .await
            .expect_err("refused");
        assert!(matches!(error, StoreError::Misuse(_)), "{bad}: {error:?}");
    }
    let error = store
        .save(
            &key,
            0,
            &row(1, json!({"n": 1})),
            &[CounterDelta::new(&key, "n", 1)],
        )
        .await
        .expect_err("refused");
    assert!(matches!(error, StoreError::Misuse(_)), "{error:?}");
    for bad_key in [format!("#{key}"), format!("${key}"), String::new()] {
        let error = store
            .save(&bad_key, 0, &row(1, json!({"n": 1})), &[])
            .await
            .expect_err("refused");
        assert!(
            matches!(error, StoreError::Misuse(_)),
            "{bad_key:?}: {error:?}"
        );
    }
    assert_eq!(store.load(&key).await.expect("load"), None);
}

/// Values of every JSON kind round-trip through the store.
pub async fn values_round_trip(store: Arc<dyn ReadModelStore>) {
    let key = unique_key();
    let stored = row(
        7,
        json!({
            "text": "Zoë, \"quoted\"",
            "empty": "",
            "negative": -9_007_199_254_740_991_i64,
            "fraction": 2.5,
            "flag": false,
            "nothing": null,
            "list": [1, "two", {"three": 3}],
            "nested": {"deeper": {"deepest": true}},
        }),
    );
    store.save(&key, 0, &stored, &[]).await.expect("save");
    assert_eq!(store.load(&key).await.expect("load"), Some(stored));
}

/// `rows` lists rows and checkpoints but not counter rows; `clear` empties everything.
pub async fn rows_and_clear(store: Arc<dyn ReadModelStore>) {
    let (a, b) = (unique_key(), unique_key());
    let totals = format!("#totals-{}", unique_key());
    store
        .save(
            &a,
            0,
            &row(1, json!({"n": 1})),
            &[CounterDelta::new(&totals, "n", 1)],
        )
        .await
        .expect("save");
    store
        .save(
            &b,
            0,
            &StoredRow {
                version: 2,
                row: None,
            },
            &[],
        )
        .await
        .expect("save");
    let rows = store.rows().await.expect("rows");
    assert_eq!(rows.get(&a), Some(&row(1, json!({"n": 1}))));
    assert_eq!(rows.get(&b).map(|r| r.version), Some(2));
    assert!(!rows.contains_key(&totals), "counter rows are not rows");
    assert!(store.clear().await.expect("clear") >= 3);
    assert!(store.rows().await.expect("rows").is_empty());
    assert!(store.counters(&totals).await.expect("counters").is_empty());
}

/// A projection for the suite: counts the `Counted` events of `Tally` streams, moves a
/// `#tally` counter, and does not use any other event type.
#[derive(Debug)]
pub struct Tally;

/// [`Tally`]'s row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TallyRow {
    /// `Counted` events applied.
    pub count: u64,
    /// The last one's `n`.
    pub last_n: u64,
}

impl Projection for Tally {
    type Row = TallyRow;

    fn name(&self) -> &str {
        "tally"
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == "Tally"
    }

    fn row_key(&self, event: &RecordedEvent, _previous: Option<&str>) -> Option<String> {
        Some(event.stream_id.entity_id().to_owned())
    }

    fn apply(
        &self,
        row: Option<TallyRow>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<TallyRow>>, StoreError> {
        if event.event_type != "Counted" {
            return Ok(None);
        }
        let n = event.payload["n"]
            .as_u64()
            .ok_or_else(|| StoreError::corrupt("Counted without n"))?;
        let count = row.map_or(0, |r| r.count) + 1;
        Ok(Some(Update {
            row: Some(TallyRow { count, last_n: n }),
            counters: vec![CounterDelta::new("#tally", "counted", 1)],
        }))
    }
}

async fn tally_stream(store: &MemoryStore, types: &[&str]) -> Vec<RecordedEvent> {
    let stream = StreamId::new("Tally", &unique_key()).expect("id");
    let events = types
        .iter()
        .enumerate()
        .map(|(n, t)| NewEvent::new(*t, json!({ "n": n as u64 + 1 })))
        .collect();
    store
        .append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::NoStream,
            events,
        ))
        .await
        .expect("append");
    store.read_all(&stream, 1).await.expect("read")
}

/// An event type the projection does not use, at version 1, moves only the checkpoint: the
/// next event applies, it is not a gap. (The DynamoDB accounts store once wrote nothing for
/// it, the memory one reported a gap, and the projector failed on the next event.)
pub async fn an_unused_first_event_moves_only_the_checkpoint(store: Arc<dyn ReadModelStore>) {
    let events = Arc::new(MemoryStore::new());
    let projector = Projector::new(Tally, store.clone(), events.clone());
    let stream = tally_stream(&events, &["Opened", "Counted", "Counted"]).await;
    let key = stream[0].stream_id.entity_id().to_owned();
    for event in &stream {
        projector.project(event).await.expect("projects");
    }
    let loaded = store.load(&key).await.expect("load").expect("checkpoint");
    assert_eq!(loaded.version, 3);
    assert_eq!(
        projector.row(&key).await.expect("row"),
        Some((
            3,
            TallyRow {
                count: 2,
                last_n: 3
            }
        ))
    );
    let only_unused = tally_stream(&events, &["Opened"]).await;
    assert!(matches!(
        projector.project(&only_unused[0]).await.expect("projects"),
        Projected::Skipped(_)
    ));
    let bare = store
        .load(only_unused[0].stream_id.entity_id())
        .await
        .expect("load")
        .expect("checkpoint");
    assert_eq!((bare.version, bare.row), (1, None));
}

/// Duplicates change nothing, gaps are repaired from the events table, and counters count
/// each event once.
pub async fn duplicates_and_gaps(store: Arc<dyn ReadModelStore>) {
    let events = Arc::new(MemoryStore::new());
    let projector = Projector::new(Tally, store.clone(), events.clone());
    let stream = tally_stream(&events, &["Counted"; 5]).await;
    let key = stream[0].stream_id.entity_id().to_owned();
    let before = store.counters("#tally").await.expect("counters");
    let counted = |c: &BTreeMap<String, i64>| c.get("counted").copied().unwrap_or(0);
    assert_eq!(
        projector.project(&stream[0]).await.expect("v1"),
        Projected::Applied
    );
    assert_eq!(
        projector.project(&stream[0]).await.expect("v1"),
        Projected::Duplicate
    );
    assert_eq!(
        projector.project(&stream[3]).await.expect("v4"),
        Projected::Repaired { missing: 2 }
    );
    let outcomes = projector
        .project_stream(&stream[1..])
        .await
        .into_result()
        .expect("batch");
    assert_eq!(
        outcomes,
        vec![
            Projected::Duplicate,
            Projected::Duplicate,
            Projected::Duplicate,
            Projected::Applied
        ]
    );
    assert_eq!(
        projector.row(&key).await.expect("row"),
        Some((
            5,
            TallyRow {
                count: 5,
                last_n: 5
            }
        ))
    );
    let after = store.counters("#tally").await.expect("counters");
    assert_eq!(counted(&after) - counted(&before), 5);
}

/// Streams the projection does not follow are skipped and write nothing.
pub async fn unfollowed_streams_write_nothing(store: Arc<dyn ReadModelStore>) {
    let events = Arc::new(MemoryStore::new());
    let projector = Projector::new(Tally, store.clone(), events.clone());
    let other = StreamId::new("Other", &unique_key()).expect("id");
    events
        .append(AppendRequest::single(
            other.clone(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Counted", json!({"n": 1}))],
        ))
        .await
        .expect("append");
    let event = &events.read_all(&other, 1).await.expect("read")[0];
    assert!(matches!(
        projector.project(event).await.expect("projects"),
        Projected::Skipped(_)
    ));
    assert_eq!(store.load(other.entity_id()).await.expect("load"), None);
}
