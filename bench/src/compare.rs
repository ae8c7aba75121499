//! Eventfold beside cqrs-es + dynamo-es: runs `eventfold-compare` (bench/compare, a workspace of
//! its own) on the same emulator, reads its JSON, and renders its tables and charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::plots::{Chart, Series};

/// What `eventfold-compare` writes.
#[derive(Debug, Deserialize)]
pub struct Comparison {
    retry: String,
    deadline_seconds: u64,
    #[serde(default)]
    throughput: Vec<Run>,
    #[serde(default)]
    lengths: Vec<Cost>,
    #[serde(default)]
    batch: Vec<Batch>,
}

#[derive(Debug, Deserialize)]
struct Run {
    system: String,
    clients: usize,
    hot: bool,
    order: usize,
    commands: usize,
    failed: usize,
    conflicts: usize,
    first_error: Option<String>,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    attempts_per_command: f64,
    requests_per_command: f64,
    #[serde(default)]
    read_units_per_command: f64,
    #[serde(default)]
    write_units_per_command: f64,
}

#[derive(Debug, Deserialize)]
struct Cost {
    system: String,
    events: usize,
    runs: usize,
    succeeded: usize,
    error: Option<String>,
    p50_ms: f64,
    counts: Counts,
    events_folded: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Counts {
    requests: BTreeMap<String, u64>,
    items_read: u64,
    bytes_read: u64,
    #[serde(default)]
    read_units: u64,
    #[serde(default)]
    write_units: u64,
}

/// On-demand prices in us-east-1 (since November 2024), in dollars per million request units: a
/// read unit is 4 KB read strongly consistent, a write unit 1 KB written; a transaction takes two
/// of either per item.
const READ_UNIT_PRICE: f64 = 0.125;
const WRITE_UNIT_PRICE: f64 = 0.625;

/// Dollars per million commands of `read` and `write` units each.
pub(crate) fn price(read: f64, write: f64) -> String {
    format!("${:.2}", read * READ_UNIT_PRICE + write * WRITE_UNIT_PRICE)
}

#[derive(Debug, Deserialize)]
struct Batch {
    system: String,
    largest: usize,
    refusal: Option<String>,
}

const EVENTFOLD: &str = "eventfold";
const ANCHOR: &str = "dynamo-es";
const ANCHOR_RETRYING: &str = "dynamo-es-retrying";
const UNRECORDED: &str = "eventfold-unrecorded";
const ANCHOR_AT_ONCE: &str = "dynamo-es-retrying-at-once";

fn label(system: &str) -> &str {
    match system {
        EVENTFOLD => "Eventfold",
        ANCHOR => "cqrs-es + dynamo-es",
        ANCHOR_RETRYING => "cqrs-es + dynamo-es, with Eventfold's retry policy around it",
        ANCHOR_AT_ONCE => "cqrs-es + dynamo-es, retrying at once",
        UNRECORDED => "Eventfold without the idempotency record",
        "eventfold-bare" => "Eventfold, no snapshots",
        "eventfold+snapshots" => "Eventfold with snapshots",
        "eventfold+kept" => "Eventfold, state kept by the process",
        other => other,
    }
}

/// Runs the comparison binary against the emulator at `endpoint`; its JSON goes to `json`.
pub async fn run(binary: &Path, endpoint: &str, json: &Path) -> Result<Comparison, String> {
    let status = tokio::process::Command::new(binary)
        .arg("--out")
        .arg(json)
        .env("EVENTFOLD_EMULATOR_ENDPOINT", endpoint)
        .status()
        .await
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", binary.display()));
    }
    load(json)
}

/// Reads a comparison written earlier.
pub fn load(json: &Path) -> Result<Comparison, String> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))
}

fn writers(clients: usize) -> String {
    if clients == 1 {
        "1 client".to_owned()
    } else {
        format!("{clients} clients")
    }
}

fn percent(part: usize, whole: usize) -> String {
    format!("{:.1} %", 100.0 * part as f64 / whole.max(1) as f64)
}

fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

impl Comparison {
    fn run(&self, system: &str, clients: usize, hot: bool) -> Option<&Run> {
        self.throughput
            .iter()
            .find(|r| r.system == system && r.clients == clients && r.hot == hot)
    }

