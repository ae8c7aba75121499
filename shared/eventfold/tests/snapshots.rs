//! Snapshots: a snapshot plus its tail folds to the same state as the whole stream, and a
//! missing, stale, corrupt, foreign or future snapshot never makes a load wrong or fail.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::prelude::*;
use eventfold::snapshot::{SnapshotOutcome, Snapshotter};
use eventfold::store::{AsOf, MemorySnapshots, Snapshot, SnapshotStore};
use eventfold::stored::{Document, to_document};
use eventfold::testing::toy::{CEILING, Counter, CounterCommand, CounterError};
use proptest::prelude::*;
use serde_json::json;

struct Setup {
    commands: CommandService,
    snapshotter: Snapshotter,
    snapshots: Arc<MemorySnapshots>,
    stream: StreamId,
}

/// A service that loads from the stores every time (no kept states), so each load shows what
/// the snapshots do.
fn setup() -> Setup {
    let snapshots = Arc::new(MemorySnapshots::new());
    let commands = CommandService::new(Arc::new(MemoryStore::new()))
        .with_snapshots(snapshots.clone())
        .keep_states(0);
    Setup {
        snapshotter: Snapshotter::new(commands.clone())
            .unwrap()
            .register::<Counter>(),
        commands,
        snapshots,
        stream: Counter::stream_id(&EntityId::parse("s1").unwrap()),
    }
}

impl Setup {
    async fn run(&self, command: CounterCommand) -> Result<(), CommandError<CounterError>> {
        self.commands
            .execute_one::<Counter, _>(
                &CommandContext::default(),
                Target::new(self.stream.clone()),
                &command,
                (),
            )
            .await
            .map(drop)
    }

    async fn snapshot(&self) -> SnapshotOutcome {
        self.snapshotter.snapshot(&self.stream).await.unwrap()
    }

    /// The state folded from every event, without snapshots.
    async fn full_fold(&self) -> (Counter, u64) {
        let loaded = self
            .commands
            .load_as_of::<Counter>(&self.stream, AsOf::Version(u64::MAX))
            .await
            .unwrap();
        (loaded.state, loaded.version)
    }
}

async fn seeded(events: usize) -> Setup {
    let s = setup();
    for _ in 0..events {
        s.run(CounterCommand::Add(1)).await.unwrap();
    }
    s
}

#[tokio::test]
async fn a_snapshot_shortens_the_load_to_its_tail() {
    let s = seeded(30).await;
    assert_eq!(s.snapshot().await, SnapshotOutcome::Written(30));
    for _ in 0..5 {
        s.run(CounterCommand::Add(2)).await.unwrap();
    }
    let loaded = s.commands.load::<Counter>(&s.stream).await.unwrap();
    assert_eq!(loaded.snapshot_version, Some(30));
    assert_eq!(loaded.events_folded, 5);
    assert_eq!((loaded.state, loaded.version), s.full_fold().await);
}

#[tokio::test]
async fn missing_stale_corrupt_foreign_and_future_snapshots_all_load_correctly() {
    let s = seeded(12).await;
    let expected = s.full_fold().await;
    let loaded = s.commands.load::<Counter>(&s.stream).await.unwrap();
    assert_eq!(
        (loaded.snapshot_version, (loaded.state, loaded.version)),
        (None, expected)
    );
    // Stale: taken at 12, the stream moves on to 15.
    s.snapshot().await;
    for _ in 0..3 {
        s.run(CounterCommand::Add(1)).await.unwrap();
    }
    let expected = s.full_fold().await;
    let loaded = s.commands.load::<Counter>(&s.stream).await.unwrap();
    assert_eq!(
        (loaded.snapshot_version, loaded.events_folded),
        (Some(12), 3)
    );
    assert_eq!((loaded.state, loaded.version), expected.clone());
    let good = s.snapshots.load_snapshot(&s.stream).await.unwrap().unwrap();
    let document = |snapshot: Snapshot| to_document(&snapshot, "a snapshot").unwrap();
    let undecodable: Document = [
        ("stream_id".to_owned(), json!(s.stream.to_string())),
        ("version".to_owned(), json!("x")),
    ]
    .into_iter()
    .collect();
    let variants = [
        ("undecodable", undecodable),
        (
            "unknown state schema",
            document(Snapshot {
                state_schema: 9,
                ..good.clone()
            }),
        ),
        (
            "state of another shape",
            document(Snapshot {
                state: json!({"total": "lots"}),
                ..good.clone()
            }),
        ),
        (
            "ahead of the stream",
            document(Snapshot {
                version: 99,
                ..good.clone()
            }),
        ),
    ];
    for (what, document) in variants {
        s.snapshots.put_raw(&s.stream, document);
        let loaded = s
            .commands
            .load::<Counter>(&s.stream)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(loaded.snapshot_version, None, "{what}: ignored");
        assert_eq!(
            (loaded.state, loaded.version),
            expected.clone(),
            "{what}: full fold"
        );
    }
}

