//! Snapshots on the local runner + emulator: snapshot-due events flow through the publisher
//! and the snapshot queue to the snapshot function; poison requests dead-letter; and a
//! command's cost stays flat however long the stream grows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bank::domain::account::{Account, AccountCommand};
use eventfold::StreamId;
use eventfold::aws::RequestCounter;
use eventfold::aws::{DynamoSnapshots, DynamoStore};
use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::store::{EventStore, SnapshotStore, StoreSettings};
use eventfold_tests::TestEnv;
use serde_json::json;

async fn snapshot_version(env: &TestEnv, stream: &str) -> Option<u64> {
    let snapshots = env.snapshots();
    snapshots
        .load_snapshot(&StreamId::parse(stream).expect("id"))
        .await
        .expect("load")
        .map(|s| s.version)
}

#[tokio::test]
async fn snapshot_due_events_reach_the_snapshot_function() {
    let mut env = TestEnv::new().await;
    env.resources
        .parameters
        .insert("SnapshotEvery".into(), "5".into());
    let api = env.serve().await;
    let id = api.open_account("Long", "EUR").await;
    let other = api.open_account("Short", "EUR").await;
    for n in 1..=11 {
        assert_eq!(
            api.post(
                &format!("/accounts/{id}/deposits"),
                &json!({"amount": n}),
                &[]
            )
            .await
            .status,
            200
        );
    }
    api.post(
        &format!("/accounts/{other}/deposits"),
        &json!({"amount": 1}),
        &[],
    )
    .await;
    let stream = format!("Account-{id}");
    let deadline = Instant::now() + Duration::from_secs(30) * eventfold_tests::patience();
    while snapshot_version(&api.env, &stream)
        .await
        .is_none_or(|v| v < 10)
    {
        assert!(
            Instant::now() < deadline,
            "no snapshot at version 10 or later"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly the events at versions 5 and 10 were snapshot-due; nothing else was requested.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = api.runner.stats["SnapshotStreamsFunction/queue0"]
        .records_delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(delivered, 2);
    assert_eq!(
        snapshot_version(&api.env, &format!("Account-{other}")).await,
        None
    );
    let due: Vec<u64> = api
        .env
        .store(StoreSettings::default())
        .read_all(&StreamId::parse(&stream).expect("id"), 1)
        .await
        .expect("read")
        .iter()
        .filter(|e| e.snapshot_due)
        .map(|e| e.version)
        .collect();
    assert_eq!(due, vec![5, 10]);
    api.stop().await;
}

#[tokio::test]
async fn a_poison_snapshot_request_dead_letters_while_others_proceed() {
    let env = TestEnv::new().await;
    // Make redelivery quick for the test: the template's 360 s suits Lambda, not a test.
    env.clients
        .sqs
        .set_queue_attributes()
        .queue_url(env.resources.queue_url("SnapshotQueue"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("visibility");
    let api = env.serve().await;
    let id = api.open_account("Fine", "EUR").await;
    let queue = api.env.resources.queue_url("SnapshotQueue").to_owned();
    for body in [
        "{not a request".to_owned(),
        json!({"stream_id": format!("Account-{id}"), "version": 1}).to_string(),
    ] {
        api.env
            .clients
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(45) * eventfold_tests::patience();
    loop {
        let dead = api
            .env
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(api.env.resources.queue_url("SnapshotDeadLetterQueue"))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default()
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if dead == 1 && snapshot_version(&api.env, &format!("Account-{id}")).await == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "dead letters: {dead}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    api.stop().await;
}

/// Writes a long account stream with BatchWriteItem: some emulators make every transaction
/// cost as much as the table is large (moto deep-copies it), and 100 transactions would crawl.
async fn seed_account(env: &TestEnv, id: &str, events: usize) -> StreamId {
    let id = eventfold::EntityId::parse(id).expect("id");
    bank::testing::bulk_load_account(
        &env.clients.dynamodb,
        env.resources.table("EventsTable"),
        &id,
        events,
    )
    .await
    .expect("seed")
}

/// The DynamoDB calls one deposit costs, and the events its load folds.
async fn deposit_cost(
    commands: &CommandService,
    counter: &RequestCounter,
    stream: &StreamId,
) -> (u64, usize) {
    let folded = commands
        .load::<Account>(stream)
        .await
        .expect("load")
        .events_folded;
    counter.reset();
    commands
        .execute_one::<Account, _>(
            &CommandContext::default(),
            Target::new(stream.clone()),
            &AccountCommand::Deposit {
                amount: bank::domain::money::Amount::new(1).expect("amount"),
            },
            (),
        )
        .await
        .expect("deposit");
    (counter.total(), folded)
}

#[tokio::test]
async fn command_cost_is_flat_once_long_streams_are_snapshotted() {
    let env = TestEnv::new().await;
    let counter = RequestCounter::new();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let store = Arc::new(DynamoStore::new(
        client.clone(),
        env.resources.table("EventsTable"),
        StoreSettings::default(),
    ));
    let snapshots = Arc::new(DynamoSnapshots::new(
        client,
        env.resources.table("SnapshotsTable"),
    ));
    // Every load from the stores: what a process that has not seen the stream pays.
    let commands = CommandService::new(store.clone())
        .with_snapshots(snapshots)
        .keep_states(0);
    let short = seed_account(&env, "short", 10).await;
    let long = seed_account(&env, "long", 10_000).await;
    assert!(
        store
            .verify_stream(&long)
            .await
            .expect("verify")
            .is_intact()
    );

    let (short_calls, short_events) = deposit_cost(&commands, &counter, &short).await;
    let (long_calls, long_events) = deposit_cost(&commands, &counter, &long).await;
    assert_eq!(short_events, 10);
    assert!(
        long_calls > short_calls,
        "without a snapshot the long stream needs more pages: {long_calls} vs {short_calls}"
    );
    assert!(long_events >= 10_000);

    let snapshotter = eventfold::snapshot::Snapshotter::new(commands.clone())
        .expect("a snapshot store")
        .register::<Account>();
    for stream in [&long, &short] {
        assert!(matches!(
            snapshotter.snapshot(stream).await.expect("snapshot"),
            eventfold::snapshot::SnapshotOutcome::Written(_)
        ));
    }
    let (short_calls, short_events) = deposit_cost(&commands, &counter, &short).await;
    let (long_calls, long_events) = deposit_cost(&commands, &counter, &long).await;
    assert_eq!(long_calls, short_calls, "same round trips");
    assert_eq!(
        short_calls, 3,
        "snapshot GetItem, events Query, conditional PutItem"
    );
    assert_eq!(long_events, short_events, "same events read");
    let head = AttributeValue::N(
        store
            .read_head(&long)
            .await
            .expect("head")
            .expect("exists")
            .version()
            .to_string(),
    );
    assert_eq!(head, AttributeValue::N("10002".into()));
}

/// The on-demand backfill (what `eventfold snapshot Account` runs) snapshots every stream of a
/// category once, and nothing twice.
#[tokio::test]
async fn backfill_snapshots_a_whole_category() {
    let env = TestEnv::new().await;
    let store = env.store(StoreSettings::default());
    for (id, events) in [("b1", 3), ("b2", 120), ("b3", 1)] {
        let id = eventfold::EntityId::parse(id).expect("id");
        bank::testing::seed_account(store.as_ref(), &id, events)
            .await
            .expect("seed");
    }
    let user = StreamId::parse("User-u1").expect("id");
    store
        .append(eventfold::store::AppendRequest::single(
            user,
            eventfold::store::ExpectedVersion::NoStream,
            vec![eventfold::NewEvent::new(
                "UserRegistered",
                json!({"email": "u@example.com", "name": "U"}),
            )],
        ))
        .await
        .expect("user");
    let target = eventfold_tests::ops_target(&env);
    assert_eq!(backfilled(&target, "Account").await, (3, 3));
    for (id, version) in [("b1", 3), ("b2", 120), ("b3", 1)] {
        assert_eq!(
            snapshot_version(&env, &format!("Account-{id}")).await,
            Some(version)
        );
    }
    assert_eq!(
        snapshot_version(&env, "User-u1").await,
        None,
        "another category is left alone"
    );
    assert_eq!(backfilled(&target, "Account").await, (3, 0));
    assert_eq!(backfilled(&target, "User-u1").await, (1, 1));
}

/// Streams looked at and snapshots written by a backfill.
async fn backfilled(target: &eventfold_cli::ops::Target, what: &str) -> (usize, usize) {
    let report = eventfold_cli::ops::snapshots::backfill(target, what)
        .await
        .expect("backfill");
    (report.streams, report.written)
}

/// A snapshot whose state was changed in its table (a balance raised) is refused: a fresh
/// command function folds the account from its events and answers as they say (the refusal is
/// logged, which the template's metric filter counts for SnapshotRefusedAlarm), and the
/// snapshot function replaces the forged snapshot.
#[tokio::test]
async fn a_snapshot_changed_in_its_table_is_refused_counted_and_replaced() {
    use eventfold::lambda::metrics::{Metrics, Recorded};
    use eventfold::testing::request::request;
    let env = TestEnv::new().await;
    let spec = eventfold_tests::template()
        .function_by_binary("command-api")
        .expect("the command function");
    let config = env.resources.config(spec).expect("its configuration");
    // Each call a cold function: nothing kept from the one before.
    let function = |recorded: &Arc<Recorded>| {
        command_api::from_config(&config, &env.sdk)
            .with_metrics(Metrics::to("command-api", recorded.clone()))
    };
    let operator = eventfold_cli::local::gateway::LOCAL_OPERATOR;
    let recorded = Arc::new(Recorded::default());
    let opened = function(&recorded)
        .respond(
            request("POST", "/accounts")
                .json(&json!({"owner": "Signed", "currency": "EUR"}))
                .iam_caller(operator)
                .api_request(),
        )
        .await;
    assert_eq!(opened.status_code, 201);
    let id = match opened.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
        _ => panic!("no body"),
    };
    let money = |route: &str, amount: u64| {
        request("POST", route)
            .path_param("id", &id)
            .json(&json!({ "amount": amount }))
            .iam_caller(operator)
            .api_request()
    };
    for _ in 0..3 {
        let deposited = function(&recorded)
            .respond(money("/accounts/{id}/deposits", 100))
            .await;
        assert_eq!(deposited.status_code, 200);
    }
    let target = eventfold_tests::ops_target(&env);
    assert_eq!(backfilled(&target, &format!("Account-{id}")).await, (1, 1));

    let stream = format!("Account-{id}");
    env.clients
        .dynamodb
        .update_item()
        .table_name(env.resources.table("SnapshotsTable"))
        .key("stream_id", AttributeValue::S(stream.clone()))
        .update_expression("SET #state.#balance = :forged")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#balance", "balance")
        .expression_attribute_values(":forged", AttributeValue::N("1000000".into()))
        .send()
        .await
        .expect("the snapshot tampered with");

    let refusals = Arc::new(Recorded::default());
    let overdraft = function(&Arc::new(Recorded::default()))
        .respond(money("/accounts/{id}/withdrawals", 500))
        .await;
    assert_eq!(overdraft.status_code, 422, "{overdraft:?}");
    let said = format!("{:?}", overdraft.body);
    assert!(said.contains("balance 300"), "the events' balance: {said}");
    // What a written command's metrics record counted (the log line, which the template's
    // filter counts, is written for every refusal, a refused command's too).
    let counted = |recorded: &Recorded| {
        recorded
            .lines()
            .iter()
            .filter_map(|line| eventfold::lambda::metrics::parse_emf(line).ok())
            .filter_map(|values| {
                values
                    .get("SnapshotsRefused")
                    .and_then(serde_json::Value::as_f64)
            })
            .sum::<f64>()
    };
    let withdrawn = function(&refusals)
        .respond(money("/accounts/{id}/withdrawals", 100))
        .await;
    assert_eq!(withdrawn.status_code, 200, "{withdrawn:?}");
    assert_eq!(counted(&refusals), 1.0, "counted: {:?}", refusals.lines());

    assert_eq!(
        backfilled(&target, &stream).await,
        (1, 1),
        "the forged snapshot is replaced"
    );
    let honest = Arc::new(Recorded::default());
    let withdrawn = function(&honest)
        .respond(money("/accounts/{id}/withdrawals", 100))
        .await;
    assert_eq!(withdrawn.status_code, 200);
    assert_eq!(counted(&honest), 0.0, "{:?}", honest.lines());

    // One moved ahead of its stream is refused and replaced too (kept, it would switch
    // snapshots off for the stream: no later one is ever newer).
    env.clients
        .dynamodb
        .update_item()
        .table_name(env.resources.table("SnapshotsTable"))
        .key("stream_id", AttributeValue::S(stream.clone()))
        .update_expression("SET #version = :ahead")
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":ahead", AttributeValue::N("999".into()))
        .send()
        .await
        .expect("the snapshot moved ahead");
    let ahead = Arc::new(Recorded::default());
    let withdrawn = function(&ahead)
        .respond(money("/accounts/{id}/withdrawals", 50))
        .await;
    assert_eq!(withdrawn.status_code, 200, "{withdrawn:?}");
    assert_eq!(counted(&ahead), 1.0, "counted: {:?}", ahead.lines());
    assert_eq!(
        backfilled(&target, &stream).await,
        (1, 1),
        "the snapshot ahead is replaced"
    );
    let stored = env
        .snapshots()
        .load_snapshot(&StreamId::parse(&stream).expect("id"))
        .await
        .expect("read")
        .expect("a snapshot");
    assert_eq!(stored.version, 7, "at the stream's head");
}
