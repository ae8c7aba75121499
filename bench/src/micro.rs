//! The criterion micro benchmarks' results (`cargo bench -p eventfold --bench micro`, run by
//! `make bench` before the report), read from `target/criterion` and rendered as a table.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
struct Benchmark {
    full_id: String,
    throughput: Option<Throughput>,
}

#[derive(Deserialize)]
enum Throughput {
    Elements(u64),
    Bytes(u64),
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

/// Nanoseconds, in the unit that reads best.
fn duration(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The section, or an empty string when criterion has not run here.
pub fn section(criterion: &Path) -> Result<String, String> {
    let mut rows = Vec::new();
    for group in std::fs::read_dir(criterion).into_iter().flatten().flatten() {
        for bench in std::fs::read_dir(group.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let new = bench.path().join("new");
            let (Ok(meta), Ok(estimates)) = (
                std::fs::read_to_string(new.join("benchmark.json")),
                std::fs::read_to_string(new.join("estimates.json")),
            ) else {
                continue;
            };
            let meta: Benchmark = serde_json::from_str(&meta).map_err(|e| e.to_string())?;
            let estimates: Estimates =
                serde_json::from_str(&estimates).map_err(|e| e.to_string())?;
            let median = estimates.median.point_estimate;
            let per = match meta.throughput {
                Some(Throughput::Elements(n)) if n > 1 => {
                    format!("{} per event", duration(median / n as f64))
                }
                Some(Throughput::Bytes(n)) => format!("{:.0} MB/s", n as f64 / median * 1000.0),
                _ => String::new(),
            };
            rows.push(format!(
                "| {} | {} | {} – {} | {per} |",
                meta.full_id,
                duration(median),
                duration(estimates.median.confidence_interval.lower_bound),
                duration(estimates.median.confidence_interval.upper_bound),
            ));
        }
    }
    if rows.is_empty() {
        return Ok(String::new());
    }
    rows.sort();
    let mut out = String::from(
        "## Micro benchmarks (criterion)\n\n`cargo bench -p eventfold --bench micro`: the CPU \
         side of a command on this machine, median with its 95 % interval. An event item is \
         one deposit as the store writes it (envelope, metadata, chain); the fold decodes each \
         of 10,000 events' payloads and applies it.\n\n\
         | benchmark | median | 95 % interval | |\n|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
    Ok(out)
}
