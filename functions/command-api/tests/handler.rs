//! Handler tests: API Gateway v2 fixture events against the memory store, for every POST route
//! and every error status, plus hostile bodies thrown at every route.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::sync::Arc;

use async_trait::async_trait;
use bank::service::BankingService;
use eventfold::StoreError;
use eventfold::command::{CommandService, RetryPolicy};
use eventfold::envelope::StreamHead;
use eventfold::error::Unavailable;
use eventfold::ids::{CommandId, StreamId};
use eventfold::lambda::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use eventfold::lambda::aws_lambda_events::encodings::Body;
use eventfold::lambda::command_api::CommandApi;
use eventfold::lambda::http::ApiRequest;
use eventfold::lambda::metrics::{Metrics, Recorded};
use eventfold::store::{
    AppendRequest, AppendResult, CommandRecord, CurrentVersion, DocumentPage, EventStore,
    MemorySnapshots, MemoryStore, ReadRange, StoreSettings,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The caller every request comes from, as API Gateway's IAM authorizer names it.
const TELLER: &str = "arn:aws:iam::123456789012:user/teller";

/// The event API Gateway sends for `path` matched to `route_key`, from the IAM caller, with a
/// JSON content type unless `headers` removes it (an empty value removes a header).
fn request(
    route_key: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> ApiGatewayV2httpRequest {
    let (method, template) = route_key.split_once(' ').unwrap();
    let mut builder = eventfold::testing::request::request(method, template).iam_caller(TELLER);
    for (segment, value) in template.split('/').zip(path.split('/')) {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            builder = builder.path_param(name, value);
        }
    }
    let mut all: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        all.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            all.push((name, (*value).to_owned()));
        }
    }
    for (name, value) in &all {
        builder = builder.header(name, value);
    }
    builder.body(body).build()
}

struct Reply {
    status: i64,
    headers: http::HeaderMap,
    body: Value,
}

impl Reply {
    fn new(response: ApiGatewayV2httpResponse) -> Self {
        let text = match response.body {
            Some(Body::Text(text)) => text,
            _ => String::new(),
        };
        Self {
            status: response.status_code,
            headers: response.headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn problem(&self, status: i64, slug: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            self.body["type"],
            json!(format!("https://eventfold.dev/problems/{slug}"))
        );
        assert_eq!(self.body["status"], json!(status));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

struct Fixture {
    app: CommandApi<BankingService>,
    store: Arc<MemoryStore>,
    metrics: Arc<Recorded>,
}

impl Fixture {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let metrics = Arc::new(Recorded::default());
        Self {
            app: app_over(store.clone()).with_metrics(Metrics::to("command-api", metrics.clone())),
            store,
            metrics,
        }
    }

    /// The `Outcome` of every metrics record so far.
    fn outcomes(&self) -> Vec<String> {
        self.metrics
            .lines()
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["Outcome"].to_string())
            .map(|outcome| outcome.trim_matches('"').to_owned())
            .collect()
    }

    async fn call(
        &self,
        route_key: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        Reply::new(
            self.app
                .respond(ApiRequest::new(request(route_key, path, body, headers)))
                .await,
        )
    }

    async fn open(&self) -> String {
        let reply = self
            .call(
                "POST /accounts",
                "/accounts",
                r#"{"owner":"Ada","currency":"EUR"}"#,
                &[],
            )
            .await;
        assert_eq!(reply.status, 201);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    fn event_count(&self) -> usize {
        self.store.all_documents().len()
    }
}

fn app_over(store: Arc<dyn EventStore>) -> CommandApi<BankingService> {
    let commands = CommandService::new(store)
        .with_snapshots(Arc::new(MemorySnapshots::new()))
        .with_subject_keys(bank::testing::subject_keys())
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
        });
    command_api::api(BankingService::new(commands, bank::testing::claim_key()))
}