#[tokio::test]
async fn only_newer_snapshots_replace_older_ones() {
    let s = seeded(10).await;
    assert_eq!(s.snapshot().await, SnapshotOutcome::Written(10));
    let newer = s.snapshots.load_snapshot(&s.stream).await.unwrap().unwrap();
    let older = Snapshot {
        version: 4,
        ..newer.clone()
    };
    assert!(
        !s.snapshots.save_snapshot(&older).await.unwrap(),
        "an older one is refused"
    );
    assert!(
        !s.snapshots.save_snapshot(&newer).await.unwrap(),
        "the same one is a no-op"
    );
    assert_eq!(
        s.snapshots
            .load_snapshot(&s.stream)
            .await
            .unwrap()
            .unwrap()
            .version,
        10
    );
    assert_eq!(s.snapshot().await, SnapshotOutcome::UpToDate);
    let other = StreamId::new("Unregistered", "1").unwrap();
    assert!(matches!(
        s.snapshotter.snapshot(&other).await.unwrap(),
        SnapshotOutcome::Skipped(_)
    ));
}

/// A kept state is caught up with what other processes wrote since, and skips the snapshot.
#[tokio::test]
async fn a_kept_state_catches_up_with_other_writers() {
    let s = seeded(20).await;
    let keeping =
        CommandService::new(s.commands.store().clone()).with_snapshots(s.snapshots.clone());
    assert_eq!(
        keeping
            .load::<Counter>(&s.stream)
            .await
            .unwrap()
            .events_folded,
        20
    );
    for _ in 0..3 {
        s.run(CounterCommand::Add(1)).await.unwrap();
    }
    s.snapshot().await;
    let again = keeping.load::<Counter>(&s.stream).await.unwrap();
    assert_eq!(
        again.snapshot_version, None,
        "the kept state, not the snapshot"
    );
    assert_eq!(again.events_folded, 3, "only the events since");
    assert_eq!((again.state, again.version), s.full_fold().await);
    let fresh = keeping.keep_states(0);
    assert_eq!(
        fresh
            .load::<Counter>(&s.stream)
            .await
            .unwrap()
            .snapshot_version,
        Some(23)
    );
}

