//! Feed consumers on the memory stores: a projection catching up from the feed while commands
//! continue, an instance killed mid-batch, and instances sharing partitions by leases.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventfold::feed::{
    FeedConsumer, FeedHandler, FeedStore, Indexer, MemoryFeed, Projecting, Rejected,
};
use eventfold::projection::{
    MemoryReadModel, Projection, Projector, ReadModelStore, StreamProjector, Update,
    project_in_order,
};
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion, MemoryStore, ReadRange};
use eventfold::{NewEvent, RecordedEvent, StoreError, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How many events each stream has had applied: a row per stream. A `Poison` event cannot be
/// applied until `cured`.
#[derive(Debug, Default)]
struct Applied {
    cured: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AppliedRow {
    events: u64,
}

impl Projection for Applied {
    type Row = AppliedRow;

    fn name(&self) -> &str {
        "applied"
    }

    fn follows(&self, _: &StreamId) -> bool {
        true
    }

    fn row_key(&self, event: &RecordedEvent, _: Option<&str>) -> Option<String> {
        Some(event.stream_id.to_string())
    }

    fn apply(
        &self,
        row: Option<AppliedRow>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<AppliedRow>>, StoreError> {
        let cured = self.cured.load(std::sync::atomic::Ordering::SeqCst);
        if event.event_type == "Poison" && !cured {
            return Err(StoreError::corrupt("a poison event"));
        }
        let events = row.map_or(0, |r| r.events) + 1;
        Ok(Some(Update {
            row: Some(AppliedRow { events }),
            counters: Vec::new(),
        }))
    }
}

/// An event store, its feed (indexed as the publisher would), and writes to many streams.
struct World {
    store: Arc<MemoryStore>,
    feed: Arc<MemoryFeed>,
    indexer: Indexer,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let feed = Arc::new(MemoryFeed::new(4));
        let indexer = Indexer::new(feed.clone(), store.clone());
        Self {
            store,
            feed,
            indexer,
        }
    }

    /// `rounds` rounds of one event to each of `streams` streams, indexed 100 at a time.
    async fn write(&self, streams: usize, rounds: usize) -> Vec<RecordedEvent> {
        let mut written = Vec::new();
        for _ in 0..rounds {
            for n in 0..streams {
                let id = StreamId::new("Counter", &format!("c{n}")).expect("id");
                let head = self.store.read_head(&id).await.expect("head");
                let version = head.map_or(0, |h| h.version());
                self.store
                    .append(AppendRequest::single(
                        id.clone(),
                        ExpectedVersion::Exact(version),
                        vec![NewEvent::new("Added", json!({"n": 1}))],
                    ))
                    .await
                    .expect("append");
                let read = self
                    .store
                    .read_raw(&id, ReadRange::from(version + 1))
                    .await
                    .expect("read");
                written.extend(read.events);
            }
        }
        for batch in written.chunks(100) {
            self.indexer.index(batch).await.expect("indexed");
        }
        written
    }

    /// Every stream's length: what each row must count.
    async fn fold(&self) -> BTreeMap<String, u64> {
        let mut lengths = BTreeMap::new();
        for event in self.store.all_events().expect("events") {
            *lengths.entry(event.stream_id.to_string()).or_insert(0) += 1;
        }
        lengths
    }
}

async fn rows(read_model: &MemoryReadModel) -> BTreeMap<String, u64> {
    read_model
        .rows()
        .await
        .expect("rows")
        .into_iter()
        .filter_map(|(key, stored)| {
            let row: AppliedRow =
                serde_json::from_value(serde_json::Value::Object(stored.row?)).expect("a row");
            Some((key, row.events))
        })
        .collect()
}

fn projector(world: &World, read_model: &Arc<MemoryReadModel>) -> Arc<dyn StreamProjector> {
    Arc::new(Projector::new(
        Applied::default(),
        read_model.clone(),
        world.store.clone(),
    ))
}

/// A projection made after 10,000 events exist catches up from the feed in feed order while
/// commands go on, then follows the stream: events the stream delivers that the feed already
/// applied (and the reverse) change nothing, and its rows equal a fold of every stream.
#[tokio::test]
async fn a_projection_made_after_10000_events_catches_up_from_the_feed_then_follows() {
    let world = Arc::new(World::new());
    world.write(200, 50).await;
    assert_eq!(world.store.all_events().expect("events").len(), 10_000);
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let projector = projector(&world, &read_model);
    let consumer = FeedConsumer::new(
        "applied",
        world.feed.clone(),
        world.store.clone(),
        Arc::new(Projecting(projector.clone())),
    )
    .expect("a consumer");
    let writer = {
        let world = world.clone();
        tokio::spawn(async move { world.write(30, 10).await })
    };
    let caught_up = consumer.catch_up().await.expect("caught up");
    let live = writer.await.expect("written");
    assert!(caught_up.applied >= 10_000, "{caught_up:?}");
    // From here the stream's reader delivers what is appended: the 300 events written during
    // the catch-up, some of which the feed applied already.
    project_in_order(projector.as_ref(), live)
        .await
        .expect("followed");
    assert_eq!(rows(&read_model).await, world.fold().await);
    consumer.catch_up().await.expect("nothing left");
    assert_eq!(rows(&read_model).await, world.fold().await, "still exact");
    let lag = consumer.lag().await.expect("lag");
    assert_eq!(lag.positions, 0);
}

/// Applies half a batch, then fails, once: an instance killed mid-batch.
#[derive(Debug)]
struct DiesMidBatch {
    inner: Projecting,
    died: Mutex<bool>,
}

#[async_trait]
impl FeedHandler for DiesMidBatch {
    async fn apply(&self, mut events: Vec<RecordedEvent>) -> Result<(), Rejected> {
        let dies = !std::mem::replace(&mut *self.died.lock().expect("died"), true);
        if dies {
            events.truncate(events.len() / 2);
            self.inner.apply(events).await?;
            return Err(StoreError::misuse("killed mid-batch").into());
        }
        self.inner.apply(events).await
    }
}

/// The instance dies after applying half its batch, before its checkpoint moved; a new one,
/// once the lease ran out, applies that batch again and goes on: every row exact, nothing
/// lost, nothing counted twice.
#[tokio::test]
async fn an_instance_killed_mid_batch_is_resumed_from_its_checkpoint() {
    let world = World::new();
    world.write(20, 20).await;
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let projector = projector(&world, &read_model);
    let dying = FeedConsumer::new(
        "applied",
        world.feed.clone(),
        world.store.clone(),
        Arc::new(DiesMidBatch {
            inner: Projecting(projector.clone()),
            died: Mutex::new(false),
        }),
    )
    .expect("a consumer")
    .with_batch(30)
    .with_lease(Duration::from_millis(100));
    let killed = dying.poll().await.expect_err("killed");
    assert!(killed.to_string().contains("killed mid-batch"));
    assert!(!rows(&read_model).await.is_empty(), "half a batch applied");
    let restarted = FeedConsumer::new(
        "applied",
        world.feed.clone(),
        world.store.clone(),
        Arc::new(Projecting(projector)),
    )
    .expect("a consumer")
    .with_batch(30);
    // The dead instance's lease still holds its partition for a while.
    restarted.catch_up().await.expect("the others");
    assert!(restarted.lag().await.expect("lag").positions > 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    restarted.catch_up().await.expect("caught up");
    assert_eq!(restarted.lag().await.expect("lag").positions, 0);
    assert_eq!(rows(&read_model).await, world.fold().await);
}

/// Records which events it was given.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<(String, u64)>>);

#[async_trait]
impl FeedHandler for Recording {
    async fn apply(&self, events: Vec<RecordedEvent>) -> Result<(), Rejected> {
        let mut seen = self.0.lock().expect("seen");
        seen.extend(events.iter().map(|e| (e.stream_id.to_string(), e.version)));
        Ok(())
    }
}

/// Two instances polling in turn end up with two partitions each and never both apply one
/// batch; when one stops, the other takes its partitions once their leases run out, and every
/// event was applied exactly once.
#[tokio::test]
async fn instances_share_partitions_and_survive_one_stopping() {
    let world = World::new();
    world.write(40, 5).await;
    let feed: Arc<dyn FeedStore> = world.feed.clone();
    let instance = |handler: &Arc<Recording>| {
        FeedConsumer::new("shared", feed.clone(), world.store.clone(), handler.clone())
            .expect("a consumer")
            .with_batch(10)
            .with_lease(Duration::from_millis(200))
    };
    let (seen_a, seen_b) = (
        Arc::new(Recording::default()),
        Arc::new(Recording::default()),
    );
    let (a, b) = (instance(&seen_a), instance(&seen_b));
    for _ in 0..40 {
        a.poll().await.expect("a");
        b.poll().await.expect("b");
    }
    assert_eq!(a.lag().await.expect("lag").positions, 0);
    let (held_a, held_b) = (a.held(), b.held());
    assert_eq!(
        (held_a.len(), held_b.len()),
        (2, 2),
        "{held_a:?} {held_b:?}"
    );
    assert!(held_a.iter().all(|p| !held_b.contains(p)), "disjoint");

    // b stops polling; what is written next waits in b's partitions until its leases end.
    world.write(40, 2).await;
    a.poll().await.expect("a");
    a.poll().await.expect("a");
    assert!(
        a.lag().await.expect("lag").positions > 0,
        "b's partitions wait"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    a.catch_up().await.expect("a takes over");
    assert_eq!(a.held().len(), 4);
    assert_eq!(a.lag().await.expect("lag").positions, 0);

    let mut all: Vec<(String, u64)> = seen_a.0.lock().expect("a").clone();
    all.extend(seen_b.0.lock().expect("b").iter().cloned());
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no event applied twice");
    assert_eq!(total, world.store.all_events().expect("events").len());
}

/// A poison event parks only its stream: the stream's later events are held (its row stays
/// before the poison), every other stream is current; after the fix, a redrive applies the
/// parked events in order, and the stream follows the feed again.
#[tokio::test]
async fn a_poison_event_parks_only_its_stream_until_redriven() {
    let world = World::new();
    world.write(6, 3).await;
    let sick = StreamId::new("Counter", "c2").expect("id");
    let poison = world
        .store
        .append(AppendRequest::single(
            sick.clone(),
            ExpectedVersion::Exact(3),
            vec![NewEvent::new("Poison", json!({}))],
        ))
        .await
        .expect("appended");
    drop(poison);
    let poisoned = world.store.read_all(&sick, 4).await.expect("read");
    world.indexer.index(&poisoned).await.expect("indexed");
    world.write(6, 2).await;
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let cured = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let projector: Arc<dyn StreamProjector> = Arc::new(Projector::new(
        Applied {
            cured: cured.clone(),
        },
        read_model.clone(),
        world.store.clone(),
    ));
    let consumer = FeedConsumer::new(
        "applied",
        world.feed.clone(),
        world.store.clone(),
        Arc::new(Projecting(projector)),
    )
    .expect("a consumer")
    .with_batch(7);
    let report = consumer.catch_up().await.expect("caught up");
    assert_eq!(report.parked, 1, "{report:?}");
    assert_eq!(
        report.held, 3,
        "the poison and its two successors held: {report:?}"
    );
    assert_eq!(consumer.lag().await.expect("lag").positions, 0);
    let parked = world.feed.parked("applied").await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[&sick].version, parked[&sick].redrive), (4, false));
    assert!(parked[&sick].error.contains("a poison event"));
    let mut expected = world.fold().await;
    expected.insert(sick.to_string(), 3);
    assert_eq!(
        rows(&read_model).await,
        expected,
        "only the sick stream behind"
    );

    // Fixed, and redriven: the stream's events from the poison on, in order; then it follows.
    cured.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        world
            .feed
            .request_redrive("applied", &sick)
            .await
            .expect("asked")
    );
    let report = consumer.poll().await.expect("redriven");
    assert_eq!(report.redriven, 1);
    assert!(
        world
            .feed
            .parked("applied")
            .await
            .expect("parked")
            .is_empty()
    );
    world.write(6, 1).await;
    consumer.catch_up().await.expect("follows");
    assert_eq!(
        rows(&read_model).await,
        world.fold().await,
        "every stream exact"
    );
}

/// Stream records through a projector function in batches of `size`, none failing: how many
/// streams it parked and events it held.
async fn without_failures(
    function: &eventfold::lambda::consumers::ProjectorFunction,
    records: &[aws_lambda_events::event::dynamodb::EventRecord],
    size: usize,
) -> (usize, usize) {
    let (mut parked, mut held) = (0, 0);
    for batch in records.chunks(size) {
        let report = function.process(batch).await;
        assert_eq!(report.first_failure, None, "{report:?}");
        (parked, held) = (parked + report.parked, held + report.held);
    }
    (parked, held)
}

/// Every stream's row is its fold, but `sick`'s, which stopped at `applied` events.
async fn only_behind(world: &World, read_model: &MemoryReadModel, sick: &StreamId, applied: u64) {
    let mut expected = world.fold().await;
    expected.insert(sick.to_string(), applied);
    assert_eq!(
        rows(read_model).await,
        expected,
        "only the sick stream behind"
    );
}

/// The same on the events stream's reader: a projector function with a feed to park in
/// answers every batch without a failure (nothing to the dead-letter queue), holds the poison
/// and what follows it in its stream, keeps every other stream current, and applies the stream
/// in order once asked to redrive it (an empty invocation will do).
#[tokio::test]
async fn a_stream_reader_parks_a_poison_stream_instead_of_failing_its_batches() {
    use eventfold::lambda::consumers::ProjectorFunction;
    use eventfold::lambda::metrics::{Metrics, Recorded};
    use eventfold::lambda::stream::insert_record;

    let world = World::new();
    let mut written = world.write(5, 2).await;
    let sick = StreamId::new("Counter", "c1").expect("id");
    world
        .store
        .append(AppendRequest::single(
            sick.clone(),
            ExpectedVersion::Exact(2),
            vec![NewEvent::new("Poison", json!({}))],
        ))
        .await
        .expect("appended");
    written.extend(world.store.read_all(&sick, 3).await.expect("read"));
    written.extend(world.write(5, 2).await);
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let cured = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let projector: Arc<dyn StreamProjector> = Arc::new(Projector::new(
        Applied {
            cured: cured.clone(),
        },
        read_model.clone(),
        world.store.clone(),
    ));
    let function = ProjectorFunction::new(vec![projector])
        .with_parking(world.feed.clone())
        .with_metrics(Metrics::to("projector", Arc::new(Recorded::default())));
    let records: Vec<_> = written
        .iter()
        .enumerate()
        .map(|(n, event)| insert_record(event, n as u64 + 1).expect("a record"))
        .collect();
    let (parked, held) = without_failures(&function, &records, 4).await;
    assert_eq!(
        (parked, held),
        (1, 2),
        "the poison parked, its two successors held"
    );
    let listed = world.feed.parked("applied").await.expect("listed");
    assert_eq!((listed[&sick].version, listed.len()), (3, 1));
    assert_eq!(
        world.feed.parking_consumers().await.expect("listed"),
        ["applied"]
    );
    only_behind(&world, &read_model, &sick, 2).await;

    // Asked before the fix, the redrive fails again and the stream stays parked, where the
    // new failure is; fixed and asked again, an empty batch applies it in order.
    assert!(
        world
            .feed
            .request_redrive("applied", &sick)
            .await
            .expect("asked")
    );
    assert_eq!(function.process(&[]).await.redriven, 0);
    let listed = world.feed.parked("applied").await.expect("listed");
    assert_eq!((listed[&sick].version, listed[&sick].redrive), (3, false));
    cured.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        world
            .feed
            .request_redrive("applied", &sick)
            .await
            .expect("asked")
    );
    let report = function.process(&[]).await;
    assert_eq!(
        (report.redriven, report.first_failure),
        (1, None),
        "{report:?}"
    );
    assert!(
        world
            .feed
            .parked("applied")
            .await
            .expect("listed")
            .is_empty()
    );
    assert_eq!(
        rows(&read_model).await,
        world.fold().await,
        "every stream exact"
    );
}