#[tokio::test]
async fn every_route_succeeds_with_good_input() {
    let f = Fixture::new();
    let event = request(
        "POST /accounts",
        "/accounts",
        r#"{"owner":"Ada","currency":"EUR"}"#,
        &[("X-Correlation-Id", "c-1")],
    );
    let request_id = event.request_context.request_id.clone();
    let open = Reply::new(f.app.respond(ApiRequest::new(event)).await);
    assert_eq!(open.status, 201);
    let a = open.body["id"].as_str().unwrap().to_owned();
    assert_eq!(open.body, json!({"id": a, "version": 1}));
    assert_eq!(
        open.header("location"),
        Some(format!("/accounts/{a}").as_str())
    );
    assert_eq!(open.header("etag"), Some("\"1\""));
    assert_eq!(open.header("x-correlation-id"), Some("c-1"));
    let b = f.open().await;
    let deposit = f
        .call(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":900}"#,
            &[],
        )
        .await;
    assert_eq!(
        (deposit.status, deposit.body.clone()),
        (200, json!({"id": a, "version": 2}))
    );
    let withdraw = f
        .call(
            "POST /accounts/{id}/withdrawals",
            &format!("/accounts/{a}/withdrawals"),
            r#"{"amount":100}"#,
            &[],
        )
        .await;
    assert_eq!(withdraw.body["version"], json!(3));
    let transfer = f
        .call(
            "POST /transfers",
            "/transfers",
            &json!({"from": a, "to": b, "amount": 800}).to_string(),
            &[],
        )
        .await;
    assert_eq!(transfer.status, 201);
    assert_eq!(transfer.body["from"], json!({"id": a, "version": 4}));
    assert_eq!(transfer.body["to"], json!({"id": b, "version": 2}));
    let close = f
        .call(
            "POST /accounts/{id}/close",
            &format!("/accounts/{a}/close"),
            "",
            &[],
        )
        .await;
    assert_eq!(
        (close.status, close.body["version"].clone()),
        (200, json!(5))
    );
    let user = f
        .call(
            "POST /users",
            "/users",
            r#"{"email":"ada@example.com","name":"Ada"}"#,
            &[],
        )
        .await;
    assert_eq!(user.status, 201);
    // Metadata: correlation, causation (API Gateway's request id) and actor (the IAM caller).
    let stream = StreamId::parse(&format!("Account-{a}")).unwrap();
    let first = &f.store.read_all(&stream, 1).await.unwrap()[0];
    assert_eq!(first.metadata.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(first.metadata.causation_id, request_id);
    assert!(request_id.is_some());
    assert_eq!(first.metadata.actor.as_deref(), Some(TELLER));
}

/// JSON Schema counts `1200.0` as an integer, so the OpenAPI document allows it; the API takes it.
#[tokio::test]
async fn whole_numbers_written_with_a_fraction_or_exponent_are_amounts() {
    let f = Fixture::new();
    let a = f.open().await;
    let b = f.open().await;
    for (body, version) in [
        (r#"{"amount":1200.0}"#, 2),
        (r#"{"amount":1.5e3}"#, 3),
        (r#"{"amount":999999999999999.0}"#, 4),
    ] {
        let reply = f
            .call(
                "POST /accounts/{id}/deposits",
                &format!("/accounts/{a}/deposits"),
                body,
                &[],
            )
            .await;
        assert_eq!(
            (reply.status, reply.body["version"].clone()),
            (200, json!(version)),
            "{body}"
        );
    }
    let transfer = f
        .call(
            "POST /transfers",
            "/transfers",
            &json!({"from": a, "to": b, "amount": 2.7e3}).to_string(),
            &[],
        )
        .await;
    assert_eq!(transfer.status, 201, "{:?}", transfer.body);
    let state = |id: &str| {
        let store = f.store.clone();
        let stream = StreamId::parse(&format!("Account-{id}")).unwrap();
        async move {
            store
                .read_all(&stream, 1)
                .await
                .unwrap()
                .iter()
                .map(|e| e.payload["amount"].as_i64().unwrap_or(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(state(&a).await, [0, 1200, 1500, 999_999_999_999_999, 2700]);
    assert_eq!(state(&b).await, [0, 2700]);
}

#[tokio::test]
async fn bad_requests_are_400_and_write_nothing() {
    let f = Fixture::new();
    let a = f.open().await;
    let before = f.event_count();
    let deposit = |body: &'static str| (format!("/accounts/{a}/deposits"), body);
    for (path, body) in [
        deposit("{\"amount\": "),
        deposit("not json"),
        deposit(""),
        deposit("[]"),
        deposit("[5]"),
        deposit("{\"amount\": \"5\"}"),
        deposit("{\"amount\": 5.5}"),
        deposit("{\"amount\": 5.000001}"),
        deposit("{\"amount\": 1e15}"),
        deposit("{\"amount\": 1e16}"),
        deposit("{\"amount\": 0}"),
        deposit("{\"amount\": 0.0}"),
        deposit("{\"amount\": -3.0}"),
        deposit("{\"amount\": -3}"),
        deposit("{\"amount\": 1000000000000000}"),
        deposit("{\"amount\": 99999999999999999999999}"),
        deposit("{\"amount\": 5, \"extra\": 1}"),
        deposit("{}"),
        (format!("/accounts/{a}/deposits"), "{\"amount\": null}"),
    ] {
        let reply = f
            .call("POST /accounts/{id}/deposits", &path, body, &[])
            .await;
        assert_eq!(reply.status, 400, "{body:?} → {:?}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    f.call(
        "POST /accounts/{id}/deposits",
        "/accounts/bad id/deposits",
        r#"{"amount":1}"#,
        &[],
    )
    .await
    .problem(400, "invalid-request");
    f.call("POST /accounts", "/accounts", "{\"owner\": \"Ada\"", &[])
        .await
        .problem(400, "malformed-json");
    f.call(
        "POST /accounts",
        "/accounts",
        r#"{"owner":"Ada","currency":"eur"}"#,
        &[],
    )
    .await
    .problem(400, "invalid-request");
    f.call(
        "POST /accounts",
        "/accounts",
        r#"{"owner":"  ","currency":"EUR"}"#,
        &[],
    )
    .await
    .problem(400, "invalid-request");
    f.call(
        "POST /accounts/{id}/close",
        &format!("/accounts/{a}/close"),
        "[]",
        &[],
    )
    .await
    .problem(400, "invalid-request");
    f.call(
        "POST /accounts/{id}/deposits",
        &format!("/accounts/{a}/deposits"),
        r#"{"amount":1}"#,
        &[("Idempotency-Key", "has space")],
    )
    .await
    .problem(400, "invalid-request");
    f.call(
        "POST /accounts/{id}/deposits",
        &format!("/accounts/{a}/deposits"),
        r#"{"amount":1}"#,
        &[("If-Match", "soon")],
    )
    .await
    .problem(400, "invalid-request");
    assert_eq!(f.event_count(), before, "nothing written");
}

#[tokio::test]
async fn domain_errors_map_to_404_and_422() {
    let f = Fixture::new();
    f.call(
        "POST /accounts/{id}/deposits",
        "/accounts/ghost/deposits",
        r#"{"amount":1}"#,
        &[],
    )
    .await
    .problem(404, "not-found");
    let a = f.open().await;
    let short = f
        .call(
            "POST /accounts/{id}/withdrawals",
            &format!("/accounts/{a}/withdrawals"),
            r#"{"amount":1}"#,
            &[],
        )
        .await;
    short.problem(422, "insufficient-funds");
    assert_eq!(
        (
            short.body["balance"].clone(),
            short.body["requested"].clone()
        ),
        (json!(0), json!(1))
    );
    f.call(
        "POST /transfers",
        "/transfers",
        &json!({"from": a, "to": a, "amount": 1}).to_string(),
        &[],
    )
    .await
    .problem(422, "same-account");
    f.call(
        "POST /users",
        "/users",
        r#"{"email":"a@b.co","name":"A"}"#,
        &[],
    )
    .await;
    f.call(
        "POST /users",
        "/users",
        r#"{"email":"A@B.CO","name":"B"}"#,
        &[],
    )
    .await
    .problem(422, "email-taken");
}

#[tokio::test]
async fn if_match_mismatch_is_412() {
    let f = Fixture::new();
    let a = f.open().await;
    let reply = f
        .call(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":1}"#,
            &[("If-Match", "\"7\"")],
        )
        .await;
    reply.problem(412, "precondition-failed");
    assert_eq!(reply.body["current_version"], json!(1));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let f = Fixture::new();
    let body = json!({"owner": "x".repeat(65 * 1024), "currency": "EUR"}).to_string();
    f.call("POST /accounts", "/accounts", &body, &[])
        .await
        .problem(413, "payload-too-large");
    assert_eq!(f.event_count(), 0);
}

#[tokio::test]
async fn idempotent_replay_is_identical() {
    let f = Fixture::new();
    let key = [("Idempotency-Key", "k-1")];
    let first = f
        .call(
            "POST /accounts",
            "/accounts",
            r#"{"owner":"Ada","currency":"EUR"}"#,
            &key,
        )
        .await;
    let again = f
        .call(
            "POST /accounts",
            "/accounts",
            r#"{ "currency" : "EUR", "owner" : "Ada" }"#,
            &key,
        )
        .await;
    assert_eq!(
        (again.status, &again.body),
        (first.status, &first.body),
        "same meaning, same answer"
    );
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(f.event_count(), 1);
    f.call(
        "POST /accounts",
        "/accounts",
        r#"{"owner":"Bob","currency":"EUR"}"#,
        &key,
    )
    .await
    .problem(422, "idempotency-key-reused");
}

/// A store whose writes always lose the race, or always fail: for 409 and 503.
#[derive(Debug)]
struct Failing {
    inner: MemoryStore,
    error: fn(&AppendRequest) -> StoreError,
}

#[async_trait]
impl EventStore for Failing {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        if request
            .writes
            .iter()
            .any(|w| w.stream_id.as_str().starts_with("Account-"))
            && request.writes[0].events[0].event_type != "AccountOpened"
        {
            return Err((self.error)(&request));
        }
        self.inner.append(request).await
    }
    async fn read_documents(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<DocumentPage, StoreError> {
        self.inner.read_documents(stream_id, range).await
    }
    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        self.inner.read_head(stream_id).await
    }
    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.read_command(command_id).await
    }
    fn settings(&self) -> &StoreSettings {
        self.inner.settings()
    }
}

async fn against(error: fn(&AppendRequest) -> StoreError) -> Reply {
    let app = app_over(Arc::new(Failing {
        inner: MemoryStore::new(),
        error,
    }));
    let open = Reply::new(
        app.respond(ApiRequest::new(request(
            "POST /accounts",
            "/accounts",
            r#"{"owner":"A","currency":"EUR"}"#,
            &[],
        )))
        .await,
    );
    let a = open.body["id"].as_str().unwrap().to_owned();
    Reply::new(
        app.respond(ApiRequest::new(request(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":1}"#,
            &[],
        )))
        .await,
    )
}

#[tokio::test]
async fn persistent_conflicts_are_409_with_retry_after() {
    let reply = against(|request| StoreError::Conflict {
        stream_id: request.writes[0].stream_id.clone(),
        expected: request.writes[0].expected,
        actual: CurrentVersion::At(99),
        next: None,
    })
    .await;
    reply.problem(409, "concurrency-conflict");
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after() {
    let reply = against(|_| {
        StoreError::Unavailable(Box::new(Unavailable {
            operation: "TransactWriteItems",
            resource: "events".into(),
            code: Some("ThrottlingException".into()),
            retryable: true,
            outcome_unknown: false,
            source: "throttled".into(),
        }))
    })
    .await;
    reply.problem(503, "store-unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(
        !reply.body["detail"].as_str().unwrap().contains("throttled"),
        "internals stay in the logs"
    );
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let f = Fixture::new();
    f.call("DELETE /accounts/{id}", "/accounts/a", "", &[])
        .await
        .problem(404, "route-not-found");
}

/// A parser differential: `{"amount":-5,"amount":300}` must not deposit 300 (or anything).
#[tokio::test]
async fn duplicate_keys_are_400_and_write_nothing() {
    let f = Fixture::new();
    let a = f.open().await;
    let before = f.event_count();
    for (route, path, body) in [
        (
            "POST /accounts/{id}/deposits",
            format!("/accounts/{a}/deposits"),
            r#"{"amount":-5,"amount":300}"#.to_owned(),
        ),
        (
            "POST /accounts",
            "/accounts".to_owned(),
            r#"{"owner":"A","currency":"EUR","owner":"B"}"#.to_owned(),
        ),
        (
            "POST /transfers",
            "/transfers".to_owned(),
            json!({"from": a, "to": "b", "amount": 1})
                .to_string()
                .replace('}', r#","amount":2}"#),
        ),
    ] {
        let reply = f.call(route, &path, &body, &[]).await;
        reply.problem(400, "malformed-json");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("duplicate key"),
            "{body}: {:?}",
            reply.body
        );
    }
    assert_eq!(f.event_count(), before, "nothing written");
}

/// A body must be sent as JSON: anything else is 415 on every route that takes one, and
/// writes nothing; a UTF-8 charset parameter is fine.
#[tokio::test]
async fn bodies_that_are_not_declared_json_are_415() {
    let f = Fixture::new();
    let a = f.open().await;
    let before = f.event_count();
    let routes = [
        (
            "POST /users",
            "/users".to_owned(),
            r#"{"email":"x@y.co","name":"X"}"#.to_owned(),
        ),
        (
            "POST /accounts",
            "/accounts".to_owned(),
            r#"{"owner":"X","currency":"EUR"}"#.to_owned(),
        ),
        (
            "POST /accounts/{id}/deposits",
            format!("/accounts/{a}/deposits"),
            r#"{"amount":5}"#.to_owned(),
        ),
        (
            "POST /accounts/{id}/withdrawals",
            format!("/accounts/{a}/withdrawals"),
            r#"{"amount":5}"#.to_owned(),
        ),
        (
            "POST /accounts/{id}/close",
            format!("/accounts/{a}/close"),
            "{}".to_owned(),
        ),
        (
            "POST /transfers",
            "/transfers".to_owned(),
            json!({"from": a, "to": "b", "amount": 1}).to_string(),
        ),
    ];
    for (route, path, body) in &routes {
        for content_type in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json-patch+json",
            "application/json; charset=latin1",
            "multipart/form-data; boundary=x",
        ] {
            let reply = f
                .call(route, path, body, &[("content-type", content_type)])
                .await;
            reply.problem(415, "unsupported-media-type");
        }
    }
    assert_eq!(f.event_count(), before, "nothing written");
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON;Charset=\"UTF-8\"",
    ] {
        let reply = f
            .call(
                "POST /accounts/{id}/deposits",
                &format!("/accounts/{a}/deposits"),
                r#"{"amount":5}"#,
                &[("content-type", content_type)],
            )
            .await;
        assert_eq!(reply.status, 200, "{content_type}: {:?}", reply.body);
    }
    // Closing without a body needs no content type.
    let b = f.open().await;
    let close = f
        .call(
            "POST /accounts/{id}/close",
            &format!("/accounts/{b}/close"),
            "",
            &[("content-type", "")],
        )
        .await;
    assert_eq!(close.status, 200);
}

/// Every answer to a command carries its command id: the client's key, or one generated so
/// that a client whose answer was lost (or was a 503) can retry safely with it.
#[tokio::test]
async fn every_command_answer_carries_its_idempotency_key() {
    let f = Fixture::new();
    let a = f.open().await;
    let given = f
        .call(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":5}"#,
            &[("Idempotency-Key", "client-key-7")],
        )
        .await;
    assert_eq!(given.header("idempotency-key"), Some("client-key-7"));
    let generated = f
        .call(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":5}"#,
            &[],
        )
        .await;
    let key = generated.header("idempotency-key").unwrap().to_owned();
    assert!(CommandId::new(key.clone()).is_ok(), "{key}");
    let refused = f
        .call(
            "POST /accounts/{id}/withdrawals",
            &format!("/accounts/{a}/withdrawals"),
            r#"{"amount":99999}"#,
            &[("Idempotency-Key", "client-key-8")],
        )
        .await;
    refused.problem(422, "insufficient-funds");
    assert_eq!(refused.header("idempotency-key"), Some("client-key-8"));
    // The generated key replays the command it was generated for.
    let replay = f
        .call(
            "POST /accounts/{id}/deposits",
            &format!("/accounts/{a}/deposits"),
            r#"{"amount":5}"#,
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, generated.body);
    let unavailable = against(|_| {
        StoreError::Unavailable(Box::new(Unavailable {
            operation: "TransactWriteItems",
            resource: "events".into(),
            code: None,
            retryable: false,
            outcome_unknown: false,
            source: "down".into(),
        }))
    })
    .await;
    unavailable.problem(503, "store-unavailable");
    assert!(unavailable.header("idempotency-key").is_some());
}

fn hostile_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("999999999999999999999999999999".to_owned()),
        ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[\\x00-\\x1f\\u{7f}-\\u{9f}\\u{202e}\\u{feff}]{1,8}"
            .prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(serde_json::to_string(&"x".repeat(5000)).unwrap()),
    ];
    let field = prop_oneof![
        Just("amount"),
        Just("owner"),
        Just("currency"),
        Just("email"),
        Just("name"),
        Just("from"),
        Just("to"),
        Just("Amount"),
        Just("__proto__"),
        Just(""),
    ];
    prop_oneof![
        // Objects with the right names but hostile values (and sometimes extra fields).
        proptest::collection::vec((field, leaf.clone()), 0..5).prop_map(|fields| {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            format!("{{{}}}", body.join(","))
        }),
        // Not objects at all.
        leaf.clone(),
        proptest::collection::vec(leaf, 0..4).prop_map(|items| format!("[{}]", items.join(","))),
        // Not JSON: truncations, garbage, control bytes.
        ".{0,60}",
        Just("{\"amount\":1".to_owned()),
        Just("\u{0}\u{0}".to_owned()),
    ]
}

fn routes(a: &str, b: &str) -> Vec<(String, String)> {
    vec![
        ("POST /users".into(), "/users".into()),
        ("POST /accounts".into(), "/accounts".into()),
        (
            "POST /accounts/{id}/deposits".into(),
            format!("/accounts/{a}/deposits"),
        ),
        (
            "POST /accounts/{id}/withdrawals".into(),
            format!("/accounts/{a}/withdrawals"),
        ),
        (
            "POST /accounts/{id}/close".into(),
            format!("/accounts/{b}/close"),
        ),
        ("POST /transfers".into(), "/transfers".into()),
        (
            "POST /accounts/{id}/deposits".into(),
            "/accounts/..%2F..%2Fetc/deposits".into(),
        ),
        (
            "POST /accounts/{id}/deposits".into(),
            format!("/accounts/{}/deposits", "9".repeat(65)),
        ),
        (
            "POST /accounts/{id}/withdrawals".into(),
            "/accounts/Ω≈ç/withdrawals".into(),
        ),
    ]
}

/// Whether a generated body could be a valid request for `routes()[route]`; those may succeed.
/// (The hostile ids of routes 6 to 8 never are; transfers name accounts that don't exist.)
fn could_be_valid(route: usize, body: &str) -> bool {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let fields = |names: &[&str]| {
        parsed.as_ref().and_then(Value::as_object).filter(|object| {
            object.len() == names.len() && names.iter().all(|n| object.contains_key(*n))
        })
    };
    let strings =
        |names: &[&str]| fields(names).is_some_and(|object| object.values().all(Value::is_string));
    match route {
        0 => strings(&["email", "name"]),
        1 => strings(&["owner", "currency"]),
        // A whole number of minor units in range, however it is written (5, 5.0, 5e0).
        2 | 3 => fields(&["amount"])
            .and_then(|object| object["amount"].as_f64())
            .is_some_and(|amount| {
                amount.fract() == 0.0 && (1.0..=999_999_999_999_999.0).contains(&amount)
            }),
        // Closing takes nothing (or only whitespace) or an empty object.
        4 => {
            body.trim_matches(|c: char| c.is_ascii_whitespace())
                .is_empty()
                || fields(&[]).is_some()
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the body, every POST route answers 4xx problem+json and writes nothing.
    #[test]
    fn hostile_bodies_get_4xx_and_write_nothing(body in hostile_json(), route in 0usize..9, key in proptest::option::of("[ -~]{0,140}")) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let f = Fixture::new();
            let a = f.open().await;
            let b = f.open().await;
            let before = f.event_count();
            let (route_key, path) = routes(&a, &b)[route].clone();
            let headers: Vec<(&str, &str)> = key.as_deref().map(|k| vec![("Idempotency-Key", k)]).unwrap_or_default();
            let reply = f.call(&route_key, &path, &body, &headers).await;
            if could_be_valid(route, &body) && (200..300).contains(&reply.status) {
                return Ok(());
            }
            prop_assert!((400..500).contains(&reply.status), "{route_key} {body:?} → {} {:?}", reply.status, reply.body);
            prop_assert_eq!(reply.header("content-type"), Some("application/problem+json"));
            prop_assert!(reply.body["type"].as_str().unwrap_or_default().starts_with("https://eventfold.dev/problems/"));
            prop_assert_eq!(f.event_count(), before, "nothing written for {} {:?}", route_key, body);
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Each command's metrics record says what it came to, from the command itself, never from
/// the status of its answer.
#[tokio::test]
async fn metrics_say_what_each_command_came_to() {
    let f = Fixture::new();
    let a = f.open().await;
    let deposit = format!("/accounts/{a}/deposits");
    let key = [("Idempotency-Key", "m-1")];
    f.call(
        "POST /accounts/{id}/deposits",
        &deposit,
        r#"{"amount":5}"#,
        &key,
    )
    .await;
    f.call(
        "POST /accounts/{id}/deposits",
        &deposit,
        r#"{"amount":5}"#,
        &key,
    )
    .await;
    f.call(
        "POST /accounts/{id}/withdrawals",
        &format!("/accounts/{a}/withdrawals"),
        r#"{"amount":99}"#,
        &[],
    )
    .await;
    f.call(
        "POST /accounts/{id}/deposits",
        &deposit,
        r#"{"amount":0}"#,
        &[],
    )
    .await;
    f.call(
        "POST /accounts/{id}/deposits",
        &deposit,
        r#"{"amount":5}"#,
        &[("If-Match", "\"1\"")],
    )
    .await;
    f.call(
        "POST /users",
        "/users",
        r#"{"email":"a@b.co","name":"A"}"#,
        &[],
    )
    .await;
    f.call(
        "POST /users",
        "/users",
        r#"{"email":"a@b.co","name":"B"}"#,
        &[],
    )
    .await;
    assert_eq!(
        f.outcomes(),
        [
            "written",
            "written",
            "replayed",
            "rejected",
            "invalid",
            "precondition-failed",
            "written",
            "rejected"
        ]
    );
}
