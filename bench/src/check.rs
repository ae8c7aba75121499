//! `make bench-check`: what does not depend on a noisy machine, held against a baseline. The
//! DynamoDB requests, round trips, items read, response bytes and capacity units of an append,
//! of a command on streams of 10, 1,000 and 10,000 events (without a snapshot, with one, and
//! with the state kept by the process, with and without a client's key), of a transfer, and
//! of the two commands that seal personal data (KMS requests counted with DynamoDB's), and of
//! indexing a batch into the global feed, on the wire against the emulator. A regression past the margins fails; an
//! improvement asks for the baseline to be updated (`make bench-baseline`), so it cannot
//! silently slip back. Two floors hold whatever the baseline says: a command on a kept state
//! is one request, and a cold load with a snapshot is one round trip before the write.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use std::sync::Arc;

use bank::api::{OpenAccount, RegisterUser, TransferMoney};
use bank::domain::account::{Account, AccountCommand};
use bank::domain::money::Amount;
use bank::service::BankingService;
use eventfold::aws::{KmsSubjectKeys, aws_sdk_dynamodb, aws_sdk_kms};
use eventfold::command::{CommandContext, CommandService};
use eventfold::identity::Principal;
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion};
use eventfold::{CommandId, EntityId, NewEvent, StreamId};
use serde::{Deserialize, Serialize};

use super::Bench;

/// Bytes may grow by this many percent (ids, timestamps and balances vary in length).
const BYTES_MARGIN_PERCENT: u64 = 10;

/// Instruction counts may grow by this many percent (hash seeds vary them by a few tenths).
const INSTRUCTIONS_MARGIN_PERCENT: u64 = 2;

/// What one operation asked of DynamoDB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Requests, retries included.
    pub requests: u64,
    /// Round trips of latency: requests sent together count once.
    #[serde(default)]
    pub round_trips: u64,
    /// Items returned by reads.
    pub items: u64,
    /// Response bytes.
    pub bytes: u64,
    /// Read capacity units (4 KB, strongly consistent), computed from item sizes.
    #[serde(default)]
    pub read_units: u64,
    /// Write capacity units (1 KB, twice in a transaction), computed from item sizes.
    #[serde(default)]
    pub write_units: u64,
}

/// The baseline file: a cost per named operation.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// What the figures mean and how they are held.
    pub note: String,
    /// Costs by operation.
    pub costs: BTreeMap<String, Cost>,
    /// Instructions per CPU operation, counted by callgrind (see [`super::cpu`]).
    #[serde(default)]
    pub instructions: BTreeMap<String, u64>,
}

impl Bench {
    async fn cost<T>(&self, operation: impl Future<Output = T>) -> (T, Cost) {
        self.counter.reset();
        let value = operation.await;
        let cost = Cost {
            requests: self.counter.total(),
            round_trips: self.counter.round_trips(),
            items: self.counter.items_read(),
            bytes: self.counter.bytes_read(),
            read_units: self.counter.read_units(),
            write_units: self.counter.write_units(),
        };
        (value, cost)
    }

    /// A deposit by the account's owner, through the bank's service: the ownership check
    /// looks at the state the command loads anyway, so it costs no request.
    async fn deposit(&self, service: &CommandService, stream: &StreamId) -> Result<(), String> {
        let context = CommandContext::default().with_principal(bank::testing::owner());
        self.deposit_in(service, stream, &context).await
    }

    /// A deposit under a client's key, as a retrying client sends it.
    async fn keyed_deposit(
        &self,
        service: &CommandService,
        stream: &StreamId,
    ) -> Result<(), String> {
        let key = CommandId::new(uuid::Uuid::new_v4().to_string()).map_err(|e| e.to_string())?;
        let context = CommandContext::new(key, "deposit 1").with_principal(bank::testing::owner());
        self.deposit_in(service, stream, &context).await
    }

