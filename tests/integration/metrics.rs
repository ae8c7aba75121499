//! Every function writes CloudWatch Embedded Metric Format records: each one's record is
//! parsed as CloudWatch would, and holds the metrics the dashboard shows.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::event::sqs::SqsMessage;
use eventfold::http::ApiRequest;
use eventfold::metrics::{Metrics, Recorded, parse_emf};
use eventfold::store::EventStore;
use eventfold_tests::{TestEnv, template};
use serde_json::{Map, Value, json};

fn request(route_key: &str, path: &str, id: Option<&str>, body: Option<Value>) -> ApiRequest {
    let mut event = json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"routeKey": route_key, "requestId": "r", "http": {"method": "GET", "path": path}},
        "isBase64Encoded": false
    });
    if let Some(id) = id {
        event["pathParameters"] = json!({"id": id});
    }
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    let event: ApiGatewayV2httpRequest = serde_json::from_value(event).expect("an API event");
    ApiRequest::new(event)
}

/// The one record a sink got, its metrics by name.
#[track_caller]
fn record(recorded: &Recorded) -> Map<String, Value> {
    let lines = recorded.lines();
    assert!(!lines.is_empty(), "no EMF record");
    parse_emf(lines.last().expect("a line")).expect("valid EMF")
}

async fn insert_record(env: &TestEnv, stream: &str) -> EventRecord {
    let store = env.store(eventfold::StoreSettings::default());
    let stream_id = eventfold::StreamId::parse(stream).expect("id");
    let event = &store.read_all(&stream_id, 1).await.expect("read")[0];
    let image = serde_json::to_value(serde_dynamo::Item::from(
        eventfold::codec::encode_event(event).expect("encoded"),
    ))
    .expect("image");
    let batch: DynamoDbEvent = serde_json::from_value(json!({"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {}, "NewImage": image, "SequenceNumber": "1", "SizeBytes": 1,
                     "StreamViewType": "NEW_IMAGE"},
    }]}))
    .expect("a stream event");
    batch.records.into_iter().next().expect("a record")
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
    let command_api = command_api::App::from_config(&config("command-api"), dynamodb.clone())
        .with_metrics(Metrics::to(command_api::FUNCTION, commands.clone()));
    let opened = command_api
        .respond(request(
            "POST /accounts",
            "/accounts",
            None,
            Some(json!({"owner": "Metric", "currency": "EUR"})),
        ))
        .await;
    assert_eq!(opened.status_code, 201);
    let values = record(&commands);
    for metric in [
        "Commands",
        "CommandLatency",
        "ConflictsRetried",
        "AppendLatency",
        "EventsFoldedPastSnapshot",
    ] {
        assert!(
            values.contains_key(metric),
            "command-api: {metric} in {values:?}"
        );
    }
    let line: Value = serde_json::from_str(&commands.lines()[0]).expect("JSON");
    assert_eq!(line["Outcome"], "written");
    let id = match opened.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str::<Value>(&text).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
        _ => panic!("no body"),
    };

    let reads = Arc::new(Recorded::default());
    let query_api = query_api::App::from_config(&config("query-api"), dynamodb.clone())
        .with_metrics(Metrics::to(query_api::FUNCTION, reads.clone()));
    query_api
        .respond(request(
            "GET /accounts/{id}/state",
            &format!("/accounts/{id}/state"),
            Some(&id),
            None,
        ))
        .await;
    assert!(record(&reads).contains_key("Reads"));

    let stream_record = insert_record(&env, &format!("Account-{id}")).await;
    let projected = Arc::new(Recorded::default());
    let projector =
        project_accounts::App::from_config(&config("project-accounts"), dynamodb.clone())
            .with_metrics(Metrics::to(project_accounts::FUNCTION, projected.clone()));
    projector
        .process(std::slice::from_ref(&stream_record))
        .await;
    let values = record(&projected);
    assert_eq!(values["EventsProjected"], json!(1.0));
    assert!(
        values["ProjectionLag"]
            .as_f64()
            .is_some_and(|lag| lag >= 0.0),
        "{values:?}"
    );

    let published = Arc::new(Recorded::default());
    let publisher = publish_events::from_config(&config("publish-events"), env.clients.sqs.clone())
        .with_metrics(Metrics::to(publish_events::FUNCTION, published.clone()));
    publisher
        .process(std::slice::from_ref(&stream_record))
        .await;
    let values = record(&published);
    assert_eq!(values["EventsPublished"], json!(1.0));
    assert!(values.contains_key("PublishLag"));

    let snapshots = Arc::new(Recorded::default());
    let snapshotter = snapshot_streams::from_config(&config("snapshot-streams"), dynamodb)
        .with_metrics(Metrics::to(snapshot_streams::FUNCTION, snapshots.clone()));
    let mut message = SqsMessage::default();
    message.message_id = Some("m".into());
    message.body = Some(json!({"stream_id": format!("Account-{id}"), "version": 1}).to_string());
    snapshotter.process(&[message]).await;
    assert_eq!(record(&snapshots)["SnapshotsWritten"], json!(1.0));
}
