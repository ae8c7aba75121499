//! `eventfold-compare`: Eventfold beside cqrs-es 0.5 + dynamo-es 0.5, in one process, on one
//! emulator, with one SDK configuration (Eventfold's: rustls on ring, standard retries, the
//! same timeouts) and the bank's account logic on both sides. Writes its figures as JSON for
//! `eventfold bench` to render.
//!
//! ```text
//! eventfold-compare --out FILE [--only throughput|lengths|batch] [--lengths 10,1000] [--quick]
//! ```
//!
//! The emulator is the one in `EVENTFOLD_EMULATOR_ENDPOINT` (or `AWS_ENDPOINT_URL`).

mod anchor;
mod ours;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::Credentials;
use bank::domain::Name;
use bank::domain::account::AccountCommand;
use bank::domain::money::{Amount, Currency};
use eventfold::command::{CommandService, RetryPolicy};
use serde::Serialize;

use crate::anchor::{CqrsCommand, DEADLINE, Failure, Framework};
use eventfold::aws::RequestCounter as Counter;

/// What one command asked of DynamoDB.
#[derive(Clone, Debug, Default, Serialize)]
struct Counts {
    /// Requests per operation.
    requests: std::collections::BTreeMap<String, u64>,
    /// Items returned by reads.
    items_read: u64,
    /// Response bytes.
    bytes_read: u64,
    /// Read capacity units, computed from item sizes.
    read_units: u64,
    /// Write capacity units, computed from item sizes.
    write_units: u64,
}

impl Counts {
    fn of(counter: &Counter) -> Self {
        Self {
            requests: counter.snapshot(),
            items_read: counter.items_read(),
            bytes_read: counter.bytes_read(),
            read_units: counter.read_units(),
            write_units: counter.write_units(),
        }
    }

    fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// A client for `sdk` reporting to `counter`.
fn counted(counter: &Counter, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(counter.clone())
            .build(),
    )
}

/// An amount the bank accepts.
pub fn amount(minor_units: i64) -> Amount {
    Amount::new(minor_units).unwrap_or_else(|e| panic!("{minor_units} is an amount: {e}"))
}

fn open_command() -> AccountCommand {
    AccountCommand::Open {
        owner: Name::parse("Bench").unwrap_or_else(|e| panic!("a name: {e}")),
        currency: Currency::parse("EUR").unwrap_or_else(|e| panic!("a currency: {e}")),
        owner_id: None,
    }
}

/// Which system, and for the anchor whether it is given a retry loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum System {
    Eventfold,
    /// Eventfold without the idempotency record (what the anchor does not keep either).
    EventfoldUnrecorded,
    DynamoEs,
    /// The anchor with Eventfold's retry policy written around `execute`.
    DynamoEsRetrying,
    /// The anchor with the loop most users write first: retry at once.
    DynamoEsRetryingAtOnce,
}

/// Both systems, each with its own counted client from one SDK configuration.
struct Sides {
    ours: CommandService,
    ours_counter: Counter,
    anchor: Framework,
    anchor_counter: Counter,
    policy: RetryPolicy,
    /// Eventfold's tables.
    tables: ours::Tables,
    /// dynamo-es's events table.
    anchor_events: String,
}

impl Sides {
    async fn new(sdk: &aws_config::SdkConfig, prefix: &str) -> Result<Self, String> {
        let ours_counter = Counter::default();
        let anchor_counter = Counter::default();
        let ours_client = counted(&ours_counter, sdk);
        let anchor_client = counted(&anchor_counter, sdk);
        let tables = ours::Tables::create(&ours_client, prefix).await?;
        let (events, snapshots) = (format!("{prefix}-Events"), format!("{prefix}-Snapshots"));
        anchor::create_tables(&anchor_client, &events, &snapshots).await?;
        Ok(Self {
            ours: tables.service(ours_client),
            ours_counter,
            anchor: anchor::framework(anchor_client, &events, &snapshots),
            anchor_counter,
            policy: RetryPolicy::default(),
            tables: tables.clone(),
            anchor_events: events,
        })
    }

