//! Handler tests: API Gateway v2 fixture events for every GET route, against memory stores.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::sync::Arc;

use bank::domain::Name;
use bank::domain::account::AccountEvent;
use bank::domain::money::{Amount, Currency};
use eventfold::StreamId;
use eventfold::command::CommandService;
use eventfold::encoding::to_new_event;
use eventfold::feed::{Indexer, MemoryFeed};
use eventfold::lambda::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use eventfold::lambda::aws_lambda_events::encodings::Body;
use eventfold::lambda::http::ApiRequest;
use eventfold::lambda::metrics::{Metrics, Recorded, parse_emf};
use eventfold::lambda::query_api::QueryApi;
use eventfold::projection::{MemoryReadModel, StreamProjector};
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion, MemorySnapshots, MemoryStore};
use serde_json::{Value, json};

/// The event API Gateway sends for `path` matched to `route_key` (path parameters `params`,
/// query string `query`).
fn request(
    route_key: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
) -> ApiGatewayV2httpRequest {
    let (method, template) = route_key.split_once(' ').unwrap();
    let mut builder = eventfold::testing::request::request(method, template)
        .header("accept", "application/json")
        .iam_caller("arn:aws:iam::123456789012:user/teller");
    for (name, value) in params {
        builder = builder.path_param(name, value);
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap();
        builder = builder.query(name, value);
    }
    let event = builder.build();
    assert_eq!(
        event.raw_path.as_deref(),
        Some(path),
        "the path the route makes"
    );
    event
}

struct Setup {
    app: QueryApi,
    store: Arc<MemoryStore>,
    metrics: Arc<Recorded>,
}

async fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let read_model = Arc::new(MemoryReadModel::new(bank::names::accounts::ACCOUNT_ID));
    let eur = Currency::parse("EUR").unwrap();
    let events = [
        AccountEvent::AccountOpened {
            owner: eventfold::personal::Personal::new("a1", Name::parse("Ada").unwrap()),
            currency: eur,
            owner_id: None,
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
    let new_events = events.iter().map(|e| to_new_event(e).unwrap()).collect();
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
    let commands =
        CommandService::new(store.clone()).with_snapshots(Arc::new(MemorySnapshots::new()));
    // The feed holds the account's three events, as the publisher indexes them.
    let feed = Arc::new(MemoryFeed::new(4));
    Indexer::new(feed.clone(), store.clone())
        .index(&store.read_all(&stream, 1).await.unwrap())
        .await
        .unwrap();
    let metrics = Arc::new(Recorded::default());
    Setup {
        app: query_api::api(commands, read_model, bank::testing::subject_keys(), feed)
            .with_metrics(Metrics::to("query-api", metrics.clone())),
        store,
        metrics,
    }
}

async fn get(
    app: &QueryApi,
    route_key: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
) -> (i64, Value, http::HeaderMap) {
    get_with(app, route_key, path, params, query, &[]).await
}

async fn get_with(
    app: &QueryApi,
    route_key: &str,
    path: &str,
    params: &[(&str, &str)],
    query: &str,
    headers: &[(&str, &str)],
) -> (i64, Value, http::HeaderMap) {
    let mut event = request(route_key, path, params, query);
    for (name, value) in headers {
        event.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let response = app.respond(ApiRequest::new(event)).await;
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
        json!({"id": "a1", "owner": "Ada", "currency": "EUR", "balance": 300, "status": "open", "standing_orders": {}, "version": 3})
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
    s.store.tamper_with(&stream, 2, |document| {
        document.insert("event_type".into(), json!("MoneyWithdrawn"));
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
async fn the_feed_reads_on_from_its_cursor() {
    let s = setup().await;
    let (status, body, _) = get(&s.app, "GET /feed", "/feed", &[], "limit=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partitions"], 4);
    let versions: Vec<u64> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(body["entries"][0]["event_type"], "AccountOpened");
    let next = body["next"].as_str().unwrap().to_owned();
    let query = format!("after={next}");
    let (_, body, _) = get(&s.app, "GET /feed", "/feed", &[], &query).await;
    assert_eq!(body["entries"].as_array().unwrap().len(), 1);
    assert_eq!(body["entries"][0]["version"], 3);
    let end = body["next"].as_str().unwrap().to_owned();
    let (_, body, _) = get(&s.app, "GET /feed", "/feed", &[], &format!("after={end}")).await;
    assert_eq!(body["entries"], json!([]));
    assert_eq!(body["next"], json!(end), "nothing new: the same cursor");
    for bad in ["after=1.2", "after=x.0.0.0", "limit=0", "limit=1001"] {
        let (status, body, _) = get(&s.app, "GET /feed", "/feed", &[], bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn openapi_is_served() {
    let s = setup().await;
    let (status, doc, _) = get(&s.app, "GET /openapi.json", "/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], json!("3.1.0"));
}

/// Read-your-writes: `min_version` answers from the read model once it has caught up, and from
/// the fold of the events when it has not within the bound; the header says which.
#[tokio::test]
async fn min_version_reads_your_writes_from_the_read_model_or_the_fold() {
    let s = setup().await;
    let row = |query: &'static str| {
        let app = &s.app;
        async move {
            get(
                app,
                "GET /accounts/{id}",
                "/accounts/a1",
                &[("id", "a1")],
                query,
            )
            .await
        }
    };
    let (status, body, headers) = row("min_version=3").await;
    assert_eq!((status, body["version"].clone()), (200, json!(3)));
    assert_eq!(headers.get("eventfold-source").unwrap(), "read-model");
    // A deposit the read model has not seen yet.
    let stream = StreamId::parse("Account-a1").unwrap();
    let deposit = AccountEvent::MoneyDeposited {
        amount: Amount::new(50).unwrap(),
        currency: Currency::parse("EUR").unwrap(),
    };
    s.store
        .append(AppendRequest::single(
            stream,
            ExpectedVersion::Exact(3),
            vec![to_new_event(&deposit).unwrap()],
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, body, headers) = row("min_version=4").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["version"].clone(), body["balance"].clone()),
        (json!(4), json!(350))
    );
    assert_eq!(headers.get("eventfold-source").unwrap(), "fold");
    assert!(
        body["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        started.elapsed() >= eventfold::lambda::query_api::READ_YOUR_WRITES_WAIT,
        "it waited first"
    );
    // Without min_version the read model answers as it is.
    let (_, body, headers) = row("").await;
    assert_eq!(body["version"], json!(3));
    assert_eq!(headers.get("eventfold-source").unwrap(), "read-model");
    let (status, _, _) = row("min_version=0").await;
    assert_eq!(status, 400);
    // An account that does not exist is not found either way.
    let (status, _, _) = get(
        &s.app,
        "GET /accounts/{id}",
        "/accounts/zz",
        &[("id", "zz")],
        "min_version=1",
    )
    .await;
    assert_eq!(status, 404);
}

/// Every GET carries an ETag; If-None-Match naming it gets a 304 without a body.
#[tokio::test]
async fn gets_carry_etags_and_if_none_match_is_304() {
    let s = setup().await;
    for (route, path, params, query) in [
        ("GET /accounts/{id}", "/accounts/a1", vec![("id", "a1")], ""),
        (
            "GET /accounts/{id}/state",
            "/accounts/a1/state",
            vec![("id", "a1")],
            "",
        ),
        (
            "GET /streams/{stream_id}/events",
            "/streams/Account-a1/events",
            vec![("stream_id", "Account-a1")],
            "limit=2",
        ),
        (
            "GET /streams/{stream_id}/verify",
            "/streams/Account-a1/verify",
            vec![("stream_id", "Account-a1")],
            "",
        ),
        ("GET /openapi.json", "/openapi.json", vec![], ""),
    ] {
        let (status, _, headers) = get(&s.app, route, path, &params, query).await;
        assert_eq!(status, 200, "{route}");
        let tag = headers
            .get("etag")
            .expect("an ETag")
            .to_str()
            .unwrap()
            .to_owned();
        let (status, body, headers) = get_with(
            &s.app,
            route,
            path,
            &params,
            query,
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!((status, body), (304, Value::Null), "{route}");
        assert_eq!(headers.get("etag").unwrap(), tag.as_str());
        let (status, _, _) = get_with(
            &s.app,
            route,
            path,
            &params,
            query,
            &[("if-none-match", "\"other\"")],
        )
        .await;
        assert_eq!(status, 200, "{route}");
    }
    let lines = s.metrics.lines();
    let values = parse_emf(lines.last().unwrap()).unwrap();
    assert_eq!(values["Reads"], json!(1.0));
    assert!(values["ReadLatency"].as_f64().is_some());
}

/// One request's work is bounded however long the stream: verification goes 10,000 events at a
/// time and says where to go on, and time travel past 10,000 events to fold is refused
/// (with no snapshot to start from) rather than read.
#[tokio::test]
async fn verification_and_time_travel_are_bounded_per_request() {
    use eventfold::lambda::query_api::MAX_EVENTS_PER_REQUEST;
    let s = setup().await;
    let id = eventfold::EntityId::parse("long").unwrap();
    let length = MAX_EVENTS_PER_REQUEST + 5;
    bank::testing::seed_account(s.store.as_ref(), &id, length)
        .await
        .unwrap();
    let verify = "GET /streams/{stream_id}/verify";
    let (status, first, _) = get(
        &s.app,
        verify,
        "/streams/Account-long/verify",
        &[("stream_id", "Account-long")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (
            first["ok"].clone(),
            first["events"].clone(),
            first["next"].clone()
        ),
        (
            json!(true),
            json!(MAX_EVENTS_PER_REQUEST),
            json!(MAX_EVENTS_PER_REQUEST + 1)
        )
    );
    let from = (MAX_EVENTS_PER_REQUEST + 1).to_string();
    let (status, rest, _) = get(
        &s.app,
        verify,
        "/streams/Account-long/verify",
        &[("stream_id", "Account-long")],
        &format!("from={from}"),
    )
    .await;
    assert_eq!(
        (status, rest["events"].clone(), rest["next"].clone()),
        (200, json!(5), Value::Null),
        "{rest}"
    );
    let state = "GET /accounts/{id}/state";
    let (status, refused, _) = get(
        &s.app,
        state,
        "/accounts/long/state",
        &[("id", "long")],
        &format!("as_of={length}"),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["type"],
        json!("https://eventfold.dev/problems/history-too-long")
    );
    let (status, early, _) = get(
        &s.app,
        state,
        "/accounts/long/state",
        &[("id", "long")],
        "as_of=10",
    )
    .await;
    assert_eq!(
        (status, early["version"].clone()),
        (200, json!(10)),
        "{early}"
    );
}