fn command() -> impl Strategy<Value = CounterCommand> {
    // Mostly additions, big enough to meet the ceiling now and then; a clear now and then.
    prop_oneof![
        7 => (1u64..40).prop_map(CounterCommand::Add),
        1 => Just(CounterCommand::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Snapshots taken at random points never change what a command decides or what a load
    /// sees: each command's outcome is the one a model of the counter predicts, and each load
    /// equals the full fold.
    #[test]
    fn snapshot_plus_tail_equals_full_fold(commands in proptest::collection::vec((command(), any::<bool>()), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s = setup();
            let (mut model, mut written, mut refused) = (0u64, 0u64, 0usize);
            for (command, snapshot_after) in commands {
                let predicted = match command {
                    CounterCommand::Add(n) if model + n > CEILING => None,
                    CounterCommand::Add(n) => Some(model + n),
                    CounterCommand::Clear => Some(0),
                };
                let outcome = s.run(command).await;
                match predicted {
                    Some(total) => {
                        prop_assert!(outcome.is_ok(), "{outcome:?}");
                        model = total;
                        written += 1;
                    }
                    None => {
                        let too_much = matches!(outcome, Err(CommandError::Rejected(CounterError::TooMuch { .. })));
                        prop_assert!(too_much, "{:?}", outcome);
                        refused += 1;
                    }
                }
                if snapshot_after {
                    s.snapshot().await;
                }
                let loaded = s.commands.load::<Counter>(&s.stream).await.unwrap();
                let (state, _) = s.full_fold().await;
                prop_assert_eq!(&loaded.state, &state);
                prop_assert_eq!((loaded.state.total, loaded.version), (model, written));
            }
            prop_assert!(written + refused as u64 > 0);
            Ok::<(), TestCaseError>(())
        })?;
    }
}

#[tokio::test]
async fn a_cold_load_reads_the_snapshot_and_the_tail_at_once() {
    use eventfold::store::{SnapshotPolicy, StoreSettings};
    use eventfold::testing::FaultyStore;
    let settings = StoreSettings {
        snapshot_policy: SnapshotPolicy {
            default_every: 10,
            ..SnapshotPolicy::default()
        },
        ..StoreSettings::default()
    };
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::with_settings(
        settings,
    ))));
    let snapshots = Arc::new(MemorySnapshots::new());
    let commands = CommandService::new(store.clone())
        .with_snapshots(snapshots.clone())
        .keep_states(0);
    let stream = Counter::stream_id(&EntityId::generate());
    let snapshot_at = |version: u64| {
        let (commands, snapshots, stream) = (commands.clone(), snapshots.clone(), stream.clone());
        async move {
            let loaded = commands
                .load_as_of::<Counter>(&stream, AsOf::Version(version))
                .await
                .unwrap();
            let snapshot = Snapshot {
                stream_id: stream.clone(),
                version,
                state_schema: Counter::STATE_SCHEMA,
                state: serde_json::to_value(&loaded.state).unwrap(),
                taken_at: chrono::Utc::now(),
                mac: None,
            };
            assert!(snapshots.save_snapshot(&snapshot).await.unwrap());
        }
    };
    let add = || {
        let (commands, stream) = (commands.clone(), stream.clone());
        async move {
            commands
                .execute_one::<Counter, _>(
                    &CommandContext::default(),
                    Target::new(stream),
                    &CounterCommand::Add(1),
                    (),
                )
                .await
        }
    };
    for _ in 0..8 {
        add().await.unwrap();
    }
    // What each load did: (reads of events, the snapshot used, events folded). Snapshots only
    // move forward, so the cases go from the oldest to the newest.
    let mut cases = Vec::new();
    let cold_load = || async {
        store.reset_calls();
        let loaded = commands.load::<Counter>(&stream).await.unwrap();
        let reads = store.calls().reads;
        let full = commands
            .load_as_of::<Counter>(&stream, AsOf::Version(u64::MAX))
            .await
            .unwrap();
        assert_eq!((&loaded.state, loaded.version), (&full.state, full.version));
        (reads, loaded.snapshot_version, loaded.events_folded)
    };
    cases.push((
        "no snapshot, stream within the tail",
        cold_load().await,
        (1, None, 8),
    ));
    for _ in 8..30 {
        add().await.unwrap();
    }
    cases.push((
        "no snapshot, stream past the tail",
        cold_load().await,
        (2, None, 30),
    ));
    snapshot_at(12).await;
    cases.push((
        "snapshot behind the tail",
        cold_load().await,
        (2, Some(12), 18),
    ));
    snapshot_at(21).await;
    cases.push((
        "snapshot at the tail's first event",
        cold_load().await,
        (1, Some(21), 9),
    ));
    snapshot_at(25).await;
    cases.push((
        "snapshot within the tail",
        cold_load().await,
        (1, Some(25), 5),
    ));
    for (what, measured, expected) in cases {
        assert_eq!(measured, expected, "{what}");
    }
}

/// Time travel folds at most its bound: from the snapshot when the point lies after it, from
/// the start otherwise, and a point past the bound from either is refused, not read.
#[tokio::test]
async fn time_travel_is_bounded_and_starts_from_the_snapshot_where_it_can() {
    let s = seeded(20).await;
    assert_eq!(s.snapshot().await, SnapshotOutcome::Written(20));
    for _ in 0..10 {
        s.run(CounterCommand::Add(1)).await.unwrap();
    }
    let s = &s;
    let within = |as_of, max| {
        s.commands
            .load_as_of_within::<Counter>(&s.stream, as_of, max)
    };
    let folded = |version| async move {
        s.commands
            .load_as_of::<Counter>(&s.stream, AsOf::Version(version))
            .await
            .unwrap()
    };

    let after = within(AsOf::Version(25), 10).await.unwrap();
    assert_eq!(
        (after.snapshot_version, after.events_folded, after.version),
        (Some(20), 5, 25)
    );
    assert_eq!(after.state, folded(25).await.state);
    let early = within(AsOf::Version(8), 10).await.unwrap();
    assert_eq!((early.snapshot_version, early.events_folded), (None, 8));
    assert_eq!(early.state, folded(8).await.state);
    assert!(matches!(
        within(AsOf::Version(15), 10).await,
        Err(StoreError::TooLarge {
            what: eventfold::command::HISTORY_TO_FOLD,
            limit: 10,
            ..
        })
    ));

    let now = AsOf::Time(chrono::Utc::now());
    let latest = within(now, 10).await.unwrap();
    assert_eq!((latest.snapshot_version, latest.version), (Some(20), 30));
    assert_eq!(latest.state, folded(30).await.state);
    assert!(
        within(now, 9).await.is_err(),
        "ten events after the snapshot"
    );
    let before = within(
        AsOf::Time(chrono::Utc::now() - chrono::Duration::days(1)),
        10,
    )
    .await
    .unwrap();
    assert_eq!(before.version, 0, "nothing had happened");
}