    fn counter(&self, system: System) -> &Counter {
        match system {
            System::Eventfold | System::EventfoldUnrecorded => &self.ours_counter,
            System::DynamoEs | System::DynamoEsRetrying | System::DynamoEsRetryingAtOnce => {
                &self.anchor_counter
            }
        }
    }

    async fn execute(&self, system: System, id: &str, command: &AccountCommand) -> anchor::Outcome {
        match system {
            System::Eventfold | System::EventfoldUnrecorded => ours::execute(
                &self.ours,
                id,
                command,
                system == System::Eventfold,
                DEADLINE,
            )
            .await
            .map(|(attempts, _)| attempts),
            System::DynamoEs => {
                anchor::execute(&self.anchor, id, &CqrsCommand::Bank(command.clone()), None).await
            }
            System::DynamoEsRetrying | System::DynamoEsRetryingAtOnce => {
                let at_once = RetryPolicy {
                    base_delay: Duration::ZERO,
                    max_delay: Duration::ZERO,
                    ..self.policy.clone()
                };
                let policy = if system == System::DynamoEsRetrying {
                    &self.policy
                } else {
                    &at_once
                };
                let deadline = Instant::now() + DEADLINE;
                anchor::execute(
                    &self.anchor,
                    id,
                    &CqrsCommand::Bank(command.clone()),
                    Some((policy, deadline)),
                )
                .await
            }
        }
    }
}

/// One throughput run.
#[derive(Debug, Serialize)]
struct Run {
    system: System,
    clients: usize,
    hot: bool,
    /// 1 = ran first for its configuration.
    order: usize,
    commands: usize,
    failed: usize,
    conflicts: usize,
    first_error: Option<String>,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    attempts_per_command: f64,
    requests_per_command: f64,
    read_units_per_command: f64,
    write_units_per_command: f64,
}

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) * p.min(100) + 50) / 100].as_secs_f64() * 1000.0,
    }
}

