//! `make bench-check`: what does not depend on a noisy machine, held against a baseline. The
//! DynamoDB requests, items read and response bytes of an append, of a command on streams of
//! 10, 1,000 and 10,000 events (without a snapshot, with one, and with the state kept by the
//! process), and of a transfer, counted on the wire against the emulator. A regression past the margins fails; an improvement asks for
//! the baseline to be updated (`make bench-baseline`), so it cannot silently slip back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bank::domain::account::{Account, AccountCommand};
use bank::domain::money::Amount;
use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion};
use eventfold::{EntityId, NewEvent, StreamId};
use serde::{Deserialize, Serialize};

use super::Bench;

/// Bytes may grow by this many percent (ids, timestamps and balances vary in length).
const BYTES_MARGIN_PERCENT: u64 = 10;

/// What one operation asked of DynamoDB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Requests, retries included.
    pub requests: u64,
    /// Items returned by reads.
    pub items: u64,
    /// Response bytes.
    pub bytes: u64,
}

/// The baseline file: a cost per named operation.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// What the figures mean and how they are held.
    pub note: String,
    /// Costs by operation.
    pub costs: BTreeMap<String, Cost>,
}

impl Bench {
    async fn cost<T>(&self, operation: impl Future<Output = T>) -> (T, Cost) {
        self.counter.reset();
        let value = operation.await;
        let cost = Cost {
            requests: self.counter.total(),
            items: self.counter.items_read(),
            bytes: self.counter.bytes_read(),
        };
        (value, cost)
    }