    async fn deposit_in(
        &self,
        service: &CommandService,
        stream: &StreamId,
        context: &CommandContext,
    ) -> Result<(), String> {
        let account = EntityId::parse(stream.entity_id()).map_err(|e| e.to_string())?;
        BankingService::new(service.clone(), bank::testing::claim_key())
            .act_on_account(
                context,
                &account,
                None,
                &AccountCommand::Deposit {
                    amount: Amount::new(1).map_err(|e| e.to_string())?,
                },
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
pub(crate) async fn measure(bench: &Bench) -> Result<BTreeMap<String, Cost>, String> {
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
        let (outcome, cost) = bench.cost(bench.keyed_deposit(warm, &stream)).await;
        outcome?;
        costs.insert(
            format!("deposit, {length:>6} events, state kept, client's key"),
            cost,
        );
    }
    let from = bench.bulk_account(10).await?;
    let to = bench.bulk_account(10).await?;
    let transfer = TransferMoney {
        from: EntityId::parse(from.entity_id()).map_err(|e| e.to_string())?,
        to: EntityId::parse(to.entity_id()).map_err(|e| e.to_string())?,
        amount: Amount::new(1).map_err(|e| e.to_string())?,
    };
    let bank = BankingService::new(cold.clone(), bank::testing::claim_key());
    let owner = CommandContext::default().with_principal(bank::testing::owner());
    let (outcome, cost) = bench.cost(bank.transfer(&owner, &transfer, None)).await;
    outcome.map_err(|e| e.to_string())?;
    costs.insert("transfer between two 10-event accounts".to_owned(), cost);
    personal_data(bench, &cold, &mut costs).await?;
    feed_indexing(bench, &mut costs).await?;
    Ok(costs)
}

/// What indexing a batch of the events stream into the global feed costs the publisher (the
/// feed table counted; the events come from a memory store, so a gap's read would not count,
/// and there is none): requests per batch and partition, not per event.
async fn feed_indexing(bench: &Bench, costs: &mut BTreeMap<String, Cost>) -> Result<(), String> {
    use eventfold::feed::{DEFAULT_PARTITIONS, Indexer};
    use eventfold::store::{MemoryStore, ReadRange};
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&bench.sdk)
            .interceptor(bench.counter.clone())
            .build(),
    );
    let feed = Arc::new(eventfold::aws::DynamoFeed::new(
        dynamodb,
        bench.resources.table("FeedTable"),
        DEFAULT_PARTITIONS,
    ));
    let events = Arc::new(MemoryStore::new());
    let mut appended = Vec::new();
    let one = StreamId::new("Account", "busy").map_err(|e| e.to_string())?;
    for n in 0..300u64 {
        let (stream, version) = if n < 200 {
            let id = StreamId::new("Account", &format!("feed-{n}")).map_err(|e| e.to_string())?;
            (id, 0)
        } else {
            (one.clone(), n - 200)
        };
        let deposit = NewEvent::new("MoneyDeposited", serde_json::json!({"amount": 1}));
        events
            .append(AppendRequest::single(
                stream.clone(),
                ExpectedVersion::Exact(version),
                vec![deposit],
            ))
            .await
            .map_err(|e| e.to_string())?;
        let read = events
            .read_raw(&stream, ReadRange::from(version + 1))
            .await
            .map_err(|e| e.to_string())?;
        appended.extend(read.events);
    }
    let indexer = Indexer::new(feed, events);
    let batches = [
        ("index 100 events of 100 streams, a new indexer", 0..100),
        (
            "index 100 events of 100 streams, partitions' ends known",
            100..200,
        ),
        ("index 100 events of one stream", 200..300),
    ];
    for (name, range) in batches {
        let (outcome, cost) = bench.cost(indexer.index(&appended[range])).await;
        let report = outcome.map_err(|e| e.to_string())?;
        if report.indexed != 100 {
            return Err(format!("{name}: indexed {} events", report.indexed));
        }
        costs.insert(name.to_owned(), cost);
    }
    Ok(())
}

