//! Hot streams: many writers on one account, through the local runner's HTTP API, each
//! command answered within the function's deadline or failed (409/503). What a client sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bank::service::BankingService;
use eventfold::aws::aws_sdk_dynamodb;
use eventfold::aws::{DynamoSnapshots, RequestCounter};
use eventfold::command::CommandService;
use eventfold::lambda::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use eventfold::lambda::command_api::CommandApi;
use eventfold::lambda::http::ApiRequest;
use eventfold::lambda::metrics::{Log, Metrics};
use serde_json::json;

use super::{Bench, ms, percentile};
use eventfold_cli::local::functions::{FunctionError, Functions, HttpHandler};
use eventfold_cli::local::provision::{Clients, provision};
use eventfold_cli::local::runner::{LocalRunner, RunnerOptions};

/// One run: `writers` clients sharing `commands` deposits into one account.
#[derive(Clone, Debug)]
pub struct HotRun {
    /// Whether the runner's commands queued per stream (one process) or raced (as separate
    /// Lambda instances do).
    pub queued: bool,
    /// Concurrent writers.
    pub writers: usize,
    /// Deposits attempted.
    pub commands: usize,
    /// Answered 409 or 503 (or not at all).
    pub failed: usize,
    /// Latency of every command, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// DynamoDB requests the command function made, per command.
    pub requests_per_command: f64,
}

impl HotRun {
    /// Failed commands, in percent.
    pub fn failed_percent(&self) -> f64 {
        100.0 * self.failed as f64 / self.commands.max(1) as f64
    }

    /// Commands per second, failed ones included.
    pub fn throughput(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }

    /// A row of the report's table.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.1} % | {} | {} | {:.1} | {:.1} |",
            if self.queued {
                "one process"
            } else {
                "racing, as on Lambda"
            },
            self.writers,
            self.commands,
            self.failed_percent(),
            ms(percentile(&self.latencies, 50)),
            ms(percentile(&self.latencies, 99)),
            self.throughput(),
            self.requests_per_command,
        )
    }
}

/// Runs `commands` deposits into one account from `writers` concurrent HTTP clients, on a
/// runner of its own (consumers off, so every DynamoDB request counted is a command's). With
/// `queued`, the command function queues its commands per stream as any one process does;
/// without, they race to the conditional write as separate Lambda instances do.
pub async fn hot_stream(
    bench: &Bench,
    writers: usize,
    commands: usize,
    queued: bool,
) -> Result<HotRun, String> {
    let prefix = format!("hot{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let resources = provision(&bench.template, &bench.clients, &prefix)
        .await
        .map_err(|e| e.to_string())?;
    let counter = RequestCounter::new();
    let counted = Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&bench.sdk)
                .interceptor(counter.clone())
                .build(),
        ),
        ..bench.clients.clone()
    };
    let spec = bench
        .template
        .function_by_binary("command-api")
        .ok_or("no command-api function")?;
    let config = resources.config(spec).map_err(|e| e.to_string())?;
    let app = move || {
        let store = Arc::new(
            config
                .event_store(counted.dynamodb.clone())
                .with_commands_table(&config.commands_table),
        );
        let snapshots = Arc::new(DynamoSnapshots::new(
            counted.dynamodb.clone(),
            &config.snapshots_table,
        ));
        command_api::api(BankingService::new(
            CommandService::new(store)
                .with_snapshots(snapshots)
                .with_subject_keys(bank::testing::subject_keys()),
            bank::testing::claim_key(),
        ))
        .with_metrics(Metrics::to("command-api", Arc::new(Log)))
    };
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
    let handler: Arc<dyn HttpHandler> = if queued {
        Arc::new(InProcess::shared(app(), timeout))
    } else {
        Arc::new(InProcess::instances(app, writers, timeout))
    };
    let mut functions = Functions::default();
    functions.http.insert(spec.logical_id.clone(), handler);
    let options = RunnerOptions {
        consumers: false,
        ..RunnerOptions::default()
    };
    // The command function's routes only: the runner serves a route only with its function.
    let mut template = bench.template.clone();
    template
        .routes
        .retain(|route| route.function == spec.logical_id);
    let runner = LocalRunner::start(&template, &resources, &bench.clients, functions, options)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = drive(&runner.url(), writers, commands, &counter)
        .await
        .map(|run| HotRun { queued, ..run });
    runner.stop().await;
    outcome
}

/// The bank's command routes in this process, over the counted client: either one instance
/// taking every request at once (its commands queue per stream), or a pool of instances each
/// taking one request at a time, as Lambda runs them (they race to the conditional write).
#[derive(Debug)]
struct InProcess {
    shared: Option<Arc<CommandApi<BankingService>>>,
    idle: std::sync::Mutex<Vec<CommandApi<BankingService>>>,
    timeout: Duration,
}

impl InProcess {
    fn shared(app: CommandApi<BankingService>, timeout: Duration) -> Self {
        Self {
            shared: Some(Arc::new(app)),
            idle: std::sync::Mutex::default(),
            timeout,
        }
    }

    fn instances(
        app: impl Fn() -> CommandApi<BankingService>,
        count: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            shared: None,
            idle: std::sync::Mutex::new((0..count).map(|_| app()).collect()),
            timeout,
        }
    }
}

#[async_trait]
impl HttpHandler for InProcess {
    async fn invoke(
        &self,
        request: ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, FunctionError> {
        let deadline = Some(tokio::time::Instant::now() + self.timeout);
        let request = ApiRequest::new(request).with_deadline(deadline);
        if let Some(app) = &self.shared {
            return Ok(app.respond(request).await);
        }
        let taken = self
            .idle
            .lock()
            .map_err(|_| "a poisoned pool".to_owned())?
            .pop();
        let app = taken.ok_or("more requests at once than instances")?;
        let response = app.respond(request).await;
        self.idle
            .lock()
            .map_err(|_| "a poisoned pool".to_owned())?
            .push(app);
        Ok(response)
    }
}

async fn drive(
    base: &str,
    writers: usize,
    commands: usize,
    counter: &RequestCounter,
) -> Result<HotRun, String> {
    let http = reqwest::Client::new();
    let opened = http
        .post(format!("{base}/accounts"))
        .json(&json!({"owner": "Hot", "currency": "EUR"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = opened.json().await.map_err(|e| e.to_string())?;
    let id = body["id"].as_str().ok_or("no account id")?.to_owned();
    let url = format!("{base}/accounts/{id}/deposits");
    let next = Arc::new(AtomicUsize::new(0));

    counter.reset();
    let started = Instant::now();
    let workers: Vec<_> = (0..writers)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < commands {
                    let sent = Instant::now();
                    let answer = http.post(&url).json(&json!({"amount": 1})).send().await;
                    let ok = answer.is_ok_and(|a| a.status().is_success());
                    seen.push((sent.elapsed(), ok));
                }
                seen
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(commands);
    let mut failed = 0;
    for worker in workers {
        for (latency, ok) in worker.await.map_err(|e| e.to_string())? {
            latencies.push(latency);
            failed += usize::from(!ok);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(HotRun {
        queued: true,
        writers,
        commands,
        failed,
        latencies,
        elapsed,
        requests_per_command: counter.total() as f64 / commands.max(1) as f64,
    })
}
