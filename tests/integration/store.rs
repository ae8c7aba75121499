//! The conformance suites on DynamoDB (the emulator): the event store, the read-model store
//! and the feed, as the library defines them; plus concurrency on the DynamoDB event store.

use std::collections::HashSet;
use std::sync::Arc;

use eventfold::aws::DynamoStore;
use eventfold::store::{AppendRequest, AppendResult, EventStore, ExpectedVersion, NewCommand};
use eventfold::testing::DynamoHarness;
use eventfold::testing::store_suite;
use eventfold::{CommandId, NewEvent, StoreError, StreamId};
use eventfold_tests::TestEnv;

async fn dynamo() -> DynamoHarness {
    let env = TestEnv::new().await;
    DynamoHarness {
        store: env.store(store_suite::settings()),
        client: env.clients.dynamodb.clone(),
        table: env.events_table().to_owned(),
    }
}

mod dynamo_store {
    eventfold::event_store_conformance!(super::dynamo().await);
}

/// Each case on a fresh accounts table of its own (one case clears its store).
mod dynamo_read_model {
    eventfold::read_model_conformance!(std::sync::Arc::new(
        eventfold_tests::TestEnv::new().await.accounts()
    ));
}

/// Each case on a fresh feed table of its own, partitioned as the template's default.
mod dynamo_feed {
    eventfold::feed_conformance!(std::sync::Arc::new(
        eventfold_tests::TestEnv::new().await.feed()
    ));
}

/// Each case on a fresh timers table of its own.
mod dynamo_timers {
    eventfold::timers_conformance!(std::sync::Arc::new(
        eventfold_tests::TestEnv::new().await.timers().await
    ));
}

/// 16 writers race on one stream with exact expectations: no gaps, no duplicates, no loss.
#[tokio::test]
async fn concurrent_exact_appends_never_fork_or_gap() {
    let env = TestEnv::new().await;
    let store: Arc<dyn EventStore> = env.store(store_suite::settings());
    let id = StreamId::new("Race", "one").expect("id");
    let writers = 16;
    let per_writer = 6;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for n in 0..per_writer {
                loop {
                    let version = store
                        .read_head(&id)
                        .await
                        .expect("head")
                        .map_or(0, |h| h.version());
                    let event =
                        NewEvent::new("Raced", serde_json::json!({ "writer": writer, "n": n }));
                    let event_id = event.event_id;
                    let request = AppendRequest::single(
                        id.clone(),
                        ExpectedVersion::Exact(version),
                        vec![event],
                    );
                    match store.append(request).await {
                        Ok(AppendResult::Written(_)) => {
                            written.push(event_id);
                            break;
                        }
                        Ok(AppendResult::Replayed(_)) => unreachable!("no command ids here"),
                        Err(StoreError::Conflict { .. }) => {
                            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(
                                1..20,
                            )))
                            .await;
                        }
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
            }
            written
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("writer"));
    }
    let stored = store.read_all(&id, 1).await.expect("read");
    assert_eq!(stored.len(), writers * per_writer);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1),
        "versions 1..N"
    );
    let stored_ids: Vec<_> = stored.iter().map(|e| e.event_id).collect();
    let unique: HashSet<_> = stored_ids.iter().collect();
    assert_eq!(unique.len(), stored_ids.len(), "no duplicates");
    assert_eq!(
        unique,
        acknowledged.iter().collect::<HashSet<_>>(),
        "every acknowledged append, once"
    );
    assert!(
        store.verify_stream(&id).await.expect("verify").is_intact(),
        "the chain never forks"
    );
}

