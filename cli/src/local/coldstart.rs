//! Cold start, the part the code controls: each function's release binary is started as Lambda
//! starts a `provided.al2023` bootstrap, against a Lambda Runtime API served here on 127.0.0.1,
//! and timed from process start to its first `GET /runtime/invocation/next` (the end of its init
//! phase), then through a first and later invocations. No sandbox, no download of the code and
//! the native architecture of this machine: what is measured is what the function itself spends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;

use crate::local::lambda::RuntimeApi;
use crate::local::provision::{ProvisionError, Resources};
use crate::local::template::FunctionSpec;

/// How long a function may take to initialise before the measurement gives up.
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
    timeout: Duration,
) -> Result<(Duration, Vec<Duration>, Vec<Bytes>), String> {
    let init = api
        .next_poll(PATIENCE)
        .await
        .map_err(|e| e.to_string())?
        .saturating_duration_since(started);
    let mut invocations = Vec::with_capacity(events.len());
    let mut responses = Vec::with_capacity(events.len());
    for event in events {
        let (took, response) = api
            .invoke(
                event.clone(),
                timeout,
                "arn:aws:lambda:us-east-1:000000000000:function:bench",
            )
            .await
            .map_err(|e| e.to_string())?;
        invocations.push(took);
        responses.push(response);
    }
    Ok((init, invocations, responses))
}

/// Starts `binary` with exactly `environment` (plus the runtime API's address), waits for its
/// first poll, then hands it `events` one by one, each with `timeout` to its deadline (a polling
/// function, such as a reactor, works until shortly before it).
pub async fn run(
    binary: &Path,
    environment: &BTreeMap<String, String>,
    events: &[Bytes],
    timeout: Duration,
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
        measured = measure(&mut api, started, events, timeout) => measured,
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
/// the Lambda variables, and for the emulator at `endpoint` its address, region and test
/// credentials; with no endpoint (real AWS), the caller's own AWS configuration.
pub fn lambda_environment(
    resources: &Resources,
    function: &FunctionSpec,
    endpoint: &str,
) -> Result<BTreeMap<String, String>, ProvisionError> {
    let mut environment = resources.environment(function)?;
    for (name, value) in [
        ("AWS_LAMBDA_FUNCTION_NAME", function.logical_id.as_str()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            &function.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ] {
        environment.insert(name.to_owned(), value.to_owned());
    }
    if endpoint.is_empty() {
        for (name, value) in std::env::vars() {
            if name.starts_with("AWS_") || name == "HOME" {
                environment.entry(name).or_insert(value);
            }
        }
        return Ok(environment);
    }
    for (name, value) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
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
    let mut event = eventfold::lambda::http::gateway_event(
        route_key,
        params,
        &parts,
        &body,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    // As the runner's gateway sends it: from the local operator.
    event.request_context.authorizer = Some(crate::local::gateway::local_operator());
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
