//! Lambda, locally: each function of a template is its own binary, started as Lambda starts a
//! `provided.al2023` bootstrap (with `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API served
//! here on 127.0.0.1), and invoked through that API. Instances stay warm between invocations,
//! one invocation at a time each, as many at once as the function's concurrency allows; an
//! instance that times out or dies is dropped and the next invocation starts another, as
//! Lambda does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::Child;
use tokio::sync::{Mutex, Semaphore, mpsc};

/// How long a starting instance may take to ask for its first invocation.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One invocation handed to an instance: the event and when it is due.
struct Invocation {
    event: Bytes,
    deadline: SystemTime,
    function_arn: String,
}

/// The Runtime API's side of one instance: polls, results, and the invocations to hand out.
struct Shared {
    polls: mpsc::UnboundedSender<Instant>,
    results: mpsc::UnboundedSender<(Instant, Result<Bytes, Bytes>)>,
    invocations: Mutex<mpsc::UnboundedReceiver<Invocation>>,
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
        let Some(invocation) = shared.invocations.lock().await.recv().await else {
            return reply(StatusCode::GONE, Bytes::new());
        };
        let deadline = invocation
            .deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut response = reply(StatusCode::OK, invocation.event);
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
            invocation.function_arn,
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

/// Why an invocation did not answer.
#[derive(Debug)]
pub enum InvokeError {
    /// The function reported an error (`/error`); the instance lives on.
    Function(String),
    /// The instance ran out of time, died or never started; it is gone.
    Instance(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Function(error) => write!(f, "the function failed: {error}"),
            Self::Instance(error) => f.write_str(error),
        }
    }
}

/// A Lambda Runtime API for one instance, on a free port of 127.0.0.1.
pub struct RuntimeApi {
    /// Where the instance finds it (`AWS_LAMBDA_RUNTIME_API`).
    pub address: SocketAddr,
    polls: mpsc::UnboundedReceiver<Instant>,
    results: mpsc::UnboundedReceiver<(Instant, Result<Bytes, Bytes>)>,
    invocations: mpsc::UnboundedSender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Serves the API on a free port.
    pub async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the runtime API: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let (polls, poll_receiver) = mpsc::unbounded_channel();
        let (results, result_receiver) = mpsc::unbounded_channel();
        let (invocations, invocation_receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            polls,
            results,
            invocations: Mutex::new(invocation_receiver),
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
            invocations,
            server,
        })
    }

    /// Waits for the instance to ask for an invocation.
    pub async fn next_poll(&mut self, within: Duration) -> Result<Instant, InvokeError> {
        tokio::time::timeout(within, self.polls.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                InvokeError::Instance("the function never polled for an invocation".into())
            })
    }

    /// Hands out one event, due in `timeout`, and waits for its result; the instance is then
    /// polling again. Answers how long it took and the response.
    pub async fn invoke(
        &mut self,
        event: Bytes,
        timeout: Duration,
        function_arn: &str,
    ) -> Result<(Duration, Bytes), InvokeError> {
        let sent = Instant::now();
        let invocation = Invocation {
            event,
            deadline: SystemTime::now() + timeout,
            function_arn: function_arn.to_owned(),
        };
        self.invocations
            .send(invocation)
            .map_err(|_| InvokeError::Instance("the runtime API stopped".into()))?;
        let (at, result) = tokio::time::timeout(timeout, self.results.recv())
            .await
            .map_err(|_| {
                InvokeError::Instance(format!(
                    "Task timed out after {:.2} seconds",
                    timeout.as_secs_f64()
                ))
            })?
            .ok_or_else(|| InvokeError::Instance("the runtime API stopped".into()))?;
        let response = result
            .map_err(|error| InvokeError::Function(String::from_utf8_lossy(&error).into_owned()))?;
        self.next_poll(INIT_TIMEOUT).await?;
        Ok((at.saturating_duration_since(sent), response))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts `binary` with exactly `environment`, plus the Runtime API's address; its output
/// lines go to the log under `function`.
pub fn spawn(
    binary: &Path,
    environment: &BTreeMap<String, String>,
    api: &RuntimeApi,
    function: &str,
) -> Result<Child, String> {
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(environment)
        .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(stdout, function.to_owned()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(stderr, function.to_owned()));
    }
    Ok(child)
}

/// A function's output, line by line, into the runner's log (Lambda's CloudWatch Logs).
async fn forward(output: impl AsyncRead + Unpin, function: String) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "function", function = %function, "{line}");
    }
}

/// One warm instance: its process and its Runtime API.
struct Instance {
    child: Child,
    api: RuntimeApi,
}

/// A function of the template, run as its own binary.
#[derive(Debug)]
pub struct ProcessFunction {
    name: String,
    binary: PathBuf,
    environment: BTreeMap<String, String>,
    timeout: Duration,
    arn: String,
    idle: std::sync::Mutex<Vec<Instance>>,
    concurrency: Semaphore,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl ProcessFunction {
    /// `binary` run as the function `name`, with `environment`, each invocation due within
    /// `timeout`, at most `concurrency` instances at once.
    pub fn new(
        name: &str,
        binary: PathBuf,
        environment: BTreeMap<String, String>,
        timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            name: name.to_owned(),
            arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
            binary,
            environment,
            timeout,
            idle: std::sync::Mutex::default(),
            concurrency: Semaphore::new(concurrency.max(1)),
        }
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an instance and waits for its first poll (its init phase).
    async fn start_instance(&self) -> Result<Instance, InvokeError> {
        let mut api = RuntimeApi::start().await.map_err(InvokeError::Instance)?;
        let mut child = spawn(&self.binary, &self.environment, &api, &self.name)
            .map_err(InvokeError::Instance)?;
        tokio::select! {
            polled = api.next_poll(INIT_TIMEOUT) => polled.map(drop)?,
            status = child.wait() => {
                return Err(InvokeError::Instance(format!(
                    "{} exited during init ({})",
                    self.name,
                    status.map_or_else(|e| e.to_string(), |s| s.to_string())
                )));
            }
        }
        Ok(Instance { child, api })
    }

    /// Starts one instance ahead of the first invocation, so it finds a warm one.
    pub async fn warm(&self) -> Result<(), InvokeError> {
        let instance = self.start_instance().await?;
        self.idle().push(instance);
        Ok(())
    }

    /// One invocation: the event's JSON in, the response's JSON out.
    pub async fn invoke_bytes(&self, event: Bytes) -> Result<Bytes, InvokeError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| InvokeError::Instance("the function is shut down".into()))?;
        let idle = self.idle().pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.start_instance().await?,
        };
        let outcome = tokio::select! {
            invoked = instance.api.invoke(event, self.timeout, &self.arn) => invoked,
            status = instance.child.wait() => Err(InvokeError::Instance(format!(
                "{} exited ({})",
                self.name,
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ))),
        };
        match outcome {
            Ok((_, response)) => {
                self.idle().push(instance);
                Ok(response)
            }
            Err(InvokeError::Function(error)) => {
                // A handled error: the process is still polling, and Lambda keeps it.
                if instance.api.next_poll(INIT_TIMEOUT).await.is_ok() {
                    self.idle().push(instance);
                }
                Err(InvokeError::Function(error))
            }
            Err(lost) => {
                let _ = instance.child.start_kill();
                Err(lost)
            }
        }
    }
}