/// A store built without a commands table (what the projector, snapshotter and query API
/// get) appends plain events but refuses an idempotent append with a typed error, writing
/// nothing, instead of calling DynamoDB with a table it has no name or rights for.
#[tokio::test]
async fn a_store_without_a_commands_table_refuses_command_ids() {
    let env = TestEnv::new().await;
    let store = DynamoStore::new(
        env.clients.dynamodb.clone(),
        env.events_table(),
        store_suite::settings(),
    );
    let id = StreamId::new("Plain", "one").expect("id");
    let event = || NewEvent::new("Happened", serde_json::json!({}));
    let plain = AppendRequest::single(id.clone(), ExpectedVersion::NoStream, vec![event()]);
    assert!(matches!(
        store.append(plain).await,
        Ok(AppendResult::Written(_))
    ));
    let command = NewCommand {
        command_id: CommandId::new("c-1").expect("id"),
        request_hash: "h".into(),
        receipt: None,
    };
    let idempotent = AppendRequest::single(id.clone(), ExpectedVersion::Exact(1), vec![event()])
        .with_command(command);
    let refused = store.append(idempotent).await;
    assert!(
        matches!(&refused, Err(StoreError::Misuse(m)) if m.contains("commands table")),
        "{refused:?}"
    );
    assert!(matches!(
        store
            .read_command(&CommandId::new("c-1").expect("id"))
            .await,
        Err(StoreError::Misuse(_))
    ));
    assert_eq!(store.read_all(&id, 1).await.expect("read").len(), 1);
}

/// The bulk loader writes what the store writes: a stream it seeds reads back whole, in
/// order, with an intact chain, and takes the next append at the version after it.
#[tokio::test]
async fn bulk_loaded_streams_are_valid_streams() {
    let env = TestEnv::new().await;
    let settings = store_suite::settings();
    let store: Arc<dyn EventStore> = env.store(settings.clone());
    let id = StreamId::new("Bulk", "one").expect("id");
    let events = (0..260).map(|n| NewEvent::new("Counted", serde_json::json!({ "n": n })));
    let loaded = eventfold::testing::bulk_load(
        &env.clients.dynamodb,
        env.events_table(),
        &id,
        events,
        &settings,
    )
    .await
    .expect("bulk load");
    assert_eq!(loaded, 260);
    let stored = store.read_all(&id, 1).await.expect("read");
    assert_eq!(stored.len(), 260);
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1 && e.payload["n"] == i),
        "versions 1..260 in the order given"
    );
    assert!(store.verify_stream(&id).await.expect("verify").is_intact());
    let next = store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(260),
            vec![NewEvent::new("Counted", serde_json::json!({ "n": 260 }))],
        ))
        .await;
    assert!(matches!(next, Ok(AppendResult::Written(_))), "{next:?}");
    assert!(store.verify_stream(&id).await.expect("verify").is_intact());
}

/// A feed table remembers the partition count it was made with: an indexer configured with
/// another (its streams would move between partitions, and their order with them) is refused
/// before it writes.
#[tokio::test]
async fn a_feed_refuses_another_partition_count() {
    use eventfold::feed::{FeedStore, Indexer};
    let env = TestEnv::new().await;
    let store: Arc<dyn EventStore> = env.store(store_suite::settings());
    let id = StreamId::new("Account", "counted").expect("id");
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Opened", serde_json::json!({}))],
        ))
        .await
        .expect("appended");
    let events = store.read_all(&id, 1).await.expect("read");
    let four = Arc::new(env.feed());
    Indexer::new(four.clone(), store.clone())
        .index(&events)
        .await
        .expect("indexed");
    let eight = Arc::new(eventfold::aws::DynamoFeed::new(
        env.clients.dynamodb.clone(),
        env.resources.table("FeedTable"),
        8,
    ));
    let refused = Indexer::new(eight, store)
        .index(&events)
        .await
        .expect_err("another count");
    assert!(
        matches!(&refused, StoreError::Misuse(m) if m.contains("made with 4 partitions")),
        "{refused}"
    );
    assert_eq!(
        four.end(eventfold::feed::partition_of(&id, 4))
            .await
            .expect("end"),
        1
    );
}