/// What sealing personal data costs a command, with subjects' keys as deployed (the keys
/// table and KMS, both counted): registering makes the subject's key (a read that finds none,
/// `GenerateDataKey`, a conditional write), opening an account reads and unwraps it (a read,
/// `Decrypt`) to seal the owner's name. Deposits, withdrawals and transfers seal nothing, as
/// their figures above show.
async fn personal_data(
    bench: &Bench,
    cold: &CommandService,
    costs: &mut BTreeMap<String, Cost>,
) -> Result<(), String> {
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&bench.sdk)
            .interceptor(bench.counter.clone())
            .build(),
    );
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&bench.sdk)
            .interceptor(bench.counter.clone())
            .build(),
    );
    let subject_key = bench
        .resources
        .kms_keys
        .get("SubjectKey")
        .ok_or("the template has no SubjectKey")?;
    let keys = Arc::new(KmsSubjectKeys::new(
        dynamodb,
        bench.resources.table("SubjectKeysTable"),
        kms,
        &subject_key.id,
    ));
    let bank = BankingService::new(
        cold.clone().with_subject_keys(keys),
        bank::testing::claim_key(),
    );
    let person = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let context = CommandContext::default().with_principal(Principal::jwt(
        "https://bench.example",
        &person,
        ["bank/write"],
    ));
    let register: RegisterUser = serde_json::from_value(serde_json::json!({
        "email": format!("{person}@example.com"),
        "name": "Ada Lovelace",
    }))
    .map_err(|e| e.to_string())?;
    let (outcome, cost) = bench.cost(bank.register_user(&context, &register)).await;
    outcome.map_err(|e| e.to_string())?;
    costs.insert(
        "register a user: a new subject key, email and name sealed".to_owned(),
        cost,
    );
    let open: OpenAccount =
        serde_json::from_value(serde_json::json!({"owner": "Ada Lovelace", "currency": "EUR"}))
            .map_err(|e| e.to_string())?;
    let (outcome, cost) = bench.cost(bank.open_account(&context, &open)).await;
    outcome.map_err(|e| e.to_string())?;
    costs.insert(
        "open an account: the owner sealed with their key".to_owned(),
        cost,
    );
    Ok(())
}

