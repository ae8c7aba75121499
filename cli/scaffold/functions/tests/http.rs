//! The service over HTTP, as `make local` runs it: each function's own binary through a local
//! Lambda Runtime API, on the emulator's DynamoDB, Streams and SQS, the read model kept by the
//! projector from the events stream; callers are users of the service's Cognito pool, their
//! tokens checked as API Gateway checks them.

use std::path::Path;
use std::time::{Duration, Instant};

use eventfold_cli::local::service::{LocalService, emulator_endpoint};
use serde_json::{Value, json};
use {{service_rs}}_functions::{OPERATOR, READ, WRITE};

/// Every function of the template, started from the binaries cargo built for this test.
async fn start() -> LocalService {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binaries = Path::new(env!("CARGO_BIN_EXE_{{service}}-command-api"))
        .parent()
        .expect("the binaries' folder");
    LocalService::start(&root.join("infra/template.yaml"), binaries, &emulator_endpoint())
        .await
        .expect("the local service starts")
}

/// Requests as the bearer of a token.
struct Caller(String);

impl Caller {
    async fn post(&self, url: &str, body: &Value, key: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = reqwest::Client::new().post(url).bearer_auth(&self.0).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(&self.0)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn commands_show_in_the_read_model_and_refusals_are_problems() {
    let service = start().await;
    let base = service.url();
    let writer = Caller(service.token("writer", &[WRITE, READ]).await.expect("a token"));
    let (status, headers, created) =
        writer.post(&format!("{base}/{{aggregates_kebab}}"), &json!({"name": "first"}), Some("register-1")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(headers["location"], format!("/{{aggregates_kebab}}/{id}").as_str());
    // The same key again is the same answer, and writes nothing.
    let (again, replayed, body) =
        writer.post(&format!("{base}/{{aggregates_kebab}}"), &json!({"name": "first"}), Some("register-1")).await;
    assert_eq!((again, &body), (201, &created));
    assert_eq!(replayed["idempotent-replayed"], "true");

    let (status, _, renamed) =
        writer.post(&format!("{base}/{{aggregates_kebab}}/{id}/rename"), &json!({"name": "second"}), None).await;
    assert_eq!((status, renamed["version"].clone()), (200, json!(2)), "{renamed}");
    let (status, _, archived) = writer.post(&format!("{base}/{{aggregates_kebab}}/{id}/archive"), &json!({}), None).await;
    assert_eq!(status, 200, "{archived}");

    // Refused by the domain: problem+json, nothing written.
    let (status, headers, problem) =
        writer.post(&format!("{base}/{{aggregates_kebab}}/{id}/rename"), &json!({"name": "third"}), None).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    // Bad input: a blank name is a 400 before any command runs.
    let (status, _, problem) = writer.post(&format!("{base}/{{aggregates_kebab}}"), &json!({"name": " "}), None).await;
    assert_eq!(status, 400, "{problem}");

    // The read model follows through DynamoDB Streams and the projector function.
    let deadline = Instant::now() + Duration::from_secs(30);
    let row = loop {
        let (status, row) = writer.get(&format!("{base}/{{aggregates_kebab}}/{id}")).await;
        if status == 200 && row["version"] == json!(3) {
            break row;
        }
        assert!(Instant::now() < deadline, "the read model did not catch up: {status} {row}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((row["name"].clone(), row["status"].clone()), (json!("second"), json!("archived")));
    let (status, state) = writer.get(&format!("{base}/{{aggregates_kebab}}/{id}/state?as_of=1")).await;
    assert_eq!((status, state["name"].clone()), (200, json!("first")), "{state}");
    // Verification is an operator's; without a token, or without the route's scope, nothing.
    let (status, hidden) = writer.get(&format!("{base}/streams/{{Aggregate}}-{id}/verify")).await;
    assert_eq!(status, 404, "{hidden}");
    let operator = Caller(service.token("operator", &[READ, OPERATOR]).await.expect("a token"));
    let (status, verified) = operator.get(&format!("{base}/streams/{{Aggregate}}-{id}/verify")).await;
    assert_eq!(status, 200, "{verified}");
    let (status, _, _) = operator.post(&format!("{base}/{{aggregates_kebab}}"), &json!({"name": "x"}), None).await;
    assert_eq!(status, 403, "reading is not writing");
    let (status, _) = Caller(String::new()).get(&format!("{base}/{{aggregates_kebab}}/{id}")).await;
    assert_eq!(status, 401);

    // The global feed (an operator's) holds the three events once each, in version order.
    assert_eq!(writer.get(&format!("{base}/feed")).await.0, 403);
    let stream = format!("{{Aggregate}}-{id}");
    let mut versions = Vec::new();
    let mut after = String::new();
    while versions.len() < 3 {
        let (status, page) = operator.get(&format!("{base}/feed?limit=1000{after}")).await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().expect("entries");
        versions.extend(entries.iter().filter(|e| e["stream_id"] == json!(stream)).map(|e| e["version"].clone()));
        after = format!("&after={}", page["next"].as_str().expect("a cursor"));
        if entries.is_empty() {
            assert!(Instant::now() < deadline + Duration::from_secs(30), "{stream} in the feed: {versions:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(versions, [json!(1), json!(2), json!(3)]);
    service.stop().await;
}
