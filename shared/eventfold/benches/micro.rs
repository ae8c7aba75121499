//! Micro benchmarks of the hot paths of a command, with criterion (`cargo bench -p eventfold`,
//! part of `make bench`): an event's item encoded and decoded, its chain hash, and the fold of
//! 10,000 events into a state. Times depend on the machine; `make bench-check` holds what does
//! not (requests, items and bytes per command).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use eventfold::aggregate::Aggregate;
use eventfold::aws::item::{from_document, from_item};
use eventfold::chain::chain_hash;
use eventfold::encoding::fold;
use eventfold::store::{EventStore, MemoryStore};
use eventfold::testing::append_in_chunks;
use eventfold::upcast::Upcasters;
use eventfold::{NewEvent, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A wallet: what the fold benchmark folds (two event types, integer arithmetic).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Wallet {
    balance: i64,
    movements: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, eventfold::DomainEvent)]
#[serde(tag = "type", content = "data")]
enum WalletEvent {
    Credited { amount: i64, currency: String },
    Debited { amount: i64, currency: String },
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Wallet {
    const CATEGORY: &'static str = "Wallet";
    const STATE_SCHEMA: u32 = 1;
    type Event = WalletEvent;
    type Command = ();
    type Error = Never;

    fn decide(&self, (): &()) -> Result<Vec<WalletEvent>, Never> {
        Ok(Vec::new())
    }

    fn evolve(mut self, event: &WalletEvent) -> Self {
        match event {
            WalletEvent::Credited { amount, .. } => self.balance += amount,
            WalletEvent::Debited { amount, .. } => self.balance -= amount,
        }
        self.movements += 1;
        self
    }
}

/// `n` recorded events of one stream, as the store writes them (chained, numbered).
fn recorded(n: usize) -> Vec<RecordedEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = Arc::new(MemoryStore::new());
        let stream = StreamId::new("Wallet", "bench").expect("a stream id");
        let events = (0..n).map(|i| {
            let kind = if i % 4 == 3 { "Debited" } else { "Credited" };
            NewEvent::new(kind, json!({ "amount": 100 + i, "currency": "EUR" }))
        });
        append_in_chunks(store.as_ref(), &stream, events)
            .await
            .expect("appended");
        store.read_all(&stream, 1).await.expect("read")
    })
}

fn codec(c: &mut Criterion) {
    let event = recorded(1).remove(0);
    let document = eventfold::stored::encode(&event).expect("encodes");
    let item = from_document(&document).expect("an item");
    let upcasters = Upcasters::new();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode an event item", |b| {
        b.iter(|| {
            let document = eventfold::stored::encode(black_box(&event)).expect("encodes");
            from_document(&document).expect("an item")
        });
    });
    group.bench_function("decode an event item", |b| {
        b.iter_batched(
            || item.clone(),
            |item| {
                let event: RecordedEvent = from_item(item, "event").expect("decodes");
                upcasters.upcast(event).expect("upcasts")
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn chain(c: &mut Criterion) {
    let events = recorded(2);
    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hash one event onto the chain", |b| {
        b.iter(|| chain_hash(black_box(&events[0].chain), black_box(&events[1])));
    });
    group.finish();
}

fn folding(c: &mut Criterion) {
    let events = recorded(10_000);
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("fold 10,000 events", |b| {
        b.iter(|| fold(Wallet::default(), black_box(&events)).expect("folds"));
    });
    group.finish();
}

criterion_group!(benches, codec, chain, folding);
criterion_main!(benches);
