//! `eventfold bench`: measurements against the emulator, written to docs/BENCHMARKS.md.
//!
//! Everything runs on 127.0.0.1 against the emulator in `EVENTFOLD_EMULATOR_ENDPOINT` (or
//! `AWS_ENDPOINT_URL`), bounded in count. Round trips are counted on the wire by an SDK
//! interceptor; times are wall-clock on this machine and this emulator, so they compare
//! configurations with each other, not with DynamoDB.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bank::domain::account::{Account, Transfer};
use bank::domain::money::Amount;
use eventfold::EntityId;
use eventfold::aws::RequestCounter;
use eventfold::aws::aws_sdk_dynamodb::config::Credentials;
use eventfold::aws::{DynamoSnapshots, DynamoStore};
use eventfold::aws::{aws_config, aws_sdk_dynamodb};
use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::store::StoreSettings;
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion, NewCommand, StreamWrite};
use eventfold::{CommandId, NewEvent, StreamId};
use futures::StreamExt;
use serde_json::json;

use eventfold_cli::local::coldstart;

pub mod check;
mod compare;
pub mod cpu;
mod hot;
mod micro;
pub mod plots;
use eventfold_cli::local::functions::Functions;
use eventfold_cli::local::provision::{Clients, Resources, provision};
use eventfold_cli::local::runner::{LocalRunner, RunnerOptions};
use eventfold_cli::local::template::Template;

/// What each command shape `make bench-check` holds asks of DynamoDB, priced, and the
/// instructions of the CPU side.
async fn command_shapes(bench: &Bench) -> Result<String, String> {
    let costs = check::measure(bench).await?;
    let mut out = String::from(
        "## What a command asks of DynamoDB\n\nEach command shape `make bench-check` holds, \
         counted on the wire: requests, round trips of latency (requests sent together count \
         once), items read, and capacity units computed from the items' sizes by DynamoDB's \
         rules (4 KB read units, strongly consistent; 1 KB write units, twice in a \
         transaction), priced on demand in us-east-1 ($0.125 per million read units, $0.625 per \
         million write units). A cold process reads the snapshot and the tail at once; a warm \
         one decides on the state it kept and writes.\n\n\
         | command | requests | round trips | items read | read units | write units | $ per million |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (name, cost) in &costs {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cost.requests,
            cost.round_trips,
            cost.items,
            cost.read_units,
            cost.write_units,
            compare::price(cost.read_units as f64, cost.write_units as f64)
        );
    }
    let instructions = cpu::count()?;
    out.push_str(
        "\nInstructions of the CPU side, counted by callgrind in the build `make test` makes \
         (unoptimized: a figure to hold the code against itself, which `make bench-check` does \
         within 2 %, not to compare with other libraries):\n\n\
         | operation | instructions |\n|---|---|\n",
    );
    for (name, count) in &instructions {
        let _ = writeln!(out, "| {name} | {count} |");
    }
    out.push('\n');
    Ok(out)
}

/// The `p`-th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n - 1) * p.min(100) + 50) / 100],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

struct Bench {
    sdk: aws_config::SdkConfig,
    clients: Clients,
    template: Template,
    resources: Resources,
    endpoint: String,
    counter: RequestCounter,
    store: Arc<DynamoStore>,
    commands: CommandService,
    emulator: String,
}

/// The emulator's version as its LocalStack-style health endpoint reports it.
async fn emulator_version(endpoint: &str) -> String {
    let health = async {
        reqwest::get(format!("{endpoint}/_localstack/health"))
            .await?
            .json::<serde_json::Value>()
            .await
    };
    match health.await {
        Ok(body) => body["version"]
            .as_str()
            .map_or_else(|| "(version not reported)".to_owned(), str::to_owned),
        Err(_) => "(version not reported)".to_owned(),
    }
}

