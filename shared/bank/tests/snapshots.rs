//! Snapshots: a snapshot plus its tail folds to the same state as the whole stream, and a
//! missing, stale, corrupt, foreign or future snapshot never makes a load wrong or fail.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use bank::domain::Name;
use bank::domain::account::{Account, AccountCommand};
use bank::domain::money::{Amount, Currency};
use eventfold::aggregate::Aggregate;
use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::snapshot::{MemorySnapshots, Snapshot, SnapshotStore};
use eventfold::store::AsOf;
use eventfold::{MemoryStore, StreamId};
use proptest::prelude::*;
use serde_json::json;

struct Setup {
    commands: CommandService,
    snapshots: Arc<MemorySnapshots>,
    stream: StreamId,
}

/// A service that loads from the stores every time (no kept states), so each load shows what
/// the snapshots do.
fn setup() -> Setup {
    let snapshots = Arc::new(MemorySnapshots::new());
    Setup {
        commands: CommandService::new(Arc::new(MemoryStore::new()))
            .with_snapshots(snapshots.clone())
            .with_state_cache(0),
        snapshots,
        stream: StreamId::parse("Account-s1").unwrap(),
    }
}

async fn run(s: &Setup, command: AccountCommand) -> bool {
    s.commands
        .execute_one::<Account, _>(
            &CommandContext::default(),
            Target::new(s.stream.clone()),
            &command,
            (),
        )
        .await
        .is_ok()
}

async fn seeded(events: usize) -> Setup {
    let s = setup();
    run(
        &s,
        AccountCommand::Open {
            owner: Name::parse("Ada").unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        },
    )
    .await;
    for n in 1..events {
        assert!(
            run(
                &s,
                AccountCommand::Deposit {
                    amount: Amount::new(n as i64).unwrap()
                }
            )
            .await
        );
    }
    s
}

/// The state folded from every event, without snapshots.
async fn full_fold(s: &Setup) -> (Account, u64) {
    let loaded = s
        .commands
        .load_as_of::<Account>(&s.stream, AsOf::Version(u64::MAX))
        .await
        .unwrap();
    (loaded.state, loaded.version)
}

#[tokio::test]
async fn a_snapshot_shortens_the_load_to_its_tail() {
    let s = seeded(30).await;
    let taken = s
        .commands
        .snapshot::<Account>(&s.stream)
        .await
        .unwrap()
        .expect("written");
    assert_eq!(taken.version, 30);
    for n in 0..5 {
        run(
            &s,
            AccountCommand::Deposit {
                amount: Amount::new(100 + n).unwrap(),
            },
        )
        .await;
    }
    let loaded = s.commands.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(loaded.snapshot_version, Some(30));
    assert_eq!(loaded.events_folded, 5);
    assert_eq!((loaded.state, loaded.version), full_fold(&s).await);
}

