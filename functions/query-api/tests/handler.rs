//! Handler tests: API Gateway v2 fixture events for every GET route, against memory stores.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use bank::domain::Name;
use bank::domain::account::AccountEvent;
use bank::domain::money::{Amount, Currency};
use bank::service::BankingService;
use eventfold::aggregate::to_new_event;
use eventfold::command::CommandService;
use eventfold::http::ApiRequest;
use eventfold::projection::{MemoryReadModel, StreamProjector};
use eventfold::snapshot::MemorySnapshots;
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion};
use eventfold::{EventMetadata, MemoryStore, StreamId};
use query_api::App;
use serde_json::{Value, json};

fn request(
    route_key: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
) -> ApiGatewayV2httpRequest {
    let query_map: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), json!(v))
        })
        .collect();
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"accept": "application/json"},
        "queryStringParameters": query_map,
        "pathParameters": params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc", "requestId": "r-1", "routeKey": route_key,
            "stage": "$default", "time": "23/Nov/2026:20:21:35 +0000", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "t"}
        },
        "isBase64Encoded": false
    }))
    .unwrap()
}

struct Setup {
    app: App,
    store: Arc<MemoryStore>,
}

async fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let read_model = Arc::new(MemoryReadModel::new(bank::names::accounts::ACCOUNT_ID));
    let eur = Currency::parse("EUR").unwrap();
    let events = [
        AccountEvent::AccountOpened {
            owner: Name::parse("Ada").unwrap(),
            currency: eur,
        },
        AccountEvent::MoneyDeposited {
            amount: Amount::new(500).unwrap(),
            currency: eur,
        },
        AccountEvent::MoneyWithdrawn {
            amount: Amount::new(200).unwrap(),
            currency: eur,
        },
    ];
    let stream = StreamId::parse("Account-a1").unwrap();
    let new_events = events
        .iter()
        .map(|e| to_new_event(e, &EventMetadata::default()).unwrap())
        .collect();
    store
        .append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::NoStream,
            new_events,
        ))
        .await
        .unwrap();
    let projector = bank::accounts_projector(read_model.clone(), store.clone());
    projector
        .project_stream(&store.read_all(&stream, 1).await.unwrap())
        .await
        .into_result()
        .unwrap();
    let service = BankingService::new(
        CommandService::new(store.clone()).with_snapshots(Arc::new(MemorySnapshots::new())),
    );
    Setup {
        app: App::new(service, read_model),
        store,
    }
}

async fn get(
    app: &App,
    route_key: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
) -> (i64, Value, http::HeaderMap) {
    let response = app
        .respond(ApiRequest::new(request(route_key, path, params, query)))
        .await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        _ => Value::Null,
    };
    (response.status_code, body, response.headers)
}

#[tokio::test]
async fn account_row_from_the_read_model() {
    let s = setup().await;
    let (status, body, headers) = get(
        &s.app,
        "GET /accounts/{id}",
        "/accounts/a1",
        &[("id", "a1")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["balance"], json!(300));
    assert_eq!(body["version"], json!(3));
    assert_eq!(body["status"], json!("open"));
    assert!(body["updated_at"].is_string());
    assert_eq!(headers.get("etag").unwrap(), "\"3\"");
    let (status, body, _) = get(
        &s.app,
        "GET /accounts/{id}",
        "/accounts/zz",
        &[("id", "zz")],
        "",
    )
    .await;
    assert_eq!(
        (status, body["type"].clone()),
        (404, json!("https://eventfold.dev/problems/not-found"))
    );
}

#[tokio::test]
async fn state_now_and_as_of() {
    let s = setup().await;
    let (_, now, _) = get(
        &s.app,
        "GET /accounts/{id}/state",
        "/accounts/a1/state",
        &[("id", "a1")],
        "",
    )
    .await;
    assert_eq!(
        now,
        json!({"id": "a1", "owner": "Ada", "currency": "EUR", "balance": 300, "status": "open", "version": 3})
    );
    let (_, past, _) = get(
        &s.app,
        "GET /accounts/{id}/state",
        "/accounts/a1/state",
        &[("id", "a1")],
        "as_of=2",
    )
    .await;
    assert_eq!(
        (past["balance"].clone(), past["version"].clone()),
        (json!(500), json!(2))
    );
    let (_, long_ago, _) = get(
        &s.app,
        "GET /accounts/{id}/state",
        "/accounts/a1/state",
        &[("id", "a1")],
        "as_of=2001-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(long_ago["status"], json!(404));
    for bad in ["as_of=0", "as_of=soon", "as_of=-1"] {
        let (status, _, _) = get(
            &s.app,
            "GET /accounts/{id}/state",
            "/accounts/a1/state",
            &[("id", "a1")],
            bad,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn events_page_by_page() {
    let s = setup().await;
    let params = [("stream_id", "Account-a1")];
    let (_, page, _) = get(
        &s.app,
        "GET /streams/{stream_id}/events",
        "/streams/Account-a1/events",
        &params,
        "limit=2",
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], json!(3));
    let first = &page["events"][0];
    for field in [
        "version",
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "metadata",
        "payload",
    ] {
        assert!(first.get(field).is_some(), "{field} missing");
    }
    let (_, rest, _) = get(
        &s.app,
        "GET /streams/{stream_id}/events",
        "/streams/Account-a1/events",
        &params,
        "from=3&limit=2",
    )
    .await;
    assert_eq!(
        (
            rest["events"].as_array().unwrap().len(),
            rest["next"].clone()
        ),
        (1, json!(null))
    );
    for bad in ["limit=0", "limit=1001", "from=0", "from=x"] {
        let (status, _, _) = get(
            &s.app,
            "GET /streams/{stream_id}/events",
            "/streams/Account-a1/events",
            &params,
            bad,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _, _) = get(
        &s.app,
        "GET /streams/{stream_id}/events",
        "/streams/Account-none/events",
        &[("stream_id", "Account-none")],
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = get(
        &s.app,
        "GET /streams/{stream_id}/events",
        "/streams/nope/events",
        &[("stream_id", "nope")],
        "",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn verify_reports_tampering() {
    let s = setup().await;
    let params = [("stream_id", "Account-a1")];
    let (_, ok, _) = get(
        &s.app,
        "GET /streams/{stream_id}/verify",
        "/streams/Account-a1/verify",
        &params,
        "",
    )
    .await;
    assert_eq!(
        (ok["ok"].clone(), ok["events"].clone()),
        (json!(true), json!(3))
    );
    let stream = StreamId::parse("Account-a1").unwrap();
    s.store.tamper_with(&stream, 2, |item| {
        item.insert(
            "event_type".into(),
            aws_sdk_dynamodb::types::AttributeValue::S("MoneyWithdrawn".into()),
        );
    });
    let (_, broken, _) = get(
        &s.app,
        "GET /streams/{stream_id}/verify",
        "/streams/Account-a1/verify",
        &params,
        "",
    )
    .await;
    assert_eq!(broken, json!({"ok": false, "first_bad_version": 2}));
}

#[tokio::test]
async fn openapi_is_served() {
    let s = setup().await;
    let (status, doc, _) = get(&s.app, "GET /openapi.json", "/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], json!("3.1.0"));
}
