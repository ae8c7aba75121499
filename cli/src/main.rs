//! `eventfold`: the local runner and operator commands.
//!
//! ```text
//! eventfold local [--port N] [--prefix P] [--no-demo]   serve the API and consumers locally
//! eventfold rebuild [--prefix P]                        rebuild the accounts projection
//! eventfold redrive [--prefix P]                        re-apply dead-lettered projector batches
//! eventfold snapshot <Category|StreamId> [--prefix P]   snapshot one stream or a whole category
//! eventfold bench [--out FILE]                          benchmarks against the emulator
//! ```

use std::process::ExitCode;

use eventfold_cli::local::functions::Functions;
use eventfold_cli::local::provision::{Clients, provision};
use eventfold_cli::local::runner::{LocalRunner, RunnerOptions};
use eventfold_cli::local::template::Template;

/// Resource prefix of the local environment.
const LOCAL_PREFIX: &str = "eventfold";

struct Args {
    command: String,
    positional: Vec<String>,
    options: std::collections::BTreeMap<String, String>,
    flags: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "help".into());
    let mut parsed = Args {
        command,
        positional: Vec::new(),
        options: std::collections::BTreeMap::new(),
        flags: Vec::new(),
    };
    let rest: Vec<String> = args.collect();
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        if let Some(name) = arg.strip_prefix("--") {
            if name.starts_with("no-") || rest.get(i + 1).is_none_or(|next| next.starts_with("--"))
            {
                parsed.flags.push(name.to_owned());
            } else {
                parsed.options.insert(name.to_owned(), rest[i + 1].clone());
                i += 1;
            }
        } else {
            parsed.positional.push(arg.clone());
        }
        i += 1;
    }
    parsed
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    if args.command == "bench" && std::env::var("RUST_LOG").is_err() {
        // The bench prints its own report; consumer logs would drown it.
        eventfold::telemetry::init_with_filter(true, "warn");
    }
    eventfold::telemetry::init_with(std::env::var("LOG_FORMAT").map_or(true, |f| f != "json"));
    let result = match args.command.as_str() {
        "local" => local(&args).await,
        "rebuild" => eventfold_cli::ops::rebuild_command(prefix(&args)).await,
        "redrive" => eventfold_cli::ops::redrive_command(prefix(&args)).await,
        "snapshot" => {
            eventfold_cli::ops::snapshot_command(
                prefix(&args),
                args.positional.first().map(String::as_str),
            )
            .await
        }
        "bench" => {
            eventfold_cli::bench::run(
                args.options.get("out").map(String::as_str),
                args.options.get("only").map(String::as_str),
            )
            .await
        }
        _ => {
            say(include_str!("usage.txt"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eventfold {}: {error}", args.command);
            ExitCode::FAILURE
        }
    }
}

fn prefix(args: &Args) -> &str {
    args.options
        .get("prefix")
        .map_or(LOCAL_PREFIX, String::as_str)
}

async fn local(args: &Args) -> Result<(), String> {
    let port: u16 = match args.options.get("port") {
        Some(p) => p.parse().map_err(|_| format!("--port {p} is not a port"))?,
        None => std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000),
    };
    let template = Template::load_default().map_err(|e| e.to_string())?;
    let sdk = eventfold::aws::load_sdk_config().await;
    let clients = Clients::new(&sdk);
    let resources = provision(&template, &clients, prefix(args))
        .await
        .map_err(|e| e.to_string())?;
    say("Resources (from infra/template.yaml):");
    for (logical, name) in &resources.tables {
        say(&format!("  table  {logical:<26} {name}"));
    }
    for (logical, queue) in &resources.queues {
        say(&format!("  queue  {logical:<26} {}", queue.url));
    }
    let functions =
        Functions::from_template(&template, &resources, &clients).map_err(|e| e.to_string())?;
    let options = RunnerOptions {
        port,
        region: sdk
            .region()
            .map_or_else(|| "us-east-1".into(), ToString::to_string),
        ..RunnerOptions::default()
    };
    let runner = LocalRunner::start(&template, &resources, &clients, functions, options)
        .await
        .map_err(|e| e.to_string())?;
    say(&format!(
        "\nServing {} routes at {}; consumers polling:",
        runner.routes.len(),
        runner.url()
    ));
    for mapping in runner.stats.keys() {
        say(&format!("  {mapping}"));
    }
    if !args.flags.iter().any(|f| f == "no-demo") {
        if let Err(error) = eventfold_cli::local::demo::run(&runner.url()).await {
            say(&format!("demo failed: {error}"));
        }
    }
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    say("\nstopping…");
    runner.stop().await;
    Ok(())
}