/// A signed snapshot whose state was changed in its table is refused: the load folds from the
/// events (and says so), a command answers as the events say, and the snapshotter replaces it.
#[tokio::test]
async fn a_snapshot_changed_in_its_table_is_refused_and_replaced() {
    let key: Arc<dyn eventfold::keyed::KeyedHash> = Arc::new(eventfold::keyed::LocalKey::new(
        *b"snapshot key of thirty-two bytes",
    ));
    let snapshots = Arc::new(MemorySnapshots::new());
    let commands = CommandService::new(Arc::new(MemoryStore::new()))
        .with_snapshots(snapshots.clone())
        .with_snapshot_key(key)
        .keep_states(0);
    let stream = Counter::stream_id(&EntityId::parse("signed").unwrap());
    for _ in 0..5 {
        commands
            .execute_one::<Counter, _>(
                &CommandContext::default(),
                Target::new(stream.clone()),
                &CounterCommand::Add(1),
                (),
            )
            .await
            .unwrap();
    }
    let snapshotter = Snapshotter::new(commands.clone())
        .unwrap()
        .register::<Counter>();
    assert_eq!(
        snapshotter.snapshot(&stream).await.unwrap(),
        SnapshotOutcome::Written(5)
    );
    let signed = snapshots.load_snapshot(&stream).await.unwrap().unwrap();
    assert!(signed.mac.is_some());
    let honest = commands.load::<Counter>(&stream).await.unwrap();
    assert_eq!(
        (honest.snapshot_version, honest.snapshot_refused),
        (Some(5), false)
    );

    // Someone with access to the table sets the count far higher.
    let mut forged = signed.clone();
    forged.state = json!({ "total": 1_000 });
    snapshots.put_raw(&stream, to_document(&forged, "a snapshot").unwrap());
    let loaded = commands.load::<Counter>(&stream).await.unwrap();
    assert_eq!(
        (loaded.snapshot_version, loaded.snapshot_refused),
        (None, true)
    );
    assert_eq!(loaded.state, honest.state, "folded from the events");
    let done = commands
        .execute_one::<Counter, _>(
            &CommandContext::default(),
            Target::new(stream.clone()),
            &CounterCommand::Add(1),
            (),
        )
        .await
        .unwrap();
    assert_eq!(done.stats.snapshots_refused, 1, "counted for the metric");
    // Unsigned, or moved to another version, it is refused too.
    for tampered in [
        Snapshot {
            mac: None,
            ..signed.clone()
        },
        Snapshot {
            version: 4,
            ..signed.clone()
        },
    ] {
        snapshots.put_raw(&stream, to_document(&tampered, "a snapshot").unwrap());
        assert!(
            commands
                .load::<Counter>(&stream)
                .await
                .unwrap()
                .snapshot_refused
        );
    }
    snapshots.put_raw(&stream, to_document(&forged, "a snapshot").unwrap());
    assert_eq!(
        snapshotter.snapshot(&stream).await.unwrap(),
        SnapshotOutcome::Written(6),
        "the snapshotter replaces it"
    );
    assert!(
        !commands
            .load::<Counter>(&stream)
            .await
            .unwrap()
            .snapshot_refused
    );
    // One ahead of the stream (which would switch snapshots off for it for good) is refused,
    // counted and replaced too.
    let ahead = Snapshot {
        version: 60,
        ..signed.clone()
    };
    snapshots.put_raw(&stream, to_document(&ahead, "a snapshot").unwrap());
    let loaded = commands.load::<Counter>(&stream).await.unwrap();
    assert_eq!(
        (
            loaded.snapshot_version,
            loaded.snapshot_refused,
            loaded.version
        ),
        (None, true, 6)
    );
    assert_eq!(
        snapshotter.snapshot(&stream).await.unwrap(),
        SnapshotOutcome::Written(6),
        "the snapshotter replaces it"
    );
    assert_eq!(
        snapshots
            .load_snapshot(&stream)
            .await
            .unwrap()
            .map(|s| s.version),
        Some(6)
    );
}
