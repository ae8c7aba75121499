//! Cold start, the part the code controls: each function's release binary is started as Lambda
//! starts a `provided.al2023` bootstrap, against a Lambda Runtime API served here on 127.0.0.1,
//! and timed from process start to its first `GET /runtime/invocation/next` (the end of its init
//! phase), then through a first and later invocations. No sandbox, no download of the code and
//! the native architecture of this machine: what is measured is what the function itself spends.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

use crate::local::gateway;
use crate::local::provision::{ProvisionError, Resources};
use crate::local::template::FunctionSpec;

/// How long a function may take to initialise or to answer before the measurement gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// What one process start measured.
#[derive(Clone, Debug)]
pub struct Run {
    /// Process start to the first poll for an invocation.
    pub init: Duration,
    /// Each invocation, from handing out the event to receiving the response.
    pub invocations: Vec<Duration>,
    /// Each invocation's response body, in order.
    pub responses: Vec<Bytes>,
    /// The process's peak resident set (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

/// The runtime API's side of one process: polls, results, and the events to hand out.
struct Shared {
    polls: mpsc::UnboundedSender<Instant>,
    results: mpsc::UnboundedSender<(Instant, Result<Bytes, Bytes>)>,
    events: Mutex<mpsc::UnboundedReceiver<Bytes>>,
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn runtime_api(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = shared.polls.send(Instant::now());
        // One invocation at a time, as Lambda: the poll is held until there is an event.
        let Some(event) = shared.events.lock().await.recv().await else {
            return reply(StatusCode::GONE, Bytes::new());
        };
        let deadline = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            + PATIENCE;
        let mut response = reply(StatusCode::OK, event);
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        };
        set(
            "lambda-runtime-aws-request-id",
            uuid::Uuid::new_v4().to_string(),
        );
        set(
            "lambda-runtime-deadline-ms",
            deadline.as_millis().to_string(),
        );
        set(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
        );
        return response;
    }
    if request.method() == Method::POST {
        // `/runtime/invocation/{id}/response`, `…/{id}/error` and `/runtime/init/error`.
        let succeeded = path.ends_with("/response");
        if succeeded || path.ends_with("/error") {
            let body = request
                .into_body()
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let result = if succeeded { Ok(body) } else { Err(body) };
            let _ = shared.results.send((Instant::now(), result));
            return reply(StatusCode::ACCEPTED, Bytes::new());
        }
    }
    reply(StatusCode::NOT_FOUND, Bytes::new())
}

/// A Lambda Runtime API for one process, on a free port of 127.0.0.1.
struct RuntimeApi {
    address: SocketAddr,
    polls: mpsc::UnboundedReceiver<Instant>,
    results: mpsc::UnboundedReceiver<(Instant, Result<Bytes, Bytes>)>,
    events: mpsc::UnboundedSender<Bytes>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the runtime API: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let (polls, poll_receiver) = mpsc::unbounded_channel();
        let (results, result_receiver) = mpsc::unbounded_channel();
        let (events, event_receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            polls,
            results,
            events: Mutex::new(event_receiver),
        });
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(runtime_api(shared, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            polls: poll_receiver,
            results: result_receiver,
            events,
            server,
        })
    }

    async fn next_poll(&mut self) -> Result<Instant, String> {
        tokio::time::timeout(PATIENCE, self.polls.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| "the function never polled for an invocation".to_owned())
    }

    /// Hands out one event and waits for its result; the function is then polling again.
    async fn invoke(&mut self, event: Bytes) -> Result<(Duration, Bytes), String> {
        let sent = Instant::now();
        self.events
            .send(event)
            .map_err(|_| "the runtime API stopped".to_owned())?;
        let (at, result) = tokio::time::timeout(PATIENCE, self.results.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| "the function never answered".to_owned())?;
        let response = result
            .map_err(|error| format!("the function failed: {}", String::from_utf8_lossy(&error)))?;
        self.next_poll().await?;
        Ok((at.saturating_duration_since(sent), response))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The peak resident set of a running process, from `/proc` (Linux), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Init, then each invocation's time and response.
async fn measure(
    api: &mut RuntimeApi,
    started: Instant,
    events: &[Bytes],
) -> Result<(Duration, Vec<Duration>, Vec<Bytes>), String> {
    let init = api.next_poll().await?.saturating_duration_since(started);
    let mut invocations = Vec::with_capacity(events.len());
    let mut responses = Vec::with_capacity(events.len());
    for event in events {
        let (took, response) = api.invoke(event.clone()).await?;
        invocations.push(took);
        responses.push(response);
    }
    Ok((init, invocations, responses))
}

/// Starts `binary` with exactly `environment` (plus the runtime API's address), waits for its
/// first poll, then hands it `events` one by one.
pub async fn run(
    binary: &Path,
    environment: &BTreeMap<String, String>,
    events: &[Bytes],
) -> Result<Run, String> {
    let mut api = RuntimeApi::start().await?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(environment)
        .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let measured = tokio::select! {
        measured = measure(&mut api, started, events) => measured,
        status = child.wait() => Err(match status {
            Ok(status) => format!("the process exited ({status})"),
            Err(e) => format!("the process was lost: {e}"),
        }),
    };
    let peak_rss_kib = child.id().map_or(0, peak_rss_kib);
    let _ = child.start_kill();
    let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
    let (init, invocations, responses) = measured.map_err(|error| {
        let log = String::from_utf8_lossy(&output.stderr);
        let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        format!(
            "{}: {error} (stderr, last lines first: {tail})",
            binary.display()
        )
    })?;
    Ok(Run {
        init,
        invocations,
        responses,
        peak_rss_kib,
    })
}

/// The environment Lambda gives `function`: its template environment resolved to `resources`,
/// the Lambda variables, and credentials, region and endpoint for the emulator at `endpoint`.
pub fn lambda_environment(
    resources: &Resources,
    function: &FunctionSpec,
    endpoint: &str,
) -> Result<BTreeMap<String, String>, ProvisionError> {
    let mut environment = resources.environment(function)?;
    for (name, value) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_LAMBDA_FUNCTION_NAME", &function.logical_id),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            &function.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ] {
        environment.insert(name.to_owned(), value.to_owned());
    }
    Ok(environment)
}

/// The API Gateway HTTP API (payload v2) event the local gateway would send for `path` matched
/// to `route_key`; `id` is the route's only path parameter.
pub fn http_event(
    route_key: &str,
    path: &str,
    id: Option<&str>,
    body: Option<&str>,
) -> Result<Bytes, String> {
    let method = route_key.split(' ').next().unwrap_or("GET");
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(())
        .map_err(|e| format!("{route_key} {path}: {e}"))?;
    let (parts, ()) = request.into_parts();
    let params = id
        .map(|id| BTreeMap::from([("id".to_owned(), id.to_owned())]))
        .unwrap_or_default();
    let body = Bytes::from(body.unwrap_or_default().to_owned());
    let event = gateway::to_event(
        route_key,
        params,
        &parts,
        &body,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
