//! Every function writes CloudWatch Embedded Metric Format records: each one's record is
//! parsed as CloudWatch would, and holds the metrics the dashboard shows.

use std::sync::Arc;

use eventfold::lambda::aws_lambda_events::encodings::Body;
use eventfold::lambda::aws_lambda_events::event::dynamodb::EventRecord;
use eventfold::lambda::aws_lambda_events::event::sqs::SqsMessage;
use eventfold::lambda::consumers::PublisherFunction;
use eventfold::lambda::metrics::{Metrics, Recorded, parse_emf};
use eventfold::store::{EventStore, StoreSettings};
use eventfold::testing::records::{Change, stream_record};
use eventfold::testing::request::request;
use eventfold_tests::{TestEnv, template};
use serde_json::{Map, Value, json};

/// The one record a sink got, its metrics by name.
#[track_caller]
fn record(recorded: &Recorded) -> Map<String, Value> {
    let lines = recorded.lines();
    assert!(!lines.is_empty(), "no EMF record");
    parse_emf(lines.last().expect("a line")).expect("valid EMF")
}

/// The record holds every metric its runtime declares (what the dashboard may show).
#[track_caller]
fn holds(recorded: &Recorded, declared: &[&str]) -> Map<String, Value> {
    let values = record(recorded);
    for metric in declared {
        assert!(values.contains_key(*metric), "{metric} in {values:?}");
    }
    values
}

async fn insert_record(env: &TestEnv, stream: &str) -> EventRecord {
    let store = env.store(StoreSettings::default());
    let stream_id = eventfold::StreamId::parse(stream).expect("id");
    let event = &store.read_all(&stream_id, 1).await.expect("read")[0];
    stream_record(event, 1, Change::Insert)
}

#[tokio::test]
async fn every_function_writes_embedded_metric_format() {
    let env = TestEnv::new().await;
    let config = |binary: &str| {
        let spec = template().function_by_binary(binary).expect("function");
        env.resources.config(spec).expect("config")
    };
    let dynamodb = env.clients.dynamodb.clone();

    let commands = Arc::new(Recorded::default());
    let command_api = command_api::from_config(&config("command-api"), &env.sdk)
        .with_metrics(Metrics::to("command-api", commands.clone()));
    let open = request("POST", "/accounts")
        .json(&json!({"owner": "Metric", "currency": "EUR"}))
        .iam_caller(eventfold_cli::local::gateway::LOCAL_OPERATOR);
    let opened = command_api.respond(open.api_request()).await;
    assert_eq!(opened.status_code, 201);
    holds(&commands, eventfold::lambda::command_api::METRICS);
    let line: Value = serde_json::from_str(&commands.lines()[0]).expect("JSON");
    assert_eq!(line["Outcome"], "written");
    let id = match opened.body {
        Some(Body::Text(text)) => serde_json::from_str::<Value>(&text).expect("JSON")["id"]
            .as_str()
            .expect("id")
            .to_owned(),
        _ => panic!("no body"),
    };

    let reads = Arc::new(Recorded::default());
    let query_api = query_api::from_config(&config("query-api"), &env.sdk)
        .with_metrics(Metrics::to("query-api", reads.clone()));
    let state = request("GET", "/accounts/{id}/state")
        .path_param("id", &id)
        .iam_caller(eventfold_cli::local::gateway::LOCAL_OPERATOR);
    query_api.respond(state.api_request()).await;
    holds(&reads, eventfold::lambda::query_api::METRICS);

    let stream_record = insert_record(&env, &format!("Account-{id}")).await;
    let projected = Arc::new(Recorded::default());
    let projector = project_accounts::from_config(&config("project-accounts"), dynamodb.clone())
        .with_metrics(Metrics::to("project-accounts", projected.clone()));
    projector
        .process(std::slice::from_ref(&stream_record))
        .await;
    let values = holds(&projected, eventfold::lambda::consumers::PROJECTOR_METRICS);
    assert_eq!(values["EventsProjected"], json!(1.0));
    assert!(
        values["ProjectionLag"]
            .as_f64()
            .is_some_and(|lag| lag >= 0.0),
        "{values:?}"
    );

    let published = Arc::new(Recorded::default());
    let publisher = PublisherFunction::from_config(&config("publish-events"), &env.sdk)
        .with_metrics(Metrics::to("publish-events", published.clone()));
    publisher
        .process(std::slice::from_ref(&stream_record))
        .await;
    let values = holds(&published, eventfold::lambda::consumers::PUBLISHER_METRICS);
    assert_eq!(values["EventsPublished"], json!(1.0));
    // Indexed into the feed first: the account's first event, in one write of its partition.
    assert_eq!(values["EventsIndexed"], json!(1.0));
    assert_eq!(values["FeedWrites"], json!(1.0));

    let snapshots = Arc::new(Recorded::default());
    let snapshotter = snapshot_streams::from_config(&config("snapshot-streams"), &env.sdk)
        .expect("a snapshotter")
        .with_metrics(Metrics::to("snapshot-streams", snapshots.clone()));
    let mut message = SqsMessage::default();
    message.message_id = Some("m".into());
    message.body = Some(json!({"stream_id": format!("Account-{id}"), "version": 1}).to_string());
    snapshotter.process(&[message]).await;
    let values = holds(&snapshots, eventfold::lambda::consumers::SNAPSHOT_METRICS);
    assert_eq!(values["SnapshotsWritten"], json!(1.0));
}