    async fn deposit(&self, service: &CommandService, stream: &StreamId) -> Result<(), String> {
        service
            .execute_one::<Account, _>(
                &CommandContext::default(),
                Target::new(stream.clone()),
                &AccountCommand::Deposit {
                    amount: Amount::new(1).map_err(|e| e.to_string())?,
                },
                (),
            )
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// An account stream of `events` events, bulk-loaded.
    async fn bulk_account(&self, events: usize) -> Result<StreamId, String> {
        bank::testing::bulk_load_account(
            &self.clients.dynamodb,
            self.resources.table("EventsTable"),
            &EntityId::generate(),
            events,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// Measures every operation of the check.
async fn measure(bench: &Bench) -> Result<BTreeMap<String, Cost>, String> {
    let mut costs = BTreeMap::new();
    let stream = StreamId::new("Check", &uuid::Uuid::new_v4().simple().to_string())
        .map_err(|e| e.to_string())?;
    let (outcome, cost) = bench
        .cost(bench.store.append(AppendRequest::single(
            stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Tick", serde_json::json!({}))],
        )))
        .await;
    outcome.map_err(|e| e.to_string())?;
    costs.insert("append one event to a new stream".to_owned(), cost);
    // A process that has not seen the stream (loads from the stores), and one that has.
    let cold = bench.commands.clone().keep_states(0);
    let warm = &bench.commands;
    for length in [10usize, 1_000, 10_000] {
        let stream = bench.bulk_account(length).await?;
        let (outcome, cost) = bench.cost(bench.deposit(&cold, &stream)).await;
        outcome?;
        costs.insert(format!("deposit, {length:>6} events, no snapshot"), cost);
        eventfold::snapshot::Snapshotter::new(cold.clone())
            .map_err(|e| e.to_string())?
            .register::<Account>()
            .snapshot(&stream)
            .await
            .map_err(|e| e.to_string())?;
        let (outcome, cost) = bench.cost(bench.deposit(&cold, &stream)).await;
        outcome?;
        costs.insert(format!("deposit, {length:>6} events, snapshot"), cost);
        warm.load::<Account>(&stream)
            .await
            .map_err(|e| e.to_string())?;
        let (outcome, cost) = bench.cost(bench.deposit(warm, &stream)).await;
        outcome?;
        costs.insert(format!("deposit, {length:>6} events, state kept"), cost);
    }
    let from = bench.bulk_account(10).await?;
    let to = bench.bulk_account(10).await?;
    let (outcome, cost) = bench.cost(super::transfer(&cold, &from, &to)).await;
    outcome?;
    costs.insert("transfer between two 10-event accounts".to_owned(), cost);
    Ok(costs)
}

/// Compares `measured` with `baseline`: the report, and whether it passes.
pub fn compare(baseline: &Baseline, measured: &BTreeMap<String, Cost>) -> (String, bool) {
    let mut report = String::new();
    let mut pass = true;
    let _ = writeln!(
        report,
        "{:<45} {:>18} {:>18} {:>24}",
        "operation", "requests", "items read", "bytes read"
    );
    for (name, now) in measured {
        let Some(then) = baseline.costs.get(name) else {
            let _ = writeln!(report, "{name:<45} not in the baseline");
            pass = false;
            continue;
        };
        let bytes_limit = (then.bytes * (100 + BYTES_MARGIN_PERCENT)).div_ceil(100);
        let mut verdicts = Vec::new();
        if now.requests > then.requests {
            verdicts.push("more requests");
        }
        if now.items > then.items {
            verdicts.push("more items");
        }
        if now.bytes > bytes_limit {
            verdicts.push("more bytes");
        }
        let better = now.requests < then.requests
            || now.items < then.items
            || now.bytes * 100 < then.bytes * (100 - BYTES_MARGIN_PERCENT);
        pass &= verdicts.is_empty();
        let _ = writeln!(
            report,
            "{name:<45} {:>18} {:>18} {:>24}  {}",
            format!("{} (was {})", now.requests, then.requests),
            format!("{} (was {})", now.items, then.items),
            format!("{} (was {})", now.bytes, then.bytes),
            if !verdicts.is_empty() {
                format!("REGRESSION: {}", verdicts.join(", "))
            } else if better {
                "better: make bench-baseline to hold it".to_owned()
            } else {
                "ok".to_owned()
            }
        );
    }
    for name in baseline.costs.keys() {
        if !measured.contains_key(name) {
            let _ = writeln!(report, "{name:<45} in the baseline, not measured");
            pass = false;
        }
    }
    (report, pass)
}

/// Runs the check against the baseline at `path`, or with `update` rewrites it.
pub async fn run(path: &Path, update: bool) -> Result<(), String> {
    let bench = Bench::new().await?;
    let measured = measure(&bench).await?;
    if update {
        let baseline = Baseline {
            note: format!(
                "Written by `make bench-baseline`, held by `make bench-check` (part of make \
                 test): DynamoDB requests, items read and response bytes per operation, on the \
                 emulator. Requests and items may not grow; bytes may grow by {BYTES_MARGIN_PERCENT} %."
            ),
            costs: measured,
        };
        let json = serde_json::to_string_pretty(&baseline).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        super::say(&format!("baseline written to {}", path.display()));
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let baseline: Baseline =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let (report, pass) = compare(&baseline, &measured);
    super::say(&report);
    if pass {
        Ok(())
    } else {
        Err(format!(
            "read or request cost regressed against {}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(requests: u64, items: u64, bytes: u64) -> BTreeMap<String, Cost> {
        BTreeMap::from([(
            "op".to_owned(),
            Cost {
                requests,
                items,
                bytes,
            },
        )])
    }

    #[test]
    fn more_requests_or_items_fail_and_bytes_have_a_margin() {
        let baseline = Baseline {
            note: String::new(),
            costs: costs(3, 2, 1000),
        };
        assert!(compare(&baseline, &costs(3, 2, 1000)).1);
        assert!(compare(&baseline, &costs(3, 2, 1100)).1, "within 10 %");
        assert!(!compare(&baseline, &costs(3, 2, 1101)).1);
        assert!(!compare(&baseline, &costs(4, 2, 1000)).1);
        assert!(!compare(&baseline, &costs(3, 3, 1000)).1);
        let (report, pass) = compare(&baseline, &costs(2, 2, 1000));
        assert!(pass && report.contains("better"));
        assert!(
            !compare(&baseline, &BTreeMap::new()).1,
            "a missing row fails"
        );
    }
}
