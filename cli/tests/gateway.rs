//! The local gateway as an attacker or a bad network meets it: every refusal is problem+json,
//! and slow or idle clients are let go within the limits. Raw TCP on 127.0.0.1, a stub
//! function behind the routes, short limits so the test is quick.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use eventfold_cli::local::functions::{FunctionError, HttpHandler};
use eventfold_cli::local::gateway::{Gateway, Limits, Route};
use eventfold_cli::local::template::RouteSpec;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
struct Echo;

#[async_trait]
impl HttpHandler for Echo {
    async fn invoke(
        &self,
        request: ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, FunctionError> {
        let body = serde_json::json!({
            "route": request.route_key,
            "bytes": request.body.map_or(0, |b| b.len()),
        });
        Ok(eventfold::lambda::http::json_response(200, &body))
    }
}

const LIMITS: Limits = Limits {
    head_timeout: Duration::from_millis(400),
    body_timeout: Duration::from_millis(400),
};

async fn gateway() -> std::net::SocketAddr {
    let route = |method: &str, path: &str| {
        Route::new(
            &RouteSpec {
                logical_id: "R".into(),
                method: method.into(),
                path: path.into(),
                function: "F".into(),
                auth: eventfold_cli::local::template::RouteAuth::None,
            },
            Arc::new(Echo),
        )
    };
    let gateway = Gateway::new(vec![
        route("POST", "/accounts"),
        route("GET", "/accounts/{id}"),
        route("POST", "/accounts/{id}/deposits"),
    ])
    .with_limits(LIMITS);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_keep, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _keep;
        Arc::new(gateway).serve(listener, shutdown).await;
    });
    address
}

/// Sends raw bytes (then keeps the connection open, writing nothing more) and reads the
/// answer until the server closes; returns it and how long that took.
async fn exchange(address: std::net::SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the gateway held the connection for 10 s");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// The status and problem document of an answer; panics unless it is problem+json.
#[track_caller]
fn problem(answer: &str) -> (u16, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    let document: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(document["status"], status, "{answer}");
    assert!(
        document["type"]
            .as_str()
            .unwrap()
            .starts_with("https://eventfold.dev/problems/")
    );
    (status, document)
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let address = gateway().await;
    let (answer, _) = exchange(address, b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(problem(&answer).0, 404);
    let (answer, _) = exchange(address, b"DELETE /accounts/a1 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (status, document) = problem(&answer);
    assert_eq!(status, 405);
    assert!(
        answer.to_ascii_lowercase().contains("allow: get"),
        "{answer}"
    );
    assert!(document["detail"].as_str().unwrap().contains("DELETE"));
    let (answer, _) = exchange(address, b"GET /accounts/a1 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a real route still works: {answer}"
    );
}

#[tokio::test]
async fn malformed_and_oversized_heads_are_problem_json() {
    let address = gateway().await;
    let (answer, _) = exchange(address, b"GET /accounts/a1 HTTP/1.1\r\nbad header\r\n\r\n").await;
    assert_eq!(problem(&answer).0, 400);
    let (answer, _) = exchange(address, b"G\x01T / HTTP/1.1\r\n\r\n").await;
    assert_eq!(problem(&answer).0, 400);
    let long = format!(
        "GET /accounts/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(5000)
    );
    assert_eq!(problem(&exchange(address, long.as_bytes()).await.0).0, 414);
    let many: String = (0..100).map(|n| format!("x-h{n}: v\r\n")).collect();
    let head = format!("GET /accounts/a1 HTTP/1.1\r\n{many}\r\n");
    assert_eq!(problem(&exchange(address, head.as_bytes()).await.0).0, 431);
    let big = format!(
        "GET /accounts/a1 HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "v".repeat(20_000)
    );
    assert_eq!(problem(&exchange(address, big.as_bytes()).await.0).0, 431);
}

#[tokio::test]
async fn oversized_and_unreadable_bodies_are_problem_json() {
    let address = gateway().await;
    let size = 10 * 1024 * 1024 + 1;
    let mut request =
        format!("POST /accounts HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n")
            .into_bytes();
    request.extend(std::iter::repeat_n(b'x', size));
    assert_eq!(problem(&exchange(address, &request).await.0).0, 413);
    let chunked = b"POST /accounts HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nZZ\r\nnot hex\r\n0\r\n\r\n";
    let (answer, _) = exchange(address, chunked).await;
    let (status, document) = problem(&answer);
    assert_eq!(status, 400, "an unreadable body is not too large: {answer}");
    assert!(
        document["detail"]
            .as_str()
            .unwrap()
            .contains("could not be read")
    );
}

#[tokio::test]
async fn slow_and_idle_clients_are_let_go_within_the_limits() {
    let address = gateway().await;
    let bound = LIMITS.head_timeout + Duration::from_millis(600);
    // Headers that never finish.
    let (answer, took) = exchange(address, b"POST /accounts HTTP/1.1\r\nhost: x\r\n").await;
    assert_eq!(problem(&answer).0, 408);
    assert!(took < bound, "partial headers held {took:?}");
    // A body shorter than its Content-Length.
    let (answer, took) = exchange(
        address,
        b"POST /accounts HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"owner\"",
    )
    .await;
    assert_eq!(problem(&answer).0, 408);
    assert!(
        took < LIMITS.body_timeout + Duration::from_millis(600),
        "short body held {took:?}"
    );
    // A connection that sends nothing is closed without an answer.
    let (answer, took) = exchange(address, b"").await;
    assert!(answer.is_empty(), "{answer}");
    assert!(took < bound, "an idle connection held {took:?}");
}
