//! Reactors on the memory stores: a command sent once however often its trigger is delivered,
//! timers that fire once at their time and not after a cancel, a domain's refusal taken as an
//! answer the reactor may answer in turn, and a reactor fed by the global feed with a checkpoint.

use std::sync::Arc;
use std::time::Duration;

use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::encoding::decode_known;
use eventfold::feed::{FeedConsumer, Indexer, MemoryFeed};
use eventfold::reactor::{MemoryTimers, Reacting, Reactions, Reactor, Refusal, Timer, TimerStore};
use eventfold::store::{EventStore, MemoryStore};
use eventfold::testing::toy::{CEILING, Counter, CounterCommand, CounterEvent};
use eventfold::{Aggregate, EntityId, RecordedEvent, StoreError, StreamId};
use serde_json::json;

/// Mirrors every counter into `mirror-<id>`, and clears the mirror a minute after each
/// addition unless the counter is cleared first.
#[derive(Debug)]
struct Mirror;

fn mirror_of(stream: &StreamId) -> EntityId {
    EntityId::parse(&format!("mirror-{}", stream.entity_id())).expect("an id")
}

impl Reactor for Mirror {
    fn name(&self) -> &str {
        "mirror"
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Counter::CATEGORY && !stream_id.entity_id().starts_with("mirror-")
    }

    fn react(&self, event: &RecordedEvent, out: &mut Reactions) -> Result<(), StoreError> {
        let mirror = mirror_of(&event.stream_id);
        let key = format!("clear/{mirror}");
        match decode_known::<CounterEvent>(event)? {
            Some(CounterEvent::Added { n }) => {
                out.command::<Counter>(&mirror, CounterCommand::Add(n));
                out.schedule(&key, Duration::from_secs(60), json!({ "mirror": mirror }));
            }
            Some(CounterEvent::Cleared) => out.cancel(&key),
            None => {}
        }
        Ok(())
    }

    fn on_timer(&self, timer: &Timer, out: &mut Reactions) -> Result<(), StoreError> {
        let mirror = timer.payload["mirror"].as_str().unwrap_or_default();
        let mirror = EntityId::parse(mirror).map_err(|e| StoreError::corrupt(e.to_string()))?;
        out.command::<Counter>(&mirror, CounterCommand::Clear);
        Ok(())
    }

    /// What a full mirror refuses spills into `spill-<mirror>`.
    fn on_refused(&self, refusal: &Refusal<'_>, out: &mut Reactions) -> Result<(), StoreError> {
        if let Some((mirror, CounterCommand::Add(n))) =
            refusal.command_as::<(StreamId, CounterCommand)>()
        {
            let spill = EntityId::parse(&format!("spill-{}", mirror.entity_id()))
                .map_err(|e| StoreError::corrupt(e.to_string()))?;
            out.command::<Counter>(&spill, CounterCommand::Add(*n));
        }
        Ok(())
    }
}

struct World {
    store: Arc<MemoryStore>,
    service: CommandService,
    timers: Arc<MemoryTimers>,
    reacting: Reacting,
}

impl World {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let service = CommandService::new(store.clone());
        let timers = Arc::new(MemoryTimers::new());
        let reacting = Reacting::new(Arc::new(Mirror), service.clone(), timers.clone());
        Self {
            store,
            service,
            timers,
            reacting,
        }
    }

    async fn run(&self, id: &str, command: CounterCommand) -> Vec<RecordedEvent> {
        let stream = Counter::stream_id(&EntityId::parse(id).expect("id"));
        let head = self.store.read_head(&stream).await.expect("head");
        let from = head.map_or(0, |h| h.version()) + 1;
        self.service
            .execute_one::<Counter, _>(
                &CommandContext::default(),
                Target::new(stream.clone()),
                &command,
                (),
            )
            .await
            .expect("executed");
        self.store.read_all(&stream, from).await.expect("read")
    }

    async fn events_of(&self, id: &str) -> Vec<RecordedEvent> {
        let stream = Counter::stream_id(&EntityId::parse(id).expect("id"));
        self.store.read_all(&stream, 1).await.expect("read")
    }
}

/// The same event delivered three times (a retried batch, a replay) sends its command once:
/// the second and third are answered from the command's record.
#[tokio::test]
async fn a_trigger_delivered_three_times_sends_its_command_once() {
    let world = World::new();
    let added = world.run("a", CounterCommand::Add(5)).await;
    for _ in 0..3 {
        world.reacting.react(&added[0]).await.expect("reacted");
    }
    let report = world.reacting.take_report();
    assert_eq!(
        (report.written, report.replayed, report.scheduled),
        (1, 2, 3),
        "{report:?}"
    );
    let mirrored = world.events_of("mirror-a").await;
    assert_eq!(mirrored.len(), 1);
    // Whose and why: the reactor acted, caused by the event, in its correlation.
    let metadata = &mirrored[0].metadata;
    assert_eq!(metadata.actor.as_deref(), Some("reactor:mirror"));
    assert_eq!(
        metadata.causation_id.as_deref(),
        Some(added[0].event_id.to_string().as_str())
    );
    assert!(
        metadata
            .command_id
            .as_deref()
            .is_some_and(|id| id.starts_with("reactor/mirror/"))
    );
    assert_eq!(
        world
            .timers
            .pending(Some("mirror"))
            .await
            .expect("pending")
            .len(),
        1
    );
}

