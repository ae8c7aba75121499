//! Instruction counts of the CPU side of a command, for `make bench-check`: encoding an event's
//! item, decoding one, hashing the chain, planning an append and folding a stream, each counted
//! by valgrind's callgrind inside one function (`measured`), so the count is the operation's
//! alone and the same on a busy machine as on an idle one. The binary runs itself under
//! valgrind with `--cpu <operation>`; counts are of the build `make test` makes (unoptimized),
//! so they hold the code against itself, not against other libraries.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use eventfold::aws::item::{from_document, from_item};
use eventfold::chain::chain_hash;
use eventfold::encoding::{fold, to_new_event};
use eventfold::store::{AppendRequest, EventStore, MemoryStore, StoreSettings, StreamWrite};
use eventfold::testing::toy::{Counter, CounterEvent};
use eventfold::testing::{append_in_chunks, plan_append};
use eventfold::upcast::Upcasters;
use eventfold::{RecordedEvent, StreamId};

/// How many times each operation runs inside the measured function.
const REPEATS: u64 = 100;

/// The operations counted, by name; each is run `REPEATS` times (the fold: once, of
/// `FOLDED` events), and its count divided accordingly.
pub const OPERATIONS: [&str; 5] = [
    "encode an event item",
    "decode an event item",
    "hash one event onto the chain",
    "plan an append of one event",
    "fold 1,000 events",
];

const FOLDED: usize = 1_000;

/// The function whose instructions are counted: everything it calls, nothing else (the work
/// after the call keeps it from being a tail call, which callgrind would not see entered).
#[inline(never)]
fn measured(operation: &mut dyn FnMut()) -> bool {
    operation();
    black_box(true)
}

/// `n` recorded events of a counter, as the store writes them.
async fn recorded(n: usize) -> Result<Vec<RecordedEvent>, String> {
    let store = Arc::new(MemoryStore::new());
    let stream = StreamId::new("Counter", "cpu").map_err(|e| e.to_string())?;
    let events = (0..n).map(|i| {
        to_new_event(&CounterEvent::Added { n: i as u64 % 7 }).expect("a counter event encodes")
    });
    append_in_chunks(store.as_ref(), &stream, events)
        .await
        .map_err(|e| e.to_string())?;
    store.read_all(&stream, 1).await.map_err(|e| e.to_string())
}

/// Runs one operation inside `measured` (what `--cpu` does, under valgrind).
pub async fn run_one(operation: &str) -> Result<(), String> {
    let events = recorded(if operation == OPERATIONS[4] {
        FOLDED
    } else {
        2
    })
    .await?;
    let event = &events[0];
    let document = eventfold::stored::encode(event).map_err(|e| e.to_string())?;
    let item = from_document(&document).map_err(|e| e.to_string())?;
    let settings = StoreSettings::default();
    let now = chrono::Utc::now();
    let mut body: Box<dyn FnMut()> = match operation {
        "encode an event item" => Box::new(|| {
            for _ in 0..REPEATS {
                let document = eventfold::stored::encode(black_box(event)).expect("encodes");
                black_box(from_document(&document).expect("an item"));
            }
        }),
        "decode an event item" => {
            let upcasters = Upcasters::new();
            let mut items: Vec<_> = (0..REPEATS).map(|_| item.clone()).collect();
            Box::new(move || {
                for item in items.drain(..) {
                    let event: RecordedEvent = from_item(item, "event").expect("decodes");
                    black_box(upcasters.upcast(event).expect("upcasts"));
                }
            })
        }
        "hash one event onto the chain" => Box::new(|| {
            for _ in 0..REPEATS {
                black_box(chain_hash(
                    black_box(&events[0].chain),
                    black_box(&events[1]),
                ));
            }
        }),
        "plan an append of one event" => {
            let new = to_new_event(&CounterEvent::Added { n: 1 }).map_err(|e| e.to_string())?;
            let mut requests: Vec<_> = (0..REPEATS)
                .map(|_| AppendRequest {
                    writes: vec![StreamWrite::after(event.head(), vec![new.clone()])],
                    command: None,
                })
                .collect();
            let head = Some(event.head());
            Box::new(move || {
                for request in requests.drain(..) {
                    black_box(
                        plan_append(request, vec![head.clone()], &settings, now).expect("plans"),
                    );
                }
            })
        }
        "fold 1,000 events" => Box::new(|| {
            black_box(fold(Counter::default(), black_box(&events)).expect("folds"));
        }),
        other => return Err(format!("no operation {other:?}; one of {OPERATIONS:?}")),
    };
    black_box(measured(&mut body));
    Ok(())
}

/// Where valgrind is: `VALGRIND` (the Makefile installs it into .tools and says so), else the
/// one on the PATH.
fn valgrind() -> PathBuf {
    std::env::var_os("VALGRIND").map_or_else(|| PathBuf::from("valgrind"), PathBuf::from)
}

/// Counts every operation's instructions per run, each in a process of its own under
/// callgrind: this binary's, or with `make bench` (whose release build is stripped of the
/// symbol callgrind looks for) the unoptimized one beside it, which bench-check holds.
pub fn count() -> Result<BTreeMap<String, u64>, String> {
    let this = std::env::current_exe().map_err(|e| e.to_string())?;
    let debug = PathBuf::from("target/debug/eventfold-bench");
    let binary = if this.ends_with("release/eventfold-bench") && debug.exists() {
        debug
    } else {
        this
    };
    let out = std::env::temp_dir().join(format!("eventfold-callgrind-{}", std::process::id()));
    let mut counts = BTreeMap::new();
    for operation in OPERATIONS {
        let output = Command::new(valgrind())
            .arg("--tool=callgrind")
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=eventfold_bench::cpu::measured*")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&binary)
            .args(["--cpu", operation])
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}): make valgrind installs it (make test does)",
                    valgrind().display()
                )
            })?;
        let _ = std::fs::remove_file(&out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("{operation} under callgrind failed:\n{stderr}"));
        }
        let collected = stderr
            .lines()
            .find_map(|line| line.split_once("Collected :").map(|(_, n)| n.trim()))
            .and_then(|n| n.replace(',', "").parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "no instruction count from callgrind in {} (a stripped binary?):\n{stderr}",
                    binary.display()
                )
            })?;
        let runs = if operation == OPERATIONS[4] {
            1
        } else {
            REPEATS
        };
        counts.insert(operation.to_owned(), collected / runs);
    }
    Ok(counts)
}
