//! The `eventfold` command line: the local runner and the operator commands, for the service
//! whose template it is pointed at. A service's own tool crate is [`main`] and nothing else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::local::demo::{Credentials, run_file};
use crate::local::functions::Functions;
use crate::local::provision::{Clients, provision};
use crate::local::runner::{LocalRunner, RunnerOptions};
use crate::local::template::Template;
use crate::ops::dlq;
use crate::ops::streams::{self, Format};
use crate::ops::{self, OpsError, Selection, Source, Target, say};

/// Event sourcing on AWS serverless: run it locally, operate it, measure it.
///
/// AWS endpoint, region and credentials come from the usual AWS configuration;
/// AWS_ENDPOINT_URL points at an emulator or LocalStack. Operator commands work on a deployed
/// stack (--stack, names from its resources) or on a local environment (--prefix, the
/// template's logical ids under it). The service is the one --template describes; its own
/// functions do its work (projecting, snapshotting), run from --functions locally.
#[derive(Debug, Parser)]
#[command(name = "eventfold", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The service's SAM template.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "infra/template.yaml"
    )]
    template: PathBuf,
    /// Where the service's function binaries are built (local environments); by default
    /// target/debug of the template's workspace, or $CARGO_TARGET_DIR/debug.
    #[arg(long, global = true, value_name = "DIR")]
    functions: Option<PathBuf>,
    /// A deployed CloudFormation stack to operate on (its outputs name the tables and queues).
    #[arg(long, global = true, value_name = "NAME")]
    stack: Option<String>,
    /// A local environment's name prefix (tables and queues are <prefix>-<LogicalId>).
    #[arg(
        long,
        global = true,
        value_name = "PREFIX",
        env = "EVENTFOLD_PREFIX",
        default_value = "eventfold"
    )]
    prefix: String,
}

impl TargetArgs {
    fn selection(&self) -> Selection {
        match &self.stack {
            Some(stack) => Selection::Stack(stack.clone()),
            None => Selection::Prefix(self.prefix.clone()),
        }
    }