    /// The section: setup, throughput (own and hot), cost by length, largest batch.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## Eventfold beside cqrs-es + dynamo-es\n\n\
             The same run, one process, one emulator instance, one SDK configuration (rustls on \
             ring, standard retries with 3 attempts, 1 s connect / 3 s attempt / 9 s call \
             timeouts), and the bank's account logic on both sides: the anchor's `handle` calls \
             the bank's `decide`, its `apply` the bank's `evolve`. The anchor is cqrs-es 0.5.0 + \
             dynamo-es 0.5.0 in its event-store mode (`PersistedEventStore::new_event_store`, as \
             `dynamodb_cqrs` builds it; its snapshot modes apply events twice in 0.5.0), release \
             build. Eventfold runs as its command function does: an idempotency record with \
             every command, snapshots configured, the states it loads kept for the next command, \
             conflicts retried within a {}-second deadline ({}), and no per-process queue, since \
             separate Lambda instances race rather than queue. The own-account table adds \
             Eventfold without the idempotency record, which the anchor does not keep: what \
             exactly-once retries cost. The anchor has no retry; the hot-account table adds two loops around \
             `execute`, each within the same deadline: Eventfold's own policy (full jitter in \
             units of the last attempt, a generous anchor) and the loop most users write first, \
             retrying at once. Every account is opened and given two \
             deposits before timing; the commands are three deposits to one withdrawal. Who runs \
             first alternates by configuration (column *ran*). Times are ratios on this \
             emulator, not DynamoDB latencies; requests are counted on the wire.\n\n",
            self.deadline_seconds, self.retry
        );
        for hot in [false, true] {
            let _ = writeln!(
                out,
                "### {}\n\n| clients | system | ran | commands | commands/s | p50 | p99 | failed | attempts/command | requests/command | read + write units/command | $ per million commands | Eventfold ÷ anchor, commands/s |\n\
                 |---|---|---|---|---|---|---|---|---|---|---|---|---|",
                if hot {
                    "All clients on one hot account"
                } else {
                    "Each client on its own account (short streams)"
                }
            );
            for clients in [1, 8, 32] {
                let ours = self.run(EVENTFOLD, clients, hot);
                for system in [
                    EVENTFOLD,
                    UNRECORDED,
                    ANCHOR,
                    ANCHOR_RETRYING,
                    ANCHOR_AT_ONCE,
                ] {
                    let Some(run) = self.run(system, clients, hot) else {
                        continue;
                    };
                    let ratio = match (system, ours) {
                        (EVENTFOLD | UNRECORDED, _) | (_, None) => String::new(),
                        (_, Some(ours)) => format!("{:.2}×", ours.per_second / run.per_second),
                    };
                    let failed = if run.failed == 0 {
                        "0".to_owned()
                    } else {
                        format!(
                            "{} ({} conflicts{})",
                            percent(run.failed, run.commands),
                            run.conflicts,
                            run.first_error
                                .as_deref()
                                .filter(|_| run.conflicts < run.failed)
                                .map(|e| format!("; {e}"))
                                .unwrap_or_default()
                        )
                    };
                    let _ = writeln!(
                        out,
                        "| {clients} | {} | {} | {} | {:.1} | {} | {} | {failed} | {:.2} | {:.2} | {:.2} + {:.2} | {} | {ratio} |",
                        label(system),
                        if run.order == 1 { "first" } else { "after" },
                        run.commands,
                        run.per_second,
                        ms(run.p50_ms),
                        ms(run.p99_ms),
                        run.attempts_per_command,
                        run.requests_per_command,
                        run.read_units_per_command,
                        run.write_units_per_command,
                        price(run.read_units_per_command, run.write_units_per_command),
                    );
                }
            }
            out.push('\n');
        }
        out.push_str(
            "### A command's cost by stream length\n\nA deposit into an account whose stream \
             was seeded with BatchWriteItem (valid, chained events for Eventfold; items exactly \
             as dynamo-es commits them for the anchor). Requests, items and bytes are what the \
             command asked of DynamoDB (the emulator's response bodies); capacity units are \
             computed from the items' sizes by DynamoDB's rules (4 KB read units, strongly \
             consistent; 1 KB write units; twice in a transaction), priced on demand in \
             us-east-1 ($0.125 per million read units, $0.625 per million write units); latency \
             is the median of three (one at 100,000 events). With snapshots, the snapshot is \
             taken before each command, as the snapshot function keeps it within its interval.\n\n\
             | events | system | requests per command | items read | bytes read | events folded | p50 | outcome | read units | write units | $ per million commands |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for cost in &self.lengths {
            let requests = cost
                .counts
                .requests
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(" + ");
            let outcome = match (&cost.error, cost.succeeded) {
                (None, _) => "ok".to_owned(),
                (Some(error), 0) => format!("**fails**: {error}"),
                (Some(error), n) => format!("{n} of {} ok; {error}", cost.runs),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {requests} | {} | {} | {} | {} | {outcome} | {} | {} | {} |",
                cost.events,
                label(&cost.system),
                cost.counts.items_read,
                cost.counts.bytes_read,
                cost.events_folded
                    .map_or_else(|| "—".to_owned(), |n| n.to_string()),
                ms(cost.p50_ms),
                cost.counts.read_units,
                cost.counts.write_units,
                price(
                    cost.counts.read_units as f64,
                    cost.counts.write_units as f64
                ),
            );
        }
        out.push_str(
            "\n### Events per atomic command\n\nThe largest number of events one command may \
             append, found by bisection over fresh accounts, and what the next size up gets.\n\n\
             | system | largest | refusal above it |\n|---|---|---|\n",
        );
        for batch in &self.batch {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                label(&batch.system),
                batch.largest,
                batch.refusal.as_deref().unwrap_or("—")
            );
        }
        out.push('\n');
        out
    }

    /// The targets, each with this run's figure and whether it is met.
    pub fn targets(&self, lag_p99: Option<f64>) -> String {
        let mut rows = Vec::new();
        let mut row = |target: String, figure: String, met: bool| {
            rows.push(format!(
                "| {target} | {figure} | {} |",
                if met { "met" } else { "**missed**" }
            ));
        };
        for clients in [1, 8, 32] {
            if let (Some(ours), Some(anchor)) = (
                self.run(EVENTFOLD, clients, false),
                self.run(ANCHOR, clients, false),
            ) {
                let ratio = ours.per_second / anchor.per_second;
                row(
                    format!(
                        "≥ 1.3× the anchor's commands/s, p99 no worse: {}, own accounts",
                        writers(clients)
                    ),
                    format!(
                        "{ratio:.2}×, p99 {} against {}",
                        ms(ours.p99_ms),
                        ms(anchor.p99_ms)
                    ),
                    ratio >= 1.3 && ours.p99_ms <= anchor.p99_ms,
                );
            }
        }
        for clients in [8, 32] {
            if let (Some(ours), Some(anchor)) = (
                self.run(EVENTFOLD, clients, true),
                self.run(ANCHOR_RETRYING, clients, true),
            ) {
                let ratio = ours.per_second / anchor.per_second;
                row(
                    format!(
                        "≥ 1.5× the anchor's commands/s with our retry policy, no more failures: {}, one hot account",
                        writers(clients)
                    ),
                    format!(
                        "{ratio:.2}×, {} against {} failed",
                        ours.failed, anchor.failed
                    ),
                    ratio >= 1.5 && ours.failed <= anchor.failed,
                );
            }
        }
        for (system, what) in [
            (EVENTFOLD, "with the idempotency record"),
            (UNRECORDED, "without it"),
        ] {
            if let Some(run) = self.run(system, 1, false) {
                row(
                    format!("1 request per command with a kept state, {what}"),
                    format!(
                        "{:.2} (a client's key: 1, held by `make bench-check`)",
                        run.requests_per_command
                    ),
                    run.requests_per_command <= 1.0,
                );
            }
        }
        let units = |cost: &Cost| cost.counts.read_units + cost.counts.write_units;
        let per_length: Vec<(usize, u64, u64)> = self
            .kept_beside_anchor()
            .map(|(ours, anchor)| (anchor.events, units(ours), units(anchor)))
            .collect();
        if !per_length.is_empty() {
            row(
                "fewer capacity units per command than the anchor at every stream length (a kept state, with the record)".into(),
                per_length
                    .iter()
                    .map(|(events, ours, anchor)| format!("{events}: {ours} against {anchor}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                per_length.iter().all(|(_, ours, anchor)| ours < anchor),
            );
        }
        if let Some(ours) = self.run(EVENTFOLD, 8, true) {
            row(
                "0 % failed at 8 writers on one stream".into(),
                format!("{} of {} failed", ours.failed, ours.commands),
                ours.failed == 0,
            );
        }
        let snapshotted: Vec<u64> = self
            .lengths
            .iter()
            .filter(|c| c.system == "eventfold+snapshots")
            .map(|c| c.counts.requests.values().sum())
            .collect();
        if !snapshotted.is_empty() {
            let constant = snapshotted.windows(2).all(|w| w[0] == w[1]);
            row(
                "requests per command constant from 10 to 100,000 events with snapshots".into(),
                snapshotted
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                constant,
            );
        }
        if let Some(p99) = lag_p99 {
            row(
                "projection lag p99 < 1 s (the template's batching window)".into(),
                ms(p99),
                p99 < 1000.0,
            );
        }
        format!(
            "## Targets\n\n| target | this run | |\n|---|---|---|\n{}\n\n{}",
            rows.join("\n"),
            self.why_missed()
        )
    }

    /// What a short-stream command asks of the emulator on each side, from the 10-event costs.
    fn what_the_emulator_is_asked(&self) -> String {
        let at_ten = |system: &str| {
            self.lengths
                .iter()
                .find(|c| c.system == system && c.events == 10)
                .map(|c| &c.counts)
        };
        let (Some(bare), Some(kept), Some(anchor)) = (
            at_ten("eventfold-bare"),
            at_ten("eventfold+kept"),
            at_ten(ANCHOR),
        ) else {
            return String::new();
        };
        let per_item = |counts: &Counts| counts.bytes_read / counts.items_read.max(1);
        format!(
            " The rest is in what the emulator is asked: Eventfold's event items are larger \
             ({} against {} bytes per item read: a map with metadata and the chain, against \
             one binary attribute), and MiniStack answers every Query by scanning the whole \
             partition, so a kept state, which reads {} item where the anchor reads {}, saves \
             here little of what it saves on DynamoDB.",
            per_item(bare),
            per_item(anchor),
            kept.items_read,
            anchor.items_read
        )
    }

    /// Eventfold on a kept state beside the anchor, at each length where the anchor succeeds.
    fn kept_beside_anchor(&self) -> impl Iterator<Item = (&Cost, &Cost)> {
        self.lengths
            .iter()
            .filter(|c| c.system == ANCHOR && c.succeeded > 0)
            .filter_map(move |anchor| {
                let ours = self
                    .lengths
                    .iter()
                    .find(|c| c.system == "eventfold+kept" && c.events == anchor.events)?;
                Some((ours, anchor))
            })
    }

    /// For the comparison targets this run missed: the figures that say why.
    fn why_missed(&self) -> String {
        let mut notes = String::new();
        let own: Vec<(usize, f64, f64)> = [1, 8, 32]
            .into_iter()
            .filter_map(|clients| {
                let ours = self.run(EVENTFOLD, clients, false)?;
                let anchor = self.run(ANCHOR, clients, false)?;
                let bare = self.run(UNRECORDED, clients, false)?;
                Some((
                    clients,
                    ours.per_second / anchor.per_second,
                    bare.per_second / anchor.per_second,
                ))
            })
            .collect();
        if own.iter().any(|&(_, ratio, _)| ratio < 1.3) {
            let without = own
                .iter()
                .map(|&(clients, _, bare)| format!("{bare:.2}× at {}", writers(clients)))
                .collect::<Vec<_>>()
                .join(", ");
            let requests = [EVENTFOLD, ANCHOR].map(|system| {
                self.run(system, 1, false)
                    .map_or(0.0, |r| r.requests_per_command)
            });
            let _ = write!(
                notes,
                "**Own accounts, why missed.** At 1 client Eventfold makes {:.2} requests per \
                 command against the anchor's {:.2}. Its write carries a second item, the \
                 command's idempotency record, so that a client retrying after a lost answer \
                 gets the first outcome instead of a second deposit; the anchor keeps no such \
                 record. Without it, Eventfold's commands/s are {without} of the anchor's.{}\n\n",
                requests[0],
                requests[1],
                self.what_the_emulator_is_asked()
            );
        }
        let units = |cost: &Cost| (cost.counts.read_units, cost.counts.write_units);
        let costlier: Vec<String> = self
            .kept_beside_anchor()
            .filter_map(|(ours, anchor)| {
                let ((our_read, our_write), (read, write)) = (units(ours), units(anchor));
                (our_read + our_write >= read + write).then(|| {
                    format!(
                        "at {} events Eventfold's {our_read} read + {our_write} write units \
                         against the anchor's {read} + {write}",
                        anchor.events
                    )
                })
            })
            .collect();
        if let (false, Some(bare)) = (costlier.is_empty(), self.run(UNRECORDED, 1, false)) {
            let _ = write!(
                notes,
                "**Capacity units, why missed.** A command on a kept state reads nothing; what it \
                 pays is its write, and with the idempotency record that write is a transaction \
                 of two items, which DynamoDB bills twice each: {}. Without the record a command \
                 costs {:.2} read + {:.2} write units. The record is what makes a retried \
                 command exactly-once, so it stays; past a few dozen events the anchor's read of \
                 the whole stream costs more than it.\n\n",
                costlier.join("; "),
                bare.read_units_per_command,
                bare.write_units_per_command
            );
        }
        let hot: Vec<String> = [8, 32]
            .into_iter()
            .filter_map(|clients| {
                let ours = self.run(EVENTFOLD, clients, true)?;
                let policy = self.run(ANCHOR_RETRYING, clients, true)?;
                let at_once = self.run(ANCHOR_AT_ONCE, clients, true)?;
                let bare = self.run(ANCHOR, clients, true)?;
                if ours.per_second >= 1.5 * policy.per_second {
                    return None;
                }
                let per_attempt = |run: &Run| run.requests_per_command / run.attempts_per_command;
                Some(format!(
                    "at {}, Eventfold made {:.2} attempts of {:.2} requests each against the \
                     anchor's {:.2} of {:.2} under the same policy, for {:.2}× its commands/s; \
                     against the anchor retrying at once it ran at {:.2}×, with {} against {} \
                     failed; without a retry loop the anchor failed {}",
                    writers(clients),
                    ours.attempts_per_command,
                    per_attempt(ours),
                    policy.attempts_per_command,
                    per_attempt(policy),
                    ours.per_second / policy.per_second,
                    ours.per_second / at_once.per_second,
                    ours.failed,
                    at_once.failed,
                    percent(bare.failed, bare.commands),
                ))
            })
            .collect();
        if !hot.is_empty() {
            let _ = write!(
                notes,
                "**Hot account, why missed.** On one stream only one conditional write wins at a \
                 time, so the stream's throughput is bounded by how fast the store turns writes \
                 around; a retry policy decides only how many attempts are wasted on the way. \
                 The target's anchor is given Eventfold's own policy (full jitter in units of \
                 the last attempt), and with it the anchor keeps up: a 1.5× lead would have to \
                 come from the store, not from the loop. Eventfold's one further step, retrying \
                 at once with the event that beat it (returned by the refused write, ALL_OLD on \
                 the condition failure) instead of reading again, makes an attempt cheaper but \
                 races again sooner. In this run {}.\n\n",
                hot.join("; ")
            );
        }
        notes
    }

    /// Commands/s against writers, own accounts and one hot account, both systems.
    pub fn throughput_chart(&self) -> Chart {
        let line = |system: &str, hot: bool, name: String| Series {
            name,
            points: [1, 8, 32]
                .iter()
                .filter_map(|&c| self.run(system, c, hot))
                .map(|r| (r.clients as f64, r.per_second))
                .collect(),
        };
        Chart {
            title: "Throughput against concurrent writers".into(),
            x_label: "concurrent clients".into(),
            y_label: "commands/s (failed included)".into(),
            log_y: false,
            series: vec![
                line(EVENTFOLD, false, "Eventfold, own accounts".into()),
                line(ANCHOR, false, "dynamo-es, own accounts".into()),
                line(EVENTFOLD, true, "Eventfold, one hot account".into()),
                line(
                    ANCHOR_RETRYING,
                    true,
                    "dynamo-es + retry loop, one hot account".into(),
                ),
            ],
        }
    }

    fn by_length(&self, value: impl Fn(&Cost) -> f64) -> Vec<Series> {
        [
            "eventfold-bare",
            "eventfold+snapshots",
            "eventfold+kept",
            ANCHOR,
        ]
        .iter()
        .map(|system| Series {
            name: format!(
                "{}{}",
                label(system),
                if *system == ANCHOR {
                    " (successful commands only)"
                } else {
                    ""
                }
            ),
            points: self
                .lengths
                .iter()
                .filter(|c| c.system == *system && c.succeeded > 0)
                .map(|c| (c.events as f64, value(c)))
                .collect(),
        })
        .collect()
    }

    /// Requests per command against stream length.
    pub fn requests_chart(&self) -> Chart {
        Chart {
            title: "DynamoDB requests per command against stream length".into(),
            x_label: "events in the stream".into(),
            y_label: "requests per command".into(),
            log_y: true,
            series: self.by_length(|c| c.counts.requests.values().sum::<u64>() as f64),
        }
    }

    /// Latency against stream length.
    pub fn latency_chart(&self) -> Chart {
        Chart {
            title: "Command latency against stream length (emulator)".into(),
            x_label: "events in the stream".into(),
            y_label: "p50 latency, ms".into(),
            log_y: true,
            series: self.by_length(|c| c.p50_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: &str, clients: usize, hot: bool, per_second: f64, failed: usize) -> Run {
        Run {
            system: system.to_owned(),
            clients,
            hot,
            order: 1,
            commands: 100,
            failed,
            conflicts: failed,
            first_error: None,
            per_second,
            p50_ms: 10.0,
            p99_ms: 20.0,
            attempts_per_command: 2.0,
            requests_per_command: if system.starts_with("eventfold") {
                1.0
            } else {
                2.0
            },
            read_units_per_command: 0.0,
            write_units_per_command: 4.0,
        }
    }

    fn comparison(throughput: Vec<Run>) -> Comparison {
        Comparison {
            retry: "a policy".into(),
            deadline_seconds: 14,
            throughput,
            lengths: Vec::new(),
            batch: Vec::new(),
        }
    }

    #[test]
    fn a_missed_target_says_so_and_why() {
        let compared = comparison(vec![
            run(EVENTFOLD, 1, false, 90.0, 0),
            run(UNRECORDED, 1, false, 99.0, 0),
            run(ANCHOR, 1, false, 100.0, 0),
            run(EVENTFOLD, 8, true, 30.0, 0),
            run(ANCHOR, 8, true, 200.0, 80),
            run(ANCHOR_RETRYING, 8, true, 25.0, 0),
            run(ANCHOR_AT_ONCE, 8, true, 10.0, 3),
        ]);
        let targets = compared.targets(Some(400.0));
        assert!(
            targets.contains("1 client, own accounts | 0.90×"),
            "{targets}"
        );
        assert!(
            targets.contains("8 clients, one hot account | 1.20×"),
            "{targets}"
        );
        assert_eq!(targets.matches("**missed**").count(), 2, "{targets}");
        assert!(targets.contains("| 400.0 ms | met |"), "{targets}");
        assert!(targets.contains("0.99× at 1 client"), "{targets}");
        assert!(targets.contains("without a retry loop the anchor failed 80.0 %"));
        assert!(targets.contains("3.00×, with 0 against 3"), "{targets}");
    }

    #[test]
    fn met_targets_need_no_explanation() {
        let compared = comparison(vec![
            run(EVENTFOLD, 1, false, 140.0, 0),
            run(UNRECORDED, 1, false, 160.0, 0),
            run(ANCHOR, 1, false, 100.0, 0),
            run(EVENTFOLD, 8, true, 40.0, 0),
            run(ANCHOR, 8, true, 200.0, 80),
            run(ANCHOR_RETRYING, 8, true, 25.0, 0),
            run(ANCHOR_AT_ONCE, 8, true, 10.0, 3),
        ]);
        let targets = compared.targets(Some(1500.0));
        assert!(!targets.contains("why missed"), "{targets}");
        assert_eq!(targets.matches("**missed**").count(), 1, "{targets}");
    }

    #[test]
    fn capacity_units_are_held_against_the_anchor_at_each_length() {
        let cost = |system: &str, events, read_units, write_units| Cost {
            system: system.to_owned(),
            events,
            runs: 3,
            succeeded: 3,
            error: None,
            p50_ms: 1.0,
            counts: Counts {
                requests: BTreeMap::new(),
                items_read: 0,
                bytes_read: 0,
                read_units,
                write_units,
            },
            events_folded: None,
        };
        let mut compared = comparison(vec![run(UNRECORDED, 1, false, 100.0, 0)]);
        compared.lengths = vec![
            cost("eventfold+kept", 10, 0, 4),
            cost(ANCHOR, 10, 2, 2),
            cost("eventfold+kept", 1000, 0, 4),
            cost(ANCHOR, 1000, 102, 2),
        ];
        let targets = compared.targets(None);
        assert!(
            targets.contains("10: 4 against 4; 1000: 4 against 104 | **missed**"),
            "{targets}"
        );
        assert!(targets.contains("at 10 events Eventfold's 0 read + 4 write units"));
        assert!(!targets.contains("at 1000 events"), "{targets}");
        compared.lengths[0] = cost("eventfold+kept", 10, 0, 1);
        assert!(
            compared
                .targets(None)
                .contains("10: 1 against 4; 1000: 4 against 104 | met")
        );
    }
}