impl Bench {
    async fn new() -> Result<Self, String> {
        let endpoint = std::env::var("EVENTFOLD_EMULATOR_ENDPOINT")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .map_err(|_| "set EVENTFOLD_EMULATOR_ENDPOINT (make bench does)".to_owned())?;
        let sdk = eventfold::aws::load_sdk_config_with(|loader| {
            loader
                .endpoint_url(&endpoint)
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        })
        .await;
        let clients = Clients::new(&sdk);
        let template = Template::load(&template_path()).map_err(|e| e.to_string())?;
        let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let resources = provision(&template, &clients, &prefix)
            .await
            .map_err(|e| e.to_string())?;
        let counter = RequestCounter::new();
        let counted = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let store = Arc::new(
            DynamoStore::new(
                counted.clone(),
                resources.table("EventsTable"),
                StoreSettings::default(),
            )
            .with_commands_table(resources.table("CommandsTable")),
        );
        let commands = CommandService::new(store.clone()).with_snapshots(Arc::new(
            DynamoSnapshots::new(counted, resources.table("SnapshotsTable")),
        ));
        Ok(Self {
            sdk,
            clients,
            template,
            resources,
            counter,
            store,
            commands,
            emulator: format!(
                "{} {} at {endpoint}",
                std::env::var("EMULATOR").unwrap_or_else(|_| "ministack".into()),
                emulator_version(&endpoint).await
            ),
            endpoint,
        })
    }

    /// The projector's batching window in the template, in seconds.
    fn projector_window(&self) -> Option<u64> {
        self.template
            .function_by_binary("project-accounts")
            .and_then(|f| f.stream_sources.first())
            .map(|source| source.maximum_batching_window_seconds)
    }

    /// Requests and their breakdown for one operation.
    async fn count<T>(&self, operation: impl Future<Output = T>) -> (T, String) {
        self.counter.reset();
        let value = operation.await;
        let breakdown = self
            .counter
            .snapshot()
            .iter()
            .map(|(op, n)| format!("{n} {op}"))
            .collect::<Vec<_>>()
            .join(" + ");
        (value, breakdown)
    }