    fn source(&self) -> Source {
        Source {
            template: self.template.clone(),
            functions: self.functions.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new service for one aggregate: domain, functions, template, Makefile, tests.
    ///
    /// The folder must not exist or be empty. Then `cd <dir> && make test`, and `make local`.
    New {
        /// The new service's folder; its name is the service's unless --name says otherwise.
        dir: PathBuf,
        /// The aggregate, in Pascal case (Book, BookLoan).
        #[arg(long)]
        aggregate: String,
        /// The aggregate's plural, when the English rules get it wrong (Sheep: Flock).
        #[arg(long)]
        plural: Option<String>,
        /// The service's name (lower case, dashes): its crates' prefix.
        #[arg(long)]
        name: Option<String>,
        /// How it depends on eventfold: path:<checkout>, git:<url>[#<rev>] or
        /// version:<semver>; by default the checkout this CLI was built from.
        #[arg(long, value_name = "SOURCE")]
        eventfold: Option<crate::scaffold::Dependency>,
    },
    /// Serve the API and the consumers locally over the emulator, after a short demo.
    ///
    /// Creates the template's tables and queues under --prefix (reusing them if they exist),
    /// runs each function's binary from --functions, serves the HTTP API on 127.0.0.1, drives
    /// every event source mapping, and keeps serving until Ctrl-C. The demo is the template
    /// folder's demo.yaml, if there is one. Function logs go to .local/runner-<prefix>.log;
    /// warnings to stderr.
    Local {
        /// Port on 127.0.0.1.
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        /// Serve without running the demo first.
        #[arg(long)]
        no_demo: bool,
        /// The demo to run (default: demo.yaml beside the template).
        #[arg(long, value_name = "PATH")]
        demo: Option<PathBuf>,
    },
    /// Read a stream, or follow the events table live.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Check the integrity chain of one stream, or of every stream (exit 1 on tampering).
    Verify {
        /// The stream, e.g. Account-1234.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        stream: Option<String>,
        /// Every stream in the events table.
        #[arg(long)]
        all: bool,
    },
    /// Read the global feed from a cursor, follow it, or check it against the events table.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Rebuild read models from the events table.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Take snapshots of existing streams.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
    /// List, inspect and redrive the dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The reactors' timers.
    #[command(subcommand)]
    Timers(TimersCommand),
    /// Streams, events, the largest streams, projection lag and queue depths.
    Stats,
    /// Forget a person: their key is deleted, so every field sealed with it reads as erased
    /// everywhere, for good (asks first).
    ///
    /// Goes through the service's own forget route (its one DELETE route with a path
    /// parameter on the function holding subjects' keys; the bank's DELETE /users/{id}),
    /// invoked as an operator: the caller's AWS identity on a stack.
    Forget {
        /// The subject: the user's id (their token's subject).
        subject: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print an access token of the service's user pool for a user holding some scopes.
    ///
    /// Creates the user if it is new, makes it a member of exactly the groups named by
    /// --scope (a group grants the scope of its name), and signs it in through the template's
    /// app client. The token works on the local runner (make local) and on a deployed stack
    /// (make deploy-local, or AWS): send it as `Authorization: Bearer <token>`.
    Token {
        /// The user: an id, or an email address (then also its verified email).
        #[arg(long)]
        user: String,
        /// The scopes, space-separated (e.g. "bank/read bank/write").
        #[arg(long, default_value = "")]
        scope: String,
    },
}

#[derive(Debug, Subcommand)]
enum StreamsCommand {
    /// Print a stream's events, from a version or as it was at a version or instant.
    Read {
        /// The stream, e.g. Account-1234.
        stream: String,
        /// The first version to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The stream as it was: a version (12) or an RFC 3339 instant.
        #[arg(long, value_name = "VERSION|TIME", conflicts_with = "from")]
        as_of: Option<String>,
        /// One JSON document per event.
        #[arg(long)]
        json: bool,
    },
    /// Follow the events table's change stream, printing each new event (Ctrl-C stops).
    Tail {
        /// Only streams of this category, e.g. Account.
        category: Option<String>,
        /// One JSON document per event.
        #[arg(long)]
        json: bool,
        /// Start from the oldest record the change stream keeps (24 hours), not from now.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        max: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum TimersCommand {
    /// Every timer still waiting, earliest first: its reactor, key, due time and payload.
    List {
        /// Only this reactor's.
        #[arg(long)]
        reactor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum FeedCommand {
    /// Print entries after a cursor (from the start without one), then the cursor to go on
    /// from (on stderr).
    Read {
        /// The cursor a read printed: one position per partition, joined by '.'.
        #[arg(long)]
        after: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON document per entry.
        #[arg(long)]
        json: bool,
    },
    /// Follow the feed from a cursor (from the start without one), printing each entry
    /// (Ctrl-C stops).
    Tail {
        /// The cursor to start after.
        #[arg(long)]
        after: Option<String>,
        /// One JSON document per entry.
        #[arg(long)]
        json: bool,
        /// Stop after this many entries.
        #[arg(long, value_name = "N")]
        max: Option<usize>,
    },
    /// How far a feed consumer is behind: events not applied and the age of the oldest, and
    /// each partition's checkpoint and holder.
    Lag {
        /// The consumer's name.
        consumer: String,
    },
    /// The streams a feed consumer parked: the version it could not apply, why, and when.
    Parked {
        /// The consumer's name.
        consumer: String,
    },
    /// Ask a feed consumer to apply a parked stream again, from its failing event on, once
    /// the cause is fixed (its instances do on their next poll).
    Redrive {
        /// The consumer's name.
        consumer: String,
        /// The parked stream.
        stream: String,
    },
    /// Check that the feed holds every event of the events table once, in order, without
    /// gaps (exit 1 if not); --repair indexes what it lacks.
    Verify {
        /// Index the events the feed lacks, then check again.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// The projections of this service.
    List,
    /// Clear a read model and replay every event into it (asks first).
    Rebuild {
        /// The projection: its function's logical id, or that without Project… and …Function
        /// (ProjectAccountsFunction is accounts).
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotsCommand {
    /// Snapshot every stream of a category (Account), or one stream (Account-1234), through
    /// the service's snapshot function.
    Backfill {
        /// A category or a stream.
        what: String,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Every dead-letter queue and its depth.
    List,
    /// Show messages of a dead-letter queue without taking them out.
    Peek {
        /// The queue: its logical id, or that without …DeadLetterQueue (projector).
        queue: String,
        /// At most this many messages.
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Do each message's work again and delete it once done (asks first).
    Redrive {
        /// The queue: its logical id, or that without …DeadLetterQueue (projector).
        queue: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn init_logs(command: &Command, prefix: &str) -> Option<String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt};
    let colour = std::io::stderr().is_terminal();
    let warnings = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    if !matches!(command, Command::Local { .. }) {
        let _ = tracing_subscriber::registry().with(warnings).try_init();
        return None;
    }
    // The runner's function logs go to a file, so the demo reads as a story.
    let path = format!(".local/runner-{prefix}.log");
    let _ = std::fs::create_dir_all(".local");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let detail = fmt::layer()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(warnings)
        .with(detail)
        .try_init();
    Some(path)
}

/// The command line, parsed from the process's arguments and run: a service's tool binary is
/// `fn main() -> ExitCode { eventfold_cli::main() }`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = init_logs(&cli.command, &cli.target.prefix);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("eventfold: no async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, log_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eventfold: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, log_file: Option<String>) -> Result<(), OpsError> {
    let format = |json: bool| if json { Format::Json } else { Format::Pretty };
    match cli.command {
        Command::Local {
            port,
            no_demo,
            demo,
        } => {
            let demo = (!no_demo).then(|| {
                demo.unwrap_or_else(|| {
                    cli.target
                        .template
                        .parent()
                        .map_or_else(|| PathBuf::from("demo.yaml"), |d| d.join("demo.yaml"))
                })
            });
            local(&cli.target, port, demo, log_file).await
        }
        Command::New {
            dir,
            aggregate,
            plural,
            name,
            eventfold,
        } => new_service(
            &dir,
            &aggregate,
            plural.as_deref(),
            name.as_deref(),
            eventfold,
        ),
        command => {
            let target = Target::resolve(&cli.target.selection(), &cli.target.source()).await?;
            operate(&target, command, format).await
        }
    }
}

async fn operate(
    target: &Target,
    command: Command,
    format: impl Fn(bool) -> Format,
) -> Result<(), OpsError> {
    match command {
        Command::Streams(StreamsCommand::Read {
            stream,
            from,
            as_of,
            json,
        }) => {
            let as_of = as_of.as_deref().map(streams::parse_as_of).transpose()?;
            streams::read(target, &stream, from, as_of, format(json)).await?;
        }
        Command::Streams(StreamsCommand::Tail {
            category,
            json,
            from_start,
            max,
        }) => {
            let tail = streams::tail(target, category.as_deref(), format(json), from_start, max);
            tokio::select! {
                shown = tail => { shown?; }
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Verify { stream, .. } => {
            let report = ops::verify::verify(target, stream.as_deref()).await?;
            if report.tampered() > 0 {
                return Err(OpsError(format!(
                    "{} tampered streams in {}",
                    report.tampered(),
                    target.label
                )));
            }
        }
        Command::Feed(FeedCommand::Read { after, limit, json }) => {
            ops::feed::read(target, after.as_deref(), limit, format(json)).await?;
        }
        Command::Feed(FeedCommand::Tail { after, json, max }) => {
            let tail = ops::feed::tail(target, after.as_deref(), format(json), max);
            tokio::select! {
                shown = tail => { shown?; }
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Command::Feed(FeedCommand::Lag { consumer }) => {
            ops::feed::lag(target, &consumer).await?;
        }
        Command::Feed(FeedCommand::Parked { consumer }) => {
            ops::feed::parked(target, &consumer).await?;
        }
        Command::Feed(FeedCommand::Redrive { consumer, stream }) => {
            ops::feed::redrive(target, &consumer, &stream).await?;
        }
        Command::Feed(FeedCommand::Verify { repair }) => {
            let check = ops::feed::verify(target, repair).await?;
            if !check.is_sound() {
                return Err(OpsError(format!(
                    "the feed of {} is not whole: {} streams missing events, {} broken",
                    target.label,
                    check.missing.len(),
                    check.broken.len()
                )));
            }
        }
        Command::Projections(ProjectionsCommand::List) => {
            for name in target.service.projectors.keys() {
                say(name);
            }
        }
        Command::Projections(ProjectionsCommand::Rebuild { name, yes }) => {
            ops::rebuild::rebuild(target, &name, yes).await?;
        }
        Command::Snapshots(SnapshotsCommand::Backfill { what }) => {
            ops::snapshots::backfill(target, &what).await?;
        }
        Command::Dlq(DlqCommand::List) => {
            dlq::list(target).await?;
        }
        Command::Dlq(DlqCommand::Peek { queue, max }) => {
            dlq::peek(target, &queue, max).await?;
        }
        Command::Dlq(DlqCommand::Redrive { queue, yes }) => {
            let report = dlq::redrive(target, &queue, yes).await?;
            if report.left > 0 {
                return Err(OpsError(format!(
                    "{} messages could not be redriven",
                    report.left
                )));
            }
        }
        Command::Stats => {
            ops::stats::stats(target).await?;
        }
        Command::Timers(TimersCommand::List { reactor }) => {
            ops::timers::list(target, reactor.as_deref()).await?;
        }
        Command::Forget { subject, yes } => {
            ops::forget::forget(target, &subject, yes).await?;
        }
        Command::Token { user, scope } => {
            let issuer = target.identity.as_ref().ok_or_else(|| {
                OpsError::new(format!(
                    "{} has no user pool behind a JWT authorizer (is AuthMode JWT?)",
                    target.label
                ))
            })?;
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            let token = issuer
                .token(&target.clients.cognito, &user, &scopes)
                .await
                .map_err(OpsError)?;
            say(&token);
        }
        Command::Local { .. } | Command::New { .. } => {}
    }
    Ok(())
}

fn new_service(
    dir: &std::path::Path,
    aggregate: &str,
    plural: Option<&str>,
    name: Option<&str>,
    eventfold: Option<crate::scaffold::Dependency>,
) -> Result<(), OpsError> {
    use crate::scaffold::{Dependency, Names, write};
    let folder_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = Names::new(name.unwrap_or(&folder_name), aggregate, plural)
        .map_err(|e| OpsError(e.to_string()))?;
    let eventfold = eventfold.unwrap_or_else(Dependency::default_for_this_build);
    let written = write(dir, &names, &eventfold).map_err(|e| OpsError(e.to_string()))?;
    say(&format!(
        "wrote the {} service ({} files, eventfold from {eventfold}) in {}",
        names.service,
        written.files.len(),
        written.root.display()
    ));
    if !written.formatted {
        say("rustfmt was not found: run cargo fmt before make test");
    }
    say(&format!(
        "next: cd {} && make test && make local  (edit domain/src/lib.rs first)",
        written.root.display()
    ));
    Ok(())
}

async fn local(
    target: &TargetArgs,
    port: u16,
    demo: Option<PathBuf>,
    log_file: Option<String>,
) -> Result<(), OpsError> {
    let failed = |e: &dyn std::fmt::Display| OpsError(e.to_string());
    let template = Template::load(&target.template).map_err(|e| failed(&e))?;
    let sdk = eventfold::aws::load_sdk_config().await;
    let clients = Clients::new(&sdk);
    let resources = provision(&template, &clients, &target.prefix)
        .await
        .map_err(|e| failed(&e))?;
    say(&format!("Resources (from {}):", target.template.display()));
    for (logical, name) in &resources.tables {
        say(&format!("  table  {logical:<26} {name}"));
    }
    for (logical, queue) in &resources.queues {
        say(&format!("  queue  {logical:<26} {}", queue.url));
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let functions = Functions::from_template(
        &template,
        &resources,
        &endpoint,
        &target.source().binaries(),
    )
    .map_err(|e| failed(&e))?;
    functions.warm().await.map_err(|e| failed(&e))?;
    let options = RunnerOptions {
        port,
        region: sdk
            .region()
            .map_or_else(|| "us-east-1".into(), ToString::to_string),
        endpoint: Some(endpoint.clone()).filter(|e| !e.is_empty()),
        ..RunnerOptions::default()
    };
    let runner = LocalRunner::start(&template, &resources, &clients, functions, options)
        .await
        .map_err(|e| failed(&e))?;
    say(&format!(
        "\nServing {} routes at {}; consumers polling:",
        runner.routes.len(),
        runner.url()
    ));
    for mapping in runner.stats.keys() {
        say(&format!("  {mapping}"));
    }
    if let Some(path) = log_file {
        say(&format!("Function logs: {path}"));
    }
    if let Some(demo) = demo.filter(|d| d.is_file()) {
        let ran = match Credentials::for_environment(&template, &resources, &clients) {
            Ok(credentials) => run_file(&demo, &runner.url(), &credentials).await,
            Err(error) => Err(error),
        };
        if let Err(error) = ran {
            say(&format!("demo failed: {error}"));
        }
    }
    say(&format!(
        "\nThe API is at {}. Ctrl-C stops everything.",
        runner.url()
    ));
    tokio::signal::ctrl_c().await.map_err(|e| failed(&e))?;
    say("\nstopping…");
    runner.stop().await;
    Ok(())
}