/// What each figure may do against the baseline: its name, its value, and the growth allowed
/// in percent (bytes and capacity units vary a little with ids, timestamps and balances).
fn figures(cost: &Cost) -> [(&'static str, u64, u64); 6] {
    [
        ("requests", cost.requests, 0),
        ("round trips", cost.round_trips, 0),
        ("items read", cost.items, 0),
        ("bytes read", cost.bytes, BYTES_MARGIN_PERCENT),
        ("read units", cost.read_units, BYTES_MARGIN_PERCENT),
        ("write units", cost.write_units, BYTES_MARGIN_PERCENT),
    ]
}

/// A figure against its baseline value, given the growth it may have in percent.
enum Judged {
    Worse,
    Better,
    Same,
}

fn judge(now: u64, then: u64, margin_percent: u64) -> Judged {
    if now > then + then * margin_percent / 100 {
        Judged::Worse
    } else if now * 100 < then * (100 - margin_percent) {
        Judged::Better
    } else {
        Judged::Same
    }
}

/// The floors held whatever the baseline says: a command on a kept state is one request (the
/// write), and a cold load with a snapshot is one round trip before it.
fn floors(name: &str, cost: &Cost) -> Vec<String> {
    let mut broken = Vec::new();
    if name.contains("state kept") && cost.requests != 1 {
        broken.push(format!("{} requests, not 1", cost.requests));
    }
    if name.ends_with("events, snapshot") && cost.round_trips != 2 {
        broken.push(format!(
            "{} round trips before the write, not 1",
            cost.round_trips.saturating_sub(1)
        ));
    }
    broken
}

/// Compares `measured` with `baseline`: the report, and whether it passes.
pub fn compare(baseline: &Baseline, measured: &BTreeMap<String, Cost>) -> (String, bool) {
    let mut report = String::new();
    let mut pass = true;
    let _ = write!(report, "{:<54}", "operation");
    for (label, _, _) in figures(&Cost::default()) {
        let _ = write!(report, " {label:>18}");
    }
    report.push('\n');
    for (name, now) in measured {
        let Some(then) = baseline.costs.get(name) else {
            let _ = writeln!(report, "{name:<54} not in the baseline");
            pass = false;
            continue;
        };
        let mut verdicts = floors(name, now);
        let mut better = false;
        let _ = write!(report, "{name:<54}");
        for ((label, now, margin), (_, then, _)) in figures(now).into_iter().zip(figures(then)) {
            match judge(now, then, margin) {
                Judged::Worse => verdicts.push(format!("more {label}")),
                Judged::Better => better = true,
                Judged::Same => {}
            }
            let _ = write!(report, " {:>18}", format!("{now} (was {then})"));
        }
        pass &= verdicts.is_empty();
        let _ = writeln!(
            report,
            "  {}",
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
            let _ = writeln!(report, "{name:<54} in the baseline, not measured");
            pass = false;
        }
    }
    (report, pass)
}

/// Compares instruction counts with the baseline's: the report, and whether it passes.
pub fn compare_instructions(
    baseline: &BTreeMap<String, u64>,
    measured: &BTreeMap<String, u64>,
) -> (String, bool) {
    let mut report = format!("{:<54} {:>30}\n", "CPU operation", "instructions");
    let mut pass = true;
    for (name, &now) in measured {
        let Some(&then) = baseline.get(name) else {
            let _ = writeln!(report, "{name:<54} not in the baseline");
            pass = false;
            continue;
        };
        let verdict = match judge(now, then, INSTRUCTIONS_MARGIN_PERCENT) {
            Judged::Worse => {
                pass = false;
                "REGRESSION: more instructions"
            }
            Judged::Better => "better: make bench-baseline to hold it",
            Judged::Same => "ok",
        };
        let _ = writeln!(
            report,
            "{name:<54} {:>30}  {verdict}",
            format!("{now} (was {then})")
        );
    }
    for name in baseline.keys().filter(|name| !measured.contains_key(*name)) {
        let _ = writeln!(report, "{name:<54} in the baseline, not measured");
        pass = false;
    }
    (report, pass)
}

/// Runs the check against the baseline at `path`, or with `update` rewrites it.
pub async fn run(path: &Path, update: bool) -> Result<(), String> {
    let bench = Bench::new().await?;
    let measured = measure(&bench).await?;
    let instructions = super::cpu::count()?;
    if update {
        let baseline = Baseline {
            note: format!(
                "Written by `make bench-baseline`, held by `make bench-check` (part of make \
                 test): DynamoDB requests, round trips, items read, response bytes and capacity \
                 units per operation, on the emulator. Requests, round trips and items may not \
                 grow; bytes and units may grow by {BYTES_MARGIN_PERCENT} %. A command on a kept \
                 state is held at 1 request and a cold load with a snapshot at 1 round trip \
                 before the write, whatever this file says. Instructions per CPU operation \
                 (callgrind, the unoptimized build) may grow by {INSTRUCTIONS_MARGIN_PERCENT} %."
            ),
            costs: measured,
            instructions,
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
    let (report, costs_pass) = compare(&baseline, &measured);
    super::say(&report);
    let (report, cpu_pass) = compare_instructions(&baseline.instructions, &instructions);
    super::say(&report);
    if costs_pass && cpu_pass {
        Ok(())
    } else {
        Err(format!(
            "read, request or CPU cost regressed against {}",
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
                ..Cost::default()
            },
        )])
    }

    #[test]
    fn more_requests_or_items_fail_and_bytes_have_a_margin() {
        let baseline = Baseline {
            note: String::new(),
            costs: costs(3, 2, 1000),
            instructions: BTreeMap::new(),
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

    #[test]
    fn the_floors_hold_whatever_the_baseline_says() {
        let kept = |requests| Cost {
            requests,
            round_trips: requests,
            ..Cost::default()
        };
        assert!(floors("deposit, 10 events, state kept, client's key", &kept(1)).is_empty());
        assert_eq!(floors("deposit, 10 events, state kept", &kept(2)).len(), 1);
        assert!(floors("deposit, 10 events, snapshot", &kept(2)).is_empty());
        assert_eq!(floors("deposit, 10 events, snapshot", &kept(3)).len(), 1);
        let baseline = Baseline {
            note: String::new(),
            costs: BTreeMap::from([("a, state kept".to_owned(), kept(2))]),
            instructions: BTreeMap::new(),
        };
        let measured = BTreeMap::from([("a, state kept".to_owned(), kept(2))]);
        assert!(
            !compare(&baseline, &measured).1,
            "a baseline cannot lower a floor"
        );
    }

    #[test]
    fn instructions_may_grow_by_the_margin_only() {
        let counts = |n| BTreeMap::from([("fold".to_owned(), n)]);
        assert!(compare_instructions(&counts(1000), &counts(1020)).1);
        assert!(!compare_instructions(&counts(1000), &counts(1021)).1);
        let (report, pass) = compare_instructions(&counts(1000), &counts(900));
        assert!(pass && report.contains("better"));
        assert!(!compare_instructions(&counts(1000), &BTreeMap::new()).1);
    }
}
