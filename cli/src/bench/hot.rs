//! Hot streams: many writers on one account, through the local runner's HTTP API, each
//! command answered within the function's deadline or failed (409/503). What a client sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventfold::aws::RequestCounter;
use serde_json::json;

use super::{Bench, ms, percentile};
use crate::local::functions::Functions;
use crate::local::provision::{Clients, provision};
use crate::local::runner::{LocalRunner, RunnerOptions};

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
    let mut functions = Functions::from_template(&bench.template, &resources, &counted)
        .map_err(|e| e.to_string())?;
    if !queued {
        let spec = bench
            .template
            .function_by_binary("command-api")
            .ok_or("no command-api function")?;
        let config = resources.config(spec).map_err(|e| e.to_string())?;
        let store = Arc::new(
            config
                .event_store(counted.dynamodb.clone())
                .with_commands_table(&config.commands_table),
        );
        let snapshots = Arc::new(eventfold::snapshot::DynamoSnapshots::new(
            counted.dynamodb.clone(),
            &config.snapshots_table,
        ));
        let commands = eventfold::command::CommandService::new(store)
            .with_snapshots(snapshots)
            .without_stream_queues();
        let app = command_api::App::new(bank::service::BankingService::new(commands))
            .with_metrics(crate::local::functions::logged(command_api::FUNCTION));
        let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
        functions.http.insert(
            spec.logical_id.clone(),
            Arc::new(crate::local::functions::CommandApi(app, timeout)),
        );
    }
    let options = RunnerOptions {
        consumers: false,
        ..RunnerOptions::default()
    };
    let runner = LocalRunner::start(&bench.template, &resources, &counted, functions, options)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = drive(&runner.url(), writers, commands, &counter)
        .await
        .map(|run| HotRun { queued, ..run });
    runner.stop().await;
    outcome
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
