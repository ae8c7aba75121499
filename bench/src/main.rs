//! `eventfold-bench`: the report (`make bench`) and the cost check (`make bench-check`), against
//! the emulator in `EVENTFOLD_EMULATOR_ENDPOINT`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Benchmarks against the emulator in EVENTFOLD_EMULATOR_ENDPOINT.
#[derive(Debug, Parser)]
#[command(name = "eventfold-bench", version)]
struct Cli {
    /// Where to write the report (Markdown).
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Run one section only, and print it (e.g. hot).
    #[arg(long, value_name = "SECTION")]
    only: Option<String>,
    /// The comparison binary (bench/compare, built by make bench) to run beside Eventfold.
    #[arg(long, value_name = "BINARY")]
    compare: Option<PathBuf>,
    /// Instead of the report, hold requests, items and bytes per operation against this
    /// baseline (make bench-check); exit 1 on a regression.
    #[arg(long, value_name = "BASELINE", conflicts_with_all = ["out", "only", "compare"])]
    check: Option<PathBuf>,
    /// With --check: write the baseline from this run instead (make bench-baseline).
    #[arg(long, requires = "check")]
    update: bool,
    /// Run one CPU operation inside the function callgrind counts (the check runs itself so).
    #[arg(long, value_name = "OPERATION", hide = true)]
    cpu: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(operation) = &cli.cpu {
        return match eventfold_bench::cpu::run_one(operation).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("eventfold-bench: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = match &cli.check {
        Some(baseline) => eventfold_bench::check::run(baseline, cli.update).await,
        None => {
            eventfold_bench::run(
                cli.out.as_deref(),
                cli.only.as_deref(),
                cli.compare.as_deref(),
            )
            .await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eventfold-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