/// A stream record whose image does not decode (here, one that arrived without its image) parks
/// its stream at the version its keys name, as an event that cannot be applied does: nothing
/// fails, the stream's later events are held, every other stream flows; a redrive reads the
/// stream from the store and applies it in order.
#[tokio::test]
async fn a_record_that_does_not_decode_parks_its_stream_by_its_keys() {
    use eventfold::lambda::consumers::ProjectorFunction;
    use eventfold::lambda::stream::insert_record;

    let world = World::new();
    let written = world.write(3, 4).await;
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let function = ProjectorFunction::new(vec![projector(&world, &read_model)])
        .with_parking(world.feed.clone());
    let sick = StreamId::new("Counter", "c1").expect("id");
    let records: Vec<_> = written
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let mut record = insert_record(event, n as u64 + 1).expect("a record");
            if event.stream_id == sick && event.version == 2 {
                record.change.new_image = Default::default();
            }
            record
        })
        .collect();
    let (parked, held) = without_failures(&function, &records, 5).await;
    assert_eq!((parked, held), (1, 2), "parked at v2, v3 and v4 held");
    let listed = world.feed.parked("applied").await.expect("listed");
    assert_eq!(listed[&sick].version, 2);
    assert!(
        listed[&sick].error.contains("NEW_IMAGE"),
        "{:?}",
        listed[&sick]
    );
    only_behind(&world, &read_model, &sick, 1).await;

    assert!(
        world
            .feed
            .request_redrive("applied", &sick)
            .await
            .expect("asked")
    );
    assert_eq!(function.process(&[]).await.redriven, 1);
    assert_eq!(
        rows(&read_model).await,
        world.fold().await,
        "every stream exact"
    );
}

