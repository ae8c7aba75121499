//! How the command service meets a concurrent writer: the event that was in its way comes back
//! with the refusal, so the retry needs no read; refused again, it reads and backs off.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bank::domain::Name;
use bank::domain::account::{Account, AccountCommand};
use bank::domain::money::{Amount, Currency};
use eventfold::command::{CommandContext, CommandService, Target};
use eventfold::store::{
    AppendRequest, AppendResult, CommandRecord, EventStore, ItemPage, ReadRange,
};
use eventfold::{CommandId, MemoryStore, StoreError, StoreSettings, StreamHead, StreamId};

/// A memory store where, before each of the first `interruptions` appends, another writer
/// deposits into the same account; it counts the reads it serves.
#[derive(Debug)]
struct Interloper {
    inner: Arc<MemoryStore>,
    interruptions: AtomicUsize,
    reads: AtomicUsize,
}

#[async_trait]
impl EventStore for Interloper {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let left = self.interruptions.load(Ordering::SeqCst);
        if left > 0 {
            self.interruptions.store(left - 1, Ordering::SeqCst);
            let stream = request.writes[0].stream_id.clone();
            let other = CommandService::new(self.inner.clone());
            deposit(&other, &stream, 1000).await;
        }
        self.inner.append(request).await
    }

    async fn read_items(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<ItemPage, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_items(stream_id, range).await
    }

    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_head(stream_id).await
    }

    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.read_command(command_id).await
    }

    fn settings(&self) -> &StoreSettings {
        self.inner.settings()
    }
}

async fn deposit(service: &CommandService, stream: &StreamId, amount: i64) -> u32 {
    service
        .execute_one::<Account, _>(
            &CommandContext::default(),
            Target::new(stream.clone()),
            &AccountCommand::Deposit {
                amount: Amount::new(amount).unwrap(),
            },
            (),
        )
        .await
        .unwrap()
        .stats
        .attempts
}

async fn opened(interruptions: usize) -> (Arc<Interloper>, CommandService, StreamId) {
    let store = Arc::new(Interloper {
        inner: Arc::new(MemoryStore::new()),
        interruptions: AtomicUsize::new(0),
        reads: AtomicUsize::new(0),
    });
    let service = CommandService::new(store.clone()).with_state_cache(0);
    let stream = StreamId::parse("Account-c1").unwrap();
    service
        .execute_one::<Account, _>(
            &CommandContext::default(),
            Target::new(stream.clone()),
            &AccountCommand::Open {
                owner: Name::parse("Ada").unwrap(),
                currency: Currency::parse("EUR").unwrap(),
            },
            (),
        )
        .await
        .unwrap();
    store.interruptions.store(interruptions, Ordering::SeqCst);
    store.reads.store(0, Ordering::SeqCst);
    (store, service, stream)
}

async fn balance(store: &Interloper, stream: &StreamId) -> (i64, u64) {
    let loaded = CommandService::new(store.inner.clone())
        .load::<Account>(stream)
        .await
        .unwrap();
    (loaded.state.balance, loaded.version)
}

#[tokio::test]
async fn one_interruption_costs_a_write_and_no_read() {
    let (store, service, stream) = opened(1).await;
    let attempts = deposit(&service, &stream, 5).await;
    assert_eq!(attempts, 2, "refused once, then written");
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        1,
        "the load's read only: the refusal brought the event in the way"
    );
    assert_eq!(
        balance(&store, &stream).await,
        (1005, 3),
        "both deposits, once each"
    );
}

#[tokio::test]
async fn a_second_interruption_is_caught_up_with_a_read() {
    let (store, service, stream) = opened(2).await;
    let attempts = deposit(&service, &stream, 5).await;
    assert_eq!(attempts, 3);
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        2,
        "the load, then one catch-up after the second refusal"
    );
    assert_eq!(balance(&store, &stream).await, (2005, 4));
}

#[tokio::test]
async fn a_pinned_version_is_not_stepped_over() {
    let (store, service, stream) = opened(1).await;
    let pinned = service
        .execute_one::<Account, _>(
            &CommandContext::default(),
            Target::new(stream.clone()).if_match(Some(1)),
            &AccountCommand::Deposit {
                amount: Amount::new(5).unwrap(),
            },
            (),
        )
        .await;
    assert!(pinned.is_err(), "If-Match 1 while another writer moved it");
    assert_eq!(
        balance(&store, &stream).await,
        (1000, 2),
        "only the other deposit"
    );
}