/// A timer fires at its time, once (a second round finds nothing), and its command is sent; a
/// cancelled one never fires.
#[tokio::test]
async fn timers_fire_once_at_their_time_and_not_after_a_cancel() {
    let world = World::new();
    for event in world.run("a", CounterCommand::Add(5)).await {
        world.reacting.react(&event).await.expect("reacted");
    }
    for event in world.run("b", CounterCommand::Add(7)).await {
        world.reacting.react(&event).await.expect("reacted");
    }
    for event in world.run("b", CounterCommand::Clear).await {
        world.reacting.react(&event).await.expect("reacted");
    }
    let due = world.timers.pending(None).await.expect("pending");
    assert_eq!(due.len(), 1, "b's was cancelled: {due:?}");
    let at = due[0].due;
    let early = world
        .reacting
        .fire_due(at - chrono::Duration::seconds(1))
        .await
        .expect("fired");
    assert_eq!(early.fired, 0);
    let fired = world.reacting.fire_due(at).await.expect("fired");
    assert_eq!((fired.fired, fired.written), (1, 1), "{fired:?}");
    let again = world
        .reacting
        .fire_due(at + chrono::Duration::hours(1))
        .await
        .expect("fired");
    assert_eq!(again.fired, 0);
    let mirror_a: Vec<_> = world
        .events_of("mirror-a")
        .await
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(mirror_a, ["Added", "Cleared"]);
    let mirror_b: Vec<_> = world
        .events_of("mirror-b")
        .await
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(
        mirror_b,
        ["Added"],
        "never cleared: its timer was cancelled"
    );
}

/// A command the aggregate refuses is an answer, not a failure: counted, not retried, and the
/// reactor decides what follows (here, the amount spills elsewhere), once however often the
/// trigger is delivered: the refused command's id is the answer's trigger.
#[tokio::test]
async fn a_refused_command_is_answered_by_the_reactor_once() {
    let world = World::new();
    world.run("mirror-a", CounterCommand::Add(CEILING)).await;
    let added = world.run("a", CounterCommand::Add(1)).await;
    for _ in 0..3 {
        world.reacting.react(&added[0]).await.expect("reacted");
    }
    let report = world.reacting.take_report();
    assert_eq!(
        (
            report.refused,
            report.written,
            report.replayed,
            report.scheduled
        ),
        (3, 1, 2, 3),
        "{report:?}"
    );
    assert_eq!(world.events_of("mirror-a").await.len(), 1);
    let spilled = world.events_of("spill-mirror-a").await;
    assert_eq!(spilled.len(), 1);
    let metadata = &spilled[0].metadata;
    assert_eq!(metadata.actor.as_deref(), Some("reactor:mirror"));
    assert!(
        metadata
            .causation_id
            .as_deref()
            .is_some_and(|id| id.starts_with("reactor/mirror/")),
        "caused by the refused command: {metadata:?}"
    );
}

/// An answer to a refusal that is refused in turn is only counted: refusals do not answer each
/// other without end.
#[tokio::test]
async fn a_refused_answer_to_a_refusal_is_only_counted() {
    let world = World::new();
    world.run("mirror-a", CounterCommand::Add(CEILING)).await;
    world
        .run("spill-mirror-a", CounterCommand::Add(CEILING))
        .await;
    let added = world.run("a", CounterCommand::Add(1)).await;
    let report = world.reacting.react(&added[0]).await.expect("reacted");
    assert_eq!((report.refused, report.written), (2, 0), "{report:?}");
    assert_eq!(world.events_of("spill-mirror-a").await.len(), 1);
}

/// Fed by the global feed: a reactor catches up from its checkpoint and reacts to each event
/// once; redelivering the whole feed to a second consumer of the same name changes nothing.
#[tokio::test]
async fn a_reactor_on_the_feed_reacts_once_per_event() {
    let world = World::new();
    let feed = Arc::new(MemoryFeed::new(2));
    let indexer = Indexer::new(feed.clone(), world.store.clone());
    let reacting = Arc::new(Reacting::new(
        Arc::new(Mirror),
        world.service.clone(),
        world.timers.clone(),
    ));
    for n in 0..10 {
        let events = world
            .run(&format!("c{n}"), CounterCommand::Add(n + 1))
            .await;
        indexer.index(&events).await.expect("indexed");
    }
    let consumer = FeedConsumer::new(
        "mirror",
        feed.clone(),
        world.store.clone(),
        reacting.clone(),
    )
    .expect("a consumer");
    consumer.catch_up().await.expect("caught up");
    for n in 0..10 {
        let mirrored = world.events_of(&format!("mirror-c{n}")).await;
        assert_eq!(mirrored.len(), 1, "mirror-c{n}");
    }
    // The mirrors' own events are indexed too; the reactor passes over them.
    for n in 0..10 {
        let mirrored = world.events_of(&format!("mirror-c{n}")).await;
        indexer.index(&mirrored).await.expect("indexed");
    }
    let again = FeedConsumer::new("mirror-again", feed, world.store.clone(), reacting.clone())
        .expect("a consumer");
    again.catch_up().await.expect("caught up");
    let report = reacting.take_report();
    assert_eq!((report.written, report.replayed), (10, 10), "{report:?}");
}