async fn throughput_run(
    sides: &Arc<Sides>,
    system: System,
    clients: usize,
    hot: bool,
    commands: usize,
    order: usize,
) -> Result<Run, String> {
    let accounts: Vec<String> = (0..if hot { 1 } else { clients })
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    // Opened and warmed up (two deposits each), untimed.
    for id in &accounts {
        sides
            .execute(system, id, &open_command())
            .await
            .map_err(|e| format!("{system:?} open: {}", e.1))?;
        for _ in 0..2 {
            sides
                .execute(
                    system,
                    id,
                    &AccountCommand::Deposit {
                        amount: amount(100),
                    },
                )
                .await
                .map_err(|e| format!("{system:?} warm-up: {}", e.1))?;
        }
    }
    let accounts = Arc::new(accounts);
    let next = Arc::new(AtomicUsize::new(0));
    sides.counter(system).reset();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (sides, accounts, next) = (sides.clone(), accounts.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen: Vec<(Duration, anchor::Outcome)> = Vec::new();
                loop {
                    if next.fetch_add(1, Ordering::Relaxed) >= commands {
                        break;
                    }
                    let id = &accounts[if hot { 0 } else { client }];
                    // Each client: three deposits, then a withdrawal (its account never runs dry).
                    let command = if seen.len() % 4 == 3 {
                        AccountCommand::Withdraw { amount: amount(50) }
                    } else {
                        AccountCommand::Deposit {
                            amount: amount(100),
                        }
                    };
                    let sent = Instant::now();
                    let outcome = sides.execute(system, id, &command).await;
                    seen.push((sent.elapsed(), outcome));
                }
                seen
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(commands);
    let (mut failed, mut conflicts, mut attempts) = (0, 0, 0u64);
    let mut first_error = None;
    for task in tasks {
        for (latency, outcome) in task.await.map_err(|e| e.to_string())? {
            latencies.push(latency);
            match outcome {
                Ok(tries) => attempts += u64::from(tries),
                Err((kind, message)) => {
                    failed += 1;
                    conflicts += usize::from(kind == Failure::Conflict);
                    first_error.get_or_insert(message);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let counts = Counts::of(sides.counter(system));
    Ok(Run {
        system,
        clients,
        hot,
        order,
        commands,
        failed,
        conflicts,
        first_error,
        seconds,
        per_second: commands as f64 / seconds,
        p50_ms: percentile_ms(&latencies, 50),
        p99_ms: percentile_ms(&latencies, 99),
        attempts_per_command: attempts as f64 / (commands - failed).max(1) as f64,
        requests_per_command: counts.total_requests() as f64 / commands as f64,
        read_units_per_command: counts.read_units as f64 / commands as f64,
        write_units_per_command: counts.write_units as f64 / commands as f64,
    })
}

/// Commands per configuration, scaled down by `--quick`.
fn commands_for(clients: usize, hot: bool, quick: bool) -> usize {
    let full = match (hot, clients) {
        (_, 1) => 120,
        (false, 8) => 320,
        (false, _) => 640,
        (true, 8) => 240,
        (true, _) => 320,
    };
    if quick { full / 8 } else { full }
}

async fn throughput(sdk: &aws_config::SdkConfig, quick: bool) -> Result<Vec<Run>, String> {
    let sides = Arc::new(Sides::new(sdk, &format!("thr{}", suffix())).await?);
    let mut runs = Vec::new();
    let mut configuration = 0;
    for hot in [false, true] {
        for clients in [1, 8, 32] {
            let mut systems = vec![System::Eventfold, System::DynamoEs];
            if hot {
                systems.push(System::DynamoEsRetrying);
                systems.push(System::DynamoEsRetryingAtOnce);
            } else {
                systems.push(System::EventfoldUnrecorded);
            }
            // Alternate who goes first, so neither always meets a warmer emulator.
            if configuration % 2 == 1 {
                systems.reverse();
            }
            configuration += 1;
            for (order, system) in systems.into_iter().enumerate() {
                let commands = commands_for(clients, hot, quick);
                let run = throughput_run(&sides, system, clients, hot, commands, order + 1).await?;
                eprintln!(
                    "  {system:?} {clients} clients{}: {:.1}/s p50 {:.1} ms p99 {:.1} ms, {} failed",
                    if hot { " (hot)" } else { "" },
                    run.per_second,
                    run.p50_ms,
                    run.p99_ms,
                    run.failed
                );
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

/// A command's cost on a stream of a given length.
#[derive(Debug, Serialize)]
struct Cost {
    system: String,
    events: usize,
    runs: usize,
    succeeded: usize,
    error: Option<String>,
    p50_ms: f64,
    counts: Counts,
    /// Eventfold: events folded on top of the snapshot (or from the start).
    events_folded: Option<usize>,
    seed_seconds: f64,
}

/// The runs of one system at one length.
#[derive(Default)]
struct Tally {
    times: Vec<Duration>,
    succeeded: usize,
    error: Option<String>,
    counts: Counts,
    folded: Option<usize>,
}

impl Tally {
    /// One run: its time, what it asked of DynamoDB, and the events it folded or its error.
    fn record(
        &mut self,
        elapsed: Duration,
        counts: Counts,
        outcome: Result<Option<usize>, String>,
    ) {
        self.times.push(elapsed);
        self.counts = counts;
        match outcome {
            Ok(folded) => {
                self.succeeded += 1;
                self.folded = folded;
            }
            Err(message) => self.error = Some(message),
        }
    }

    fn finish(mut self, system: &str, events: usize, seed_seconds: f64) -> Cost {
        self.times.sort_unstable();
        let runs = self.times.len();
        eprintln!(
            "  {system} at {events}: {:.1} ms, {} requests, {} items, {}/{runs} succeeded",
            percentile_ms(&self.times, 50),
            self.counts.total_requests(),
            self.counts.items_read,
            self.succeeded,
        );
        Cost {
            system: system.to_owned(),
            events,
            runs,
            succeeded: self.succeeded,
            error: self.error,
            p50_ms: percentile_ms(&self.times, 50),
            counts: self.counts,
            events_folded: self.folded,
            seed_seconds,
        }
    }
}

/// A command's deadline in the cost-by-length runs: long enough to finish a 100,000-event load
/// without snapshots on an emulator that scans the whole partition for every page.
const LENGTH_DEADLINE: Duration = Duration::from_secs(180);

async fn lengths(sdk: &aws_config::SdkConfig, lengths: &[usize]) -> Result<Vec<Cost>, String> {
    // The emulator scans a whole partition for every Query page: at 100,000 events one page
    // takes seconds, past the 3 s attempt timeout sized for DynamoDB, and a timed-out attempt
    // is sent again. Both sides get room here, so what is counted is what a command asks.
    let sdk = &sdk
        .to_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(LENGTH_DEADLINE)
                .operation_timeout(LENGTH_DEADLINE)
                .build(),
        )
        .build();
    let mut costs = Vec::new();
    for &length in lengths {
        let sides = Sides::new(sdk, &format!("len{length}x{}", suffix())).await?;
        let runs = if length >= 100_000 { 1 } else { 3 };
        let history = bank::testing::account_history(length);

        // Eventfold, seeded as the store writes.
        let id = uuid::Uuid::now_v7().to_string();
        let stream = ours::stream(&id)?;
        let started = Instant::now();
        let ours_client = counted(&sides.ours_counter, sdk);
        let entity = eventfold::EntityId::parse(&id).map_err(|e| e.to_string())?;
        bank::testing::bulk_load_account(&ours_client, &sides.tables.events, &entity, length)
            .await
            .map_err(|e| e.to_string())?;
        let ours_seed = started.elapsed().as_secs_f64();
        let variants = [
            (
                "eventfold-bare",
                sides.tables.variant(ours_client.clone(), false),
            ),
            (
                "eventfold+snapshots",
                sides.tables.variant(ours_client.clone(), true),
            ),
            ("eventfold+kept", sides.ours.clone()),
        ];
        for (system, service) in variants {
            let mut tally = Tally::default();
            for _ in 0..runs {
                match system {
                    "eventfold+snapshots" => {
                        // Current, as the snapshot function keeps it within its interval.
                        eventfold::snapshot::Snapshotter::new(service.clone())
                            .map_err(|e| e.to_string())?
                            .register::<bank::domain::account::Account>()
                            .snapshot(&stream)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    "eventfold+kept" => {
                        // This process has loaded the stream before (its last command).
                        service
                            .load::<bank::domain::account::Account>(&stream)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    _ => {}
                }
                sides.ours_counter.reset();
                let started = Instant::now();
                let outcome = ours::execute(
                    &service,
                    &id,
                    &AccountCommand::Deposit { amount: amount(1) },
                    true,
                    LENGTH_DEADLINE,
                )
                .await;
                tally.record(
                    started.elapsed(),
                    Counts::of(&sides.ours_counter),
                    outcome.map(|(_, folded)| Some(folded)).map_err(|e| e.1),
                );
            }
            costs.push(tally.finish(system, length, ours_seed));
        }

        // dynamo-es, seeded item for item as it commits.
        let id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let anchor_client = counted(&sides.anchor_counter, sdk);
        anchor::bulk_load(&anchor_client, &sides.anchor_events, &id, &history).await?;
        let anchor_seed = started.elapsed().as_secs_f64();
        let mut tally = Tally::default();
        for _ in 0..runs {
            sides.anchor_counter.reset();
            let started = Instant::now();
            let outcome = sides
                .execute(
                    System::DynamoEs,
                    &id,
                    &AccountCommand::Deposit { amount: amount(1) },
                )
                .await;
            tally.record(
                started.elapsed(),
                Counts::of(&sides.anchor_counter),
                outcome.map(|_| None).map_err(|e| e.1),
            );
        }
        costs.push(tally.finish("dynamo-es", length, anchor_seed));
    }
    Ok(costs)
}

/// The largest number of events one command may append, by bisection over fresh accounts.
#[derive(Debug, Serialize)]
struct Batch {
    system: System,
    largest: usize,
    refusal: Option<String>,
}

async fn batch(sdk: &aws_config::SdkConfig) -> Result<Vec<Batch>, String> {
    let sides = Sides::new(sdk, &format!("batch{}", suffix())).await?;
    let mut found = Vec::new();
    for system in [System::Eventfold, System::DynamoEs] {
        let attempt = |n: usize| {
            let sides = &sides;
            async move {
                let id = uuid::Uuid::now_v7().to_string();
                sides
                    .execute(system, &id, &open_command())
                    .await
                    .map_err(|e| e.1)?;
                match system {
                    System::Eventfold => ours::deposit_many(&sides.ours, &id, n).await,
                    _ => anchor::execute(&sides.anchor, &id, &CqrsCommand::DepositMany(n), None)
                        .await
                        .map(drop)
                        .map_err(|e| e.1),
                }
            }
        };
        let (mut good, mut bad) = (1usize, 1000usize);
        attempt(good).await?;
        let mut refusal = attempt(bad).await.err();
        while bad - good > 1 {
            let middle = usize::midpoint(good, bad);
            match attempt(middle).await {
                Ok(()) => good = middle,
                Err(message) => {
                    bad = middle;
                    refusal = Some(message);
                }
            }
        }
        eprintln!("  {system:?}: {good} events per command at most");
        found.push(Batch {
            system,
            largest: good,
            refusal,
        });
    }
    Ok(found)
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_owned()
}

#[derive(Debug, Default, Serialize)]
struct Report {
    emulator: String,
    cqrs_es: &'static str,
    dynamo_es: &'static str,
    retry: String,
    deadline_seconds: u64,
    throughput: Vec<Run>,
    lengths: Vec<Cost>,
    batch: Vec<Batch>,
}

struct Options {
    out: String,
    only: Option<String>,
    lengths: Vec<usize>,
    quick: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        out: String::new(),
        only: None,
        lengths: vec![10, 1_000, 10_000, 100_000],
        quick: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => options.out = value()?,
            "--only" => options.only = Some(value()?),
            "--lengths" => {
                options.lengths = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--lengths: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--quick" => options.quick = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.out.is_empty() {
        return Err(
            "usage: eventfold-compare --out FILE [--only throughput|lengths|batch] \
                    [--lengths 10,1000] [--quick]"
                .into(),
        );
    }
    Ok(options)
}

async fn run() -> Result<(), String> {
    let options = options()?;
    let endpoint = std::env::var("EVENTFOLD_EMULATOR_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .map_err(|_| "set EVENTFOLD_EMULATOR_ENDPOINT".to_owned())?;
    let sdk = eventfold::aws::load_sdk_config_with(|loader| {
        loader
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "compare"))
    })
    .await;
    let policy = RetryPolicy::default();
    let mut report = Report {
        emulator: endpoint,
        cqrs_es: "0.5.0",
        dynamo_es: "0.5.0",
        retry: format!(
            "up to {} attempts, full jitter from max(last attempt, {} ms) doubling to {} ms",
            policy.max_attempts,
            policy.base_delay.as_millis(),
            policy.max_delay.as_millis()
        ),
        deadline_seconds: DEADLINE.as_secs(),
        ..Report::default()
    };
    let wanted = |section: &str| options.only.as_deref().is_none_or(|only| only == section);
    if wanted("batch") {
        eprintln!("events per atomic command…");
        report.batch = batch(&sdk).await?;
    }
    if wanted("throughput") {
        eprintln!("throughput, own accounts and one hot account…");
        report.throughput = throughput(&sdk, options.quick).await?;
    }
    if wanted("lengths") {
        eprintln!("cost by stream length…");
        report.lengths = lengths(&sdk, &options.lengths).await?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&options.out, json).map_err(|e| format!("cannot write {}: {e}", options.out))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("eventfold-compare: {message}");
            ExitCode::FAILURE
        }
    }
}
