//! End to end through the stack as CloudFormation deploys it on the emulator: the emulator's
//! event source mappings run the real projector, publisher and snapshotter binaries. The stack
//! is shared by the test run, so each test looks only at the accounts it made.

use std::time::{Duration, Instant};

use eventfold_tests::{deployed, events_by_stream, patience};
use serde_json::{Value, json};

/// Commands on a few accounts; then the read model holds exactly the fold of their streams.
#[tokio::test]
async fn the_read_model_converges() {
    let api = deployed::api().await;
    let env = deployed::env().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(api.open_account(&format!("Deployed {n}"), "EUR").await);
    }
    let mut answered = Instant::now();
    for (n, id) in ids.iter().enumerate() {
        api.deposit(id, 1_000 + n as u64).await;
        answered = Instant::now();
    }
    let transfer = api
        .post(
            "/transfers",
            &json!({"from": ids[0], "to": ids[1], "amount": 250}),
            &[],
        )
        .await;
    assert_eq!(transfer.status, 201, "{transfer:?}");
    let transferred = Instant::now();
    let last = &ids[2];
    let seen = api
        .eventually(
            &format!("/accounts/{last}"),
            Duration::from_secs(30) * patience(),
            |r| r.body["version"] == json!(2),
        )
        .await;
    assert_eq!(seen.body["version"], json!(2), "{seen:?}");
    eprintln!(
        "deployed: command to read model in {:?}",
        answered.elapsed()
    );
    let deadline = transferred + Duration::from_secs(30) * patience();
    loop {
        let streams = events_by_stream(&env).await;
        let mut matching = 0;
        for id in &ids {
            let expected = bank::read_model::expected_row(&streams[&format!("Account-{id}")]);
            let row = bank::read_model::account_row(&env.accounts(), id)
                .await
                .expect("row");
            matching += usize::from(row == expected);
        }
        if matching == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the read model did not converge");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = api.get(&format!("/accounts/{}", ids[0])).await;
    assert_eq!(row.body["balance"], json!(750));
}

/// The publisher's FIFO messages reach subscribers in each stream's order, once, and the feed
/// holds the stream's events in order.
#[tokio::test]
async fn published_events_arrive_in_stream_order() {
    let api = deployed::api().await;
    let env = deployed::env().await;
    let id = api.open_account("Subscriber", "EUR").await;
    for amount in 1..=5 {
        api.deposit(&id, amount).await;
    }
    let stream = format!("Account-{id}");
    let queue = env.resources.queue_url("EventsQueue").to_owned();
    let mut versions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60) * patience();
    while versions.len() < 6 {
        assert!(Instant::now() < deadline, "published so far: {versions:?}");
        let received = env
            .clients
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in received.messages.unwrap_or_default() {
            let event: Value =
                serde_json::from_str(message.body().unwrap_or_default()).expect("an event");
            if event["stream_id"] == json!(stream) {
                versions.push(event["version"].as_u64().expect("version"));
            }
            // Only this test reads the queue of the shared stack.
            env.clients
                .sqs
                .delete_message()
                .queue_url(&queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    assert_eq!(versions, (1..=6).collect::<Vec<_>>());

    // The deployed publisher indexed them too: the stream's mark and its six positions.
    use eventfold::feed::{FeedStore, Page};
    let feed = env.feed();
    let stream_id = eventfold::StreamId::parse(&stream).expect("id");
    let marks = feed
        .marks(std::slice::from_ref(&stream_id))
        .await
        .expect("marks");
    assert_eq!(marks.get(&stream_id), Some(&6), "indexed before published");
    let partition = eventfold::feed::partition_of(&stream_id, feed.partitions());
    let indexed: Vec<u64> = feed
        .read_pages(partition, 0, usize::MAX)
        .await
        .expect("pages")
        .iter()
        .flat_map(Page::entries)
        .filter(|entry| entry.stream_id == stream_id)
        .map(|entry| entry.version)
        .collect();
    assert_eq!(indexed, (1..=6).collect::<Vec<_>>());
}

/// A stream that crosses the snapshot interval gets its snapshot through the snapshot queue.
#[tokio::test]
async fn a_long_stream_is_snapshotted_through_the_queue() {
    let api = deployed::api().await;
    let env = deployed::env().await;
    let id = api.open_account("Snapshotted", "EUR").await;
    for _ in 1..deployed::SNAPSHOT_EVERY {
        api.deposit(&id, 3).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60) * patience();
    loop {
        let item = env
            .clients
            .dynamodb
            .get_item()
            .table_name(env.resources.table("SnapshotsTable"))
            .key(
                "stream_id",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("Account-{id}")),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item;
        let version = item
            .as_ref()
            .and_then(|i| i.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        if version == Some(deployed::SNAPSHOT_EVERY) {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot: {item:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let state = api.get(&format!("/accounts/{id}/state")).await;
    assert_eq!(
        (state.body["balance"].clone(), state.body["version"].clone()),
        (json!(27), json!(deployed::SNAPSHOT_EVERY))
    );
}

/// The operator commands on the deployed stack: names from its resources, the work done by
/// invoking its own functions through Lambda's Invoke API (no domain code in the CLI).
#[tokio::test]
async fn rebuild_and_backfill_invoke_the_stacks_own_functions() {
    let api = deployed::api().await;
    let env = deployed::env().await;
    let stack = deployed::stack().outputs["StackName"].clone();
    let id = api.open_account("Operated", "EUR").await;
    api.deposit(&id, 41).await;
    let converged = |row: &bank::read_model::AccountRow| row.version == 2;
    let deadline = Instant::now() + Duration::from_secs(30) * patience();
    let before = loop {
        let row = bank::read_model::account_row(&env.accounts(), &id)
            .await
            .expect("row");
        if row.as_ref().is_some_and(converged) {
            break row;
        }
        assert!(Instant::now() < deadline, "not projected: {row:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let run = |args: &[&str]| {
        let output = eventfold_tests::cli()
            .args(["--stack", &stack])
            .args(args)
            .output()
            .expect("the CLI runs");
        let said = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {said}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        said
    };
    let rebuilt = run(&["projections", "rebuild", "accounts", "--yes"]);
    assert!(rebuilt.contains("rebuilt accounts"), "{rebuilt}");
    assert_eq!(
        bank::read_model::account_row(&env.accounts(), &id)
            .await
            .expect("row"),
        before,
        "the rebuilt row is the row"
    );
    let backfilled = run(&["snapshots", "backfill", &format!("Account-{id}")]);
    assert!(
        backfilled.contains("1 streams; 1 snapshots written"),
        "{backfilled}"
    );
    let state = api.get(&format!("/accounts/{id}/state")).await;
    assert_eq!(state.body["balance"], json!(41), "{state:?}");
    // Forgetting, invoked as the caller's AWS identity.
    let person = api.new_user(eventfold_tests::scopes::CUSTOMER).await;
    let registered = person
        .post(
            "/users",
            &json!({"email": format!("{}@example.com", uuid::Uuid::new_v4().simple()), "name": "Gone"}),
            &[],
        )
        .await;
    let subject = registered.body["id"].as_str().expect("id").to_owned();
    let forgot = run(&["forget", &subject, "--yes"]);
    assert!(forgot.contains(&format!("forgot {subject}")), "{forgot}");
    let profile = api.operator().await.get(&format!("/users/{subject}")).await;
    assert_eq!(profile.body["status"], json!("forgotten"), "{profile:?}");
}