    async fn seed(&self, id: &str, events: usize) -> Result<StreamId, String> {
        let id = EntityId::parse(id).map_err(|e| e.to_string())?;
        bank::testing::seed_account(self.store.as_ref(), &id, events)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A transfer of one unit from `from` to `to` through `service`: both loaded, one transaction.
async fn transfer(service: &CommandService, from: &StreamId, to: &StreamId) -> Result<(), String> {
    let transfer = Transfer {
        transfer_id: EntityId::generate(),
        from: EntityId::parse(from.entity_id()).map_err(|e| e.to_string())?,
        to: EntityId::parse(to.entity_id()).map_err(|e| e.to_string())?,
        amount: Amount::new(1).map_err(|e| e.to_string())?,
    };
    service
        .execute::<Account, _>(
            &CommandContext::default(),
            &[Target::new(from.clone()), Target::new(to.clone())],
            &[],
            |loaded| {
                let (sent, received) = transfer.decide(&loaded[0].state, &loaded[1].state)?;
                Ok(vec![sent, received])
            },
            (),
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The hot-stream table: 400 deposits into one account from 1, 8 and 32 writers.
async fn hot_streams(bench: &Bench) -> Result<String, String> {
    let mut section = String::from(
        "## Hot streams\n\n400 deposits into one account over HTTP on the local runner, from 1, \
         8 and 32 concurrent clients. A command retries its conflicts within the function's \
         deadline (the template's 15 s less a margin); failed means an answer of 409 or 503. \
         Requests are the command function's DynamoDB calls per command, retries included. \
         The runner is one process: its commands on a stream queue behind each other, as in \
         any one process. On Lambda each concurrent command runs in an instance of its own, so \
         they race to the conditional write; the racing rows measure that, with the command \
         function told not to queue.\n\n\
         | commands | writers | commands | failed | p50 | p99 | commands/s | requests/command |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for queued in [false, true] {
        for writers in [1, 8, 32] {
            say(&format!("hot stream, {writers} writers, queued: {queued}…"));
            let run = hot::hot_stream(bench, writers, 400, queued).await?;
            say(&format!("  {}", run.row()));
            let _ = writeln!(section, "{}", run.row());
        }
    }
    Ok(section)
}

/// Runs the benchmarks and writes the report; `only` names one section (`hot`) to run alone
/// and print.
pub async fn run(
    out: Option<&str>,
    only: Option<&str>,
    compare_binary: Option<&std::path::Path>,
) -> Result<(), String> {
    let bench = Bench::new().await?;
    if only == Some("hot") {
        say(&hot_streams(&bench).await?);
        return Ok(());
    }
    let mut report = String::new();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let _ = writeln!(
        report,
        "# Benchmarks\n\nWritten by `make bench` on {now}: {cores} cores, emulator {}, debug-free \
         release build. Round trips are counted on the wire (an SDK interceptor); times are this \
         machine against a Python emulator, useful to compare configurations, not to predict \
         DynamoDB latency (single-digit milliseconds per call there).\n",
        bench.emulator
    );

    let targets_at = report.len();

    // ---------------------------------------------------------------- round trips per append
    say("round trips per append…");
    let _ = writeln!(
        report,
        "## Round trips per append\n\n| append | requests |\n|---|---|"
    );
    let stream = StreamId::parse("Bench-append").map_err(|e| e.to_string())?;
    let ((), calls) = bench
        .count(async {
            let _ = bench
                .store
                .append(AppendRequest::single(
                    stream.clone(),
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new("Tick", json!({}))],
                ))
                .await;
        })
        .await;
    let _ = writeln!(report, "| one event, new stream (`NoStream`) | {calls} |");
    let head = bench
        .store
        .read_head(&stream)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no head")?;
    let (outcome, calls) = bench
        .count(
            bench
                .store
                .append(AppendRequest::default().with_write(StreamWrite::after(
                    head,
                    (0..10).map(|_| NewEvent::new("Tick", json!({}))).collect(),
                ))),
        )
        .await;
    outcome.map_err(|e| e.to_string())?;
    let _ = writeln!(
        report,
        "| ten events after a head already read (the command service's path) | {calls} |"
    );
    let (_, calls) = bench
        .count(
            bench.store.append(
                AppendRequest::single(
                    stream.clone(),
                    ExpectedVersion::Exact(11),
                    vec![NewEvent::new("Tick", json!({}))],
                )
                .with_command(NewCommand {
                    command_id: CommandId::new(uuid::Uuid::new_v4().to_string())
                        .map_err(|e| e.to_string())?,
                    request_hash: "h".into(),
                    receipt: None,
                }),
            ),
        )
        .await;
    let _ = writeln!(
        report,
        "| one event + idempotency record, `Exact(n)` without a head | {calls} |"
    );
    let (_, calls) = bench
        .count(bench.store.append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Any,
            vec![NewEvent::new("Tick", json!({}))],
        )))
        .await;
    let _ = writeln!(report, "| one event, `Any` | {calls} |");
    let a = bench.seed("transfer-a", 5).await?;
    let b = bench.seed("transfer-b", 5).await?;
    let (_, calls) = bench.count(transfer(&bench.commands, &a, &b)).await;
    let _ = writeln!(
        report,
        "| a transfer through the command service (load both, one transaction) | {calls} |\n"
    );

    // ---------------------------------------------------------------- per command shape
    say("cost per command shape, instructions per CPU operation…");
    report.push_str(&command_shapes(&bench).await?);

    // ---------------------------------------------------------------- the comparison
    let charts = out.map_or_else(
        || std::path::PathBuf::from("target/bench"),
        |out| {
            std::path::Path::new(out)
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("bench")
        },
    );
    std::fs::create_dir_all(&charts)
        .map_err(|e| format!("cannot create {}: {e}", charts.display()))?;
    let mut drawn = Vec::new();
    let mut comparison = None;
    if let Some(binary) = compare_binary {
        say("Eventfold beside cqrs-es + dynamo-es…");
        let json = std::path::Path::new("target/bench/compare.json");
        if let Some(dir) = json.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let compared = compare::run(binary, &bench.endpoint, json).await?;
        report.push_str(&compared.markdown());
        for (file, chart) in [
            ("throughput.svg", compared.throughput_chart()),
            ("requests-by-length.svg", compared.requests_chart()),
            ("latency-by-length.svg", compared.latency_chart()),
        ] {
            chart.draw(&charts.join(file))?;
            drawn.push(file);
        }
        comparison = Some(compared);
    } else {
        say("no comparison binary given (--compare); skipping the comparison");
    }

    // ---------------------------------------------------------------- projection lag
    let mut lag_rows = String::new();
    let mut lag_series = Vec::new();
    let mut template_lag_p99 = None;
    for window in [1, 0] {
        say(&format!(
            "1,000 commands through the local runner, projector batching window {window} s…"
        ));
        let lag = projection_lag_with_window(&bench, window).await?;
        if bench.projector_window() == Some(window) {
            template_lag_p99 = Some(percentile(&lag.lags, 99).as_secs_f64() * 1000.0);
        }
        let _ = writeln!(
            lag_rows,
            "| {window} s | {:.0} | {} | {} | {} | {} | {} | {} | {:.1} |",
            lag.commands as f64 / lag.elapsed.as_secs_f64(),
            ms(percentile(&lag.latencies, 50)),
            ms(percentile(&lag.latencies, 99)),
            ms(percentile(&lag.lags, 50)),
            ms(percentile(&lag.lags, 95)),
            ms(percentile(&lag.lags, 99)),
            ms(percentile(&lag.lags, 100)),
            lag.invocations_per_thousand,
        );
        let n = lag.lags.len().max(1);
        lag_series.push(plots::Series {
            name: format!("batching window {window} s"),
            points: (1..=20)
                .map(|i| {
                    let p = i * 5;
                    (
                        percentile(&lag.lags, p).as_secs_f64().max(0.001) * 1000.0,
                        p as f64,
                    )
                })
                .filter(|_| n > 0)
                .collect(),
        });
    }
    let _ = writeln!(
        report,
        "## Command latency and projection lag on the local runner\n\n1,000 commands (50 \
         account openings, then deposits, withdrawals and transfers) from 8 concurrent HTTP \
         clients against one Python emulator process on the same two cores, once with the \
         projector's `MaximumBatchingWindowInSeconds` at 1 and once at 0 (the template has \
         {}). Lag is from the command's HTTP answer to the accounts row showing its \
         version, seen by a scan of the read model every 50 ms; it includes stream polling (4 \
         times a second per shard, as Lambda polls) and the batching window. Invocations are \
         the projector's, per 1,000 events delivered.\n\n\
         | batching window | commands/s | command p50 | command p99 | lag p50 | lag p95 | lag p99 | lag max | projector invocations per 1,000 events |\n\
         |---|---|---|---|---|---|---|---|---|\n{lag_rows}",
        bench
            .projector_window()
            .map_or_else(|| "no projector".to_owned(), |w| w.to_string())
    );
    plots::Chart {
        title: "Projection lag, cumulative".into(),
        x_label: "lag from the command's answer to the read model, ms".into(),
        y_label: "percent of commands".into(),
        log_y: false,
        series: lag_series,
    }
    .draw(&charts.join("projection-lag.svg"))?;
    drawn.push("projection-lag.svg");
    if let Some(comparison) = &comparison {
        report.insert_str(targets_at, &comparison.targets(template_lag_p99));
    }
    let _ = writeln!(
        report,
        "### Charts\n\n{}\n",
        drawn
            .iter()
            .map(|file| format!("![{file}](bench/{file})"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // ---------------------------------------------------------------- micro benchmarks
    report.push_str(&micro::section(std::path::Path::new("target/criterion"))?);

    // ---------------------------------------------------------------- hot streams
    report.push_str(&hot_streams(&bench).await?);
    report.push('\n');

    // ---------------------------------------------------------------- cold start
    say("cold starts of each function's release binary…");
    report.push_str(&cold_starts(&bench).await?);

    // ---------------------------------------------------------------- binaries
    let mut sizes = String::new();
    for function in [
        "command-api",
        "query-api",
        "project-accounts",
        "publish-events",
        "snapshot-streams",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/lambda/{function}/bootstrap"));
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = writeln!(
                sizes,
                "| {function} | {:.1} MB |",
                meta.len() as f64 / 1_000_000.0
            );
        }
    }
    if !sizes.is_empty() {
        let _ = writeln!(
            report,
            "## Function binaries (`make build`: release, arm64, stripped)\n\n| function | bootstrap |\n|---|---|\n{sizes}"
        );
    }

    say(&report);
    if let Some(path) = out {
        std::fs::write(path, &report).map_err(|e| format!("cannot write {path}: {e}"))?;
        say(&format!("written to {path}"));
    }
    Ok(())
}

/// Process starts per function; the report gives medians.
const COLD_STARTS: usize = 5;

/// The cold-start section: each function's native release binary (built by `make bench`)
/// started `COLD_STARTS` times against a local Lambda Runtime API, with its template
/// environment resolved to the bench's resources. Empty when the binaries are missing.
async fn cold_starts(bench: &Bench) -> Result<String, String> {
    let release = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    let account = uuid::Uuid::now_v7().to_string();
    bench.seed(&account, 10).await?;
    let mut rows = String::new();
    for spec in &bench.template.functions {
        let binary = release.join(&spec.binary);
        if !binary.exists() {
            say(&format!(
                "  {} not built; skipping cold starts",
                binary.display()
            ));
            return Ok(String::new());
        }
        let (work, event) = match spec.binary.as_str() {
            "command-api" => (
                "`POST /accounts` (1 PutItem)",
                coldstart::http_event(
                    "POST /accounts",
                    "/accounts",
                    None,
                    Some(r#"{"owner":"Cold start","currency":"EUR"}"#),
                )?,
            ),
            "query-api" => (
                "`GET /accounts/{id}/state` of a 10-event account (1 GetItem + 1 Query)",
                coldstart::http_event(
                    "GET /accounts/{id}/state",
                    &format!("/accounts/{account}/state"),
                    Some(&account),
                    None,
                )?,
            ),
            // A polling function works until 5 s before its deadline, whatever the schedule
            // sends: its invocations are given 6 s, so each is about one second of polls.
            _ if !spec.schedules.is_empty() => (
                "a scheduled poll of an idle feed, 6 s to its deadline",
                bytes::Bytes::from_static(
                    br#"{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}"#,
                ),
            ),
            _ => (
                "an empty batch (no AWS call)",
                bytes::Bytes::from_static(br#"{"Records":[]}"#),
            ),
        };
        let timeout = Duration::from_secs(if spec.schedules.is_empty() { 30 } else { 6 });
        let environment = coldstart::lambda_environment(&bench.resources, spec, &bench.endpoint)
            .map_err(|e| e.to_string())?;
        let events = vec![event; 4];
        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        let mut warm = Vec::new();
        let mut peak = 0;
        for _ in 0..COLD_STARTS {
            let run = coldstart::run(&binary, &environment, &events, timeout).await?;
            inits.push(run.init);
            firsts.push(run.invocations[0]);
            warm.extend_from_slice(&run.invocations[1..]);
            peak = peak.max(run.peak_rss_kib);
        }
        inits.sort();
        firsts.sort();
        warm.sort();
        let _ = writeln!(
            rows,
            "| {} | {} MB | {} | {} | {} | {} | {:.1} MB |",
            spec.binary,
            spec.memory_mb,
            work,
            ms(percentile(&inits, 50)),
            ms(percentile(&firsts, 50)),
            ms(percentile(&warm, 50)),
            peak as f64 / 1024.0,
        );
    }
    Ok(format!(
        "## Cold start (the function's own part)\n\nEach function's release binary, built for \
         this machine, started {COLD_STARTS} times as Lambda starts a `provided.al2023` bootstrap: \
         against a Lambda Runtime API served on 127.0.0.1, with its template environment \
         resolved to local resources. Init is process start to the first poll for an \
         invocation (what Lambda reports as Init Duration, without the sandbox and code \
         download); the first invocation opens the SDK's connection to the emulator (plain \
         HTTP: on AWS a TLS handshake comes on top); warm is the median of the next three of \
         each start. Medians over the starts; peak RSS is the largest seen.\n\n\
         | function | memory (template) | invocation | init | first invocation | warm invocation | peak RSS |\n\
         |---|---|---|---|---|---|---|\n{rows}\n"
    ))
}

/// One projection-lag run.
struct Lag {
    /// Commands sent.
    commands: usize,
    /// Lag of every acknowledged write, sorted.
    lags: Vec<Duration>,
    /// Latency of every command, sorted.
    latencies: Vec<Duration>,
    /// Wall time of the commands.
    elapsed: Duration,
    /// Projector invocations per 1,000 events delivered to it.
    invocations_per_thousand: f64,
}

/// The projection-lag run on fresh tables (the runner's consumers start at the stream's
/// beginning, so older streams would be a backlog, not lag), with the projector's batching
/// window set to `window` seconds.
async fn projection_lag_with_window(bench: &Bench, window: u64) -> Result<Lag, String> {
    let prefix = format!("lag{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let fresh = provision(&bench.template, &bench.clients, &prefix)
        .await
        .map_err(|e| e.to_string())?;
    let mut template = bench.template.clone();
    let projector = template
        .functions
        .iter_mut()
        .find(|f| f.binary == "project-accounts")
        .ok_or("no project-accounts function")?;
    for source in &mut projector.stream_sources {
        source.maximum_batching_window_seconds = window;
    }
    let stats_key = format!("{}/stream0", projector.logical_id);
    let functions = Functions::from_template(
        &template,
        &fresh,
        &bench.endpoint,
        &eventfold_cli::local::binaries_beside(&template_path(), "release"),
    )
    .map_err(|e| e.to_string())?;
    let runner = LocalRunner::start(
        &template,
        &fresh,
        &bench.clients,
        functions,
        RunnerOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let measured = projection_lag(
        &runner.url(),
        &bench.clients.dynamodb,
        fresh.table("AccountsTable"),
    )
    .await;
    let invocations_per_thousand = runner.stats.get(&stats_key).map_or(0.0, |stats| {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        1000.0 * load(&stats.invocations) as f64 / load(&stats.records_delivered).max(1) as f64
    });
    runner.stop().await;
    let (commands, lags, latencies, elapsed) = measured?;
    Ok(Lag {
        commands,
        lags,
        latencies,
        elapsed,
        invocations_per_thousand,
    })
}

type LagResult = (usize, Vec<Duration>, Vec<Duration>, Duration);

/// A command's answer: the account, the version it wrote, and when it was answered.
type Ack = (String, u64, Instant);

/// When each (account, version) first showed in the read model.
type Seen = std::collections::HashMap<(String, u64), Instant>;

/// Scans the read model every 50 ms, timestamping every version the first time a row shows it.
async fn watch(
    client: aws_sdk_dynamodb::Client,
    table: String,
    seen: Arc<std::sync::Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut start = None;
        loop {
            let Ok(output) = client
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
            else {
                break;
            };
            let now = Instant::now();
            for item in output.items.unwrap_or_default() {
                #[derive(serde::Deserialize)]
                struct Checkpoint {
                    account_id: String,
                    version: u64,
                }
                let Ok(row) = eventfold::aws::item::from_item::<Checkpoint>(item, "row") else {
                    continue; // the totals rows
                };
                let previous = last
                    .insert(row.account_id.clone(), row.version)
                    .unwrap_or(0);
                if row.version > previous
                    && let Ok(mut seen) = seen.lock()
                {
                    for version in previous + 1..=row.version {
                        seen.entry((row.account_id.clone(), version)).or_insert(now);
                    }
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn projection_lag(
    base: &str,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<LagResult, String> {
    let http = reqwest::Client::new();
    let seen = Arc::new(std::sync::Mutex::new(Seen::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        client.clone(),
        table.to_owned(),
        seen.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..50 {
        let reply: serde_json::Value = http
            .post(format!("{base}/accounts"))
            .json(&json!({"owner": format!("Owner {n}"), "currency": "EUR"}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        ids.push(reply["id"].as_str().ok_or("no id")?.to_owned());
    }
    let mut rng = fastrand::Rng::with_seed(42);
    let plan: Vec<(String, serde_json::Value, String)> = (0..950)
        .map(|_| {
            let a = ids[rng.usize(..ids.len())].clone();
            let b = ids[rng.usize(..ids.len())].clone();
            match rng.u8(0..10) {
                0..=5 => (
                    format!("/accounts/{a}/deposits"),
                    json!({"amount": rng.u64(1..1000)}),
                    a,
                ),
                6..=7 => (
                    format!("/accounts/{a}/withdrawals"),
                    json!({"amount": rng.u64(1..300)}),
                    a,
                ),
                _ => (
                    "/transfers".into(),
                    json!({"from": a, "to": b, "amount": rng.u64(1..300)}),
                    a,
                ),
            }
        })
        .collect();
    let answers: Vec<Result<(Duration, Option<Ack>), String>> = futures::stream::iter(plan)
        .map(|(path, body, account)| {
            let http = http.clone();
            async move {
                let sent = Instant::now();
                let response = http
                    .post(format!("{base}{path}"))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let reply: serde_json::Value = response.json().await.unwrap_or_default();
                let answered = Instant::now();
                let version = match status {
                    200 => reply["version"].as_u64(),
                    201 => reply["from"]["version"].as_u64(),
                    _ => None,
                };
                Ok((answered - sent, version.map(|v| (account, v, answered))))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    for answer in answers {
        let (latency, ack) = answer?;
        latencies.push(latency);
        acks.extend(ack);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let lags = loop {
        let observed: Option<Vec<Duration>> = {
            let seen = seen.lock().map_err(|_| "watcher panicked")?;
            acks.iter()
                .map(|(account, version, answered)| {
                    seen.get(&(account.clone(), *version))
                        .map(|at| at.saturating_duration_since(*answered))
                })
                .collect()
        };
        match observed {
            Some(lags) => break lags,
            None if Instant::now() > deadline => {
                return Err("the projection did not catch up within 60 s".into());
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.await;
    latencies.sort();
    let mut lags = lags;
    lags.sort();
    Ok((1_000, lags, latencies, elapsed))
}

/// The bank's template, at the workspace root.
pub fn template_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}