#[tokio::test]
async fn missing_stale_corrupt_foreign_and_future_snapshots_all_load_correctly() {
    let s = seeded(12).await;
    let expected = full_fold(&s).await;
    // Missing.
    let loaded = s.commands.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(
        (loaded.snapshot_version, (loaded.state, loaded.version)),
        (None, expected.clone())
    );
    // Stale: taken at 12, stream moves to 15.
    s.commands.snapshot::<Account>(&s.stream).await.unwrap();
    for _ in 0..3 {
        run(
            &s,
            AccountCommand::Withdraw {
                amount: Amount::new(1).unwrap(),
            },
        )
        .await;
    }
    let expected = full_fold(&s).await;
    let loaded = s.commands.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(
        (loaded.snapshot_version, loaded.events_folded),
        (Some(12), 3)
    );
    assert_eq!((loaded.state, loaded.version), expected.clone());
    let good = s.snapshots.load_snapshot(&s.stream).await.unwrap().unwrap();
    let variants: Vec<(&str, eventfold::codec::Item)> = vec![
        (
            "undecodable item",
            [
                (
                    "stream_id".to_owned(),
                    AttributeValue::S(s.stream.to_string()),
                ),
                ("version".to_owned(), AttributeValue::S("x".into())),
            ]
            .into(),
        ),
        (
            "unknown state schema",
            eventfold::codec::to_item(&Snapshot {
                state_schema: Account::STATE_SCHEMA + 1,
                ..good.clone()
            })
            .unwrap(),
        ),
        (
            "state of another shape",
            eventfold::codec::to_item(&Snapshot {
                state: json!({"balance": "lots"}),
                ..good.clone()
            })
            .unwrap(),
        ),
        (
            "ahead of the stream",
            eventfold::codec::to_item(&Snapshot {
                version: 99,
                ..good.clone()
            })
            .unwrap(),
        ),
    ];
    for (what, item) in variants {
        s.snapshots.put_raw(&s.stream, item);
        let loaded = s
            .commands
            .load::<Account>(&s.stream)
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
    let newer = s
        .commands
        .snapshot::<Account>(&s.stream)
        .await
        .unwrap()
        .unwrap();
    let older = Snapshot {
        version: 4,
        ..newer.clone()
    };
    assert!(
        !s.snapshots.save_snapshot(&older).await.unwrap(),
        "an older snapshot is refused"
    );
    assert!(
        !s.snapshots.save_snapshot(&newer).await.unwrap(),
        "the same version is a no-op"
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
    assert!(
        s.commands
            .snapshot::<Account>(&s.stream)
            .await
            .unwrap()
            .is_none(),
        "already current"
    );
}

fn command() -> impl Strategy<Value = AccountCommand> {
    prop_oneof![
        (1i64..1_000).prop_map(|units| AccountCommand::Deposit {
            amount: Amount::new(units).unwrap()
        }),
        (1i64..1_000).prop_map(|units| AccountCommand::Withdraw {
            amount: Amount::new(units).unwrap()
        }),
        Just(AccountCommand::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Snapshots taken at random points never change what a load sees.
    #[test]
    fn snapshot_plus_tail_equals_full_fold(commands in proptest::collection::vec((command(), any::<bool>()), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s = setup();
            run(&s, AccountCommand::Open { owner: Name::parse("P").unwrap(), currency: Currency::parse("USD").unwrap() }).await;
            for (command, snapshot_after) in commands {
                run(&s, command).await;
                if snapshot_after {
                    s.commands.snapshot::<Account>(&s.stream).await.unwrap();
                }
                let loaded = s.commands.load::<Account>(&s.stream).await.unwrap();
                let (state, version) = full_fold(&s).await;
                prop_assert_eq!(&loaded.state, &state);
                prop_assert_eq!(loaded.version, version);
                let head = s.commands.store().read_head(&s.stream).await.unwrap().unwrap();
                prop_assert_eq!(head.version(), version);
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// A kept state is caught up with what other processes wrote since, and skips the snapshot.
#[tokio::test]
async fn a_kept_state_catches_up_with_other_writers() {
    let s = seeded(20).await;
    let store = s.commands.store().clone();
    let kept = CommandService::new(store.clone()).with_snapshots(s.snapshots.clone());
    let first = kept.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(first.events_folded, 20);
    // Another process writes three more events and a snapshot.
    for n in 0..3 {
        run(
            &s,
            AccountCommand::Deposit {
                amount: Amount::new(7 + n).unwrap(),
            },
        )
        .await;
    }
    s.commands.snapshot::<Account>(&s.stream).await.unwrap();
    let again = kept.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(
        again.snapshot_version, None,
        "the kept state, not the snapshot"
    );
    assert_eq!(again.events_folded, 3, "only the events since");
    assert_eq!((again.state, again.version), full_fold(&s).await);
    // Without a cache the same service shape reads the snapshot.
    let fresh = kept.clone().with_state_cache(0);
    let stored = fresh.load::<Account>(&s.stream).await.unwrap();
    assert_eq!(stored.snapshot_version, Some(23));
}