/// The consumer as a scheduled Lambda function: it polls until shortly before its deadline,
/// following writes that arrive meanwhile, then gives its partitions up (the next invocation,
/// anywhere, takes them at once) and records what it applied and its lag, in events and seconds.
#[tokio::test]
async fn a_scheduled_function_follows_until_its_deadline_then_hands_over() {
    use eventfold::lambda::feed_consumer::{FEED_CONSUMER_METRICS, FeedConsumerFunction};
    use eventfold::lambda::metrics::{Metrics, Recorded, parse_emf};

    let world = Arc::new(World::new());
    world.write(20, 5).await;
    let read_model = Arc::new(MemoryReadModel::new("stream"));
    let consumer = |world: &World| {
        FeedConsumer::new(
            "applied",
            world.feed.clone(),
            world.store.clone(),
            Arc::new(Projecting(projector(world, &read_model))),
        )
        .expect("a consumer")
    };
    let recorded = Arc::new(Recorded::default());
    let function = FeedConsumerFunction::new(consumer(&world))
        .with_pace(Duration::from_millis(50), Duration::from_millis(100))
        .with_metrics(Metrics::to("feed-consumer", recorded.clone()));
    let writer = {
        let world = world.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            world.write(20, 2).await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let report = function.run_until(deadline).await;
    writer.await.expect("written");
    assert!(
        tokio::time::Instant::now() < deadline,
        "stopped before its deadline"
    );
    assert_eq!(report.applied, 140, "{report:?}");
    assert_eq!(rows(&read_model).await, world.fold().await);
    assert!(
        function.consumer().held().is_empty(),
        "every partition given up"
    );

    let lines = recorded.lines();
    let record = parse_emf(lines.last().expect("a record")).expect("EMF");
    for metric in FEED_CONSUMER_METRICS {
        assert!(record.contains_key(*metric), "{metric} in {record:?}");
    }
    assert_eq!(record["FeedEventsApplied"], json!(140.0));
    assert_eq!(record["FeedLagEvents"], json!(0.0));

    // The next invocation's instance takes every partition on its first round.
    let next = consumer(&world);
    next.catch_up().await.expect("caught up");
    assert_eq!(next.held(), [0, 1, 2, 3]);
}
