//! The anchor: cqrs-es 0.5 over dynamo-es 0.5, in its event-store mode (state rebuilt from the
//! events on every command; its snapshot and aggregate modes apply events twice in 0.5.0), with
//! the bank's own account logic: `handle` calls the bank's `decide`, `apply` its `evolve`, so
//! both systems run the same domain code.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use bank::domain::account::{Account, AccountCommand, AccountError, AccountEvent};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework, DomainEvent};
use dynamo_es::DynamoEventRepository;
use eventfold::aggregate::Aggregate as _;
use eventfold::command::RetryPolicy;
use serde::{Deserialize, Serialize};

/// The bank's account as a cqrs-es aggregate.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CqrsAccount(Account);

/// A bank command, or `n` deposits in one command (for the largest atomic batch).
#[derive(Clone, Debug)]
pub enum CqrsCommand {
    /// The bank's command.
    Bank(AccountCommand),
    /// `n` deposits of one unit.
    DepositMany(usize),
}

/// The bank's event, as cqrs-es wants it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CqrsEvent(pub AccountEvent);

impl DomainEvent for CqrsEvent {
    fn event_type(&self) -> String {
        eventfold::aggregate::DomainEvent::event_type(&self.0).to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl cqrs_es::Aggregate for CqrsAccount {
    const TYPE: &'static str = "account";
    type Command = CqrsCommand;
    type Event = CqrsEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CqrsCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        let events = match command {
            CqrsCommand::Bank(command) => self.0.decide(&command)?,
            CqrsCommand::DepositMany(n) => {
                let one = crate::amount(1);
                let mut state = self.0.clone();
                let mut events = Vec::with_capacity(n);
                for _ in 0..n {
                    let decided = state.decide(&AccountCommand::Deposit { amount: one })?;
                    state = decided.iter().fold(state, Account::evolve);
                    events.extend(decided);
                }
                events
            }
        };
        for event in events {
            sink.write(CqrsEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CqrsEvent) {
        self.0 = std::mem::take(&mut self.0).evolve(&event.0);
    }
}

/// The framework over its two tables.
pub type Framework =
    CqrsFramework<CqrsAccount, PersistedEventStore<DynamoEventRepository, CqrsAccount>>;

/// The anchor on `events` and `snapshots` (tables [`create_tables`] made).
pub fn framework(client: aws_sdk_dynamodb::Client, events: &str, snapshots: &str) -> Framework {
    let repository = DynamoEventRepository::new(client).with_tables(events, snapshots);
    CqrsFramework::new(PersistedEventStore::new_event_store(repository), vec![], ())
}

/// dynamo-es's tables, as its `db/create_tables.sh` makes them.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    events: &str,
    snapshots: &str,
) -> Result<(), String> {
    let definition = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    client
        .create_table()
        .table_name(events)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition("AggregateTypeAndId", ScalarAttributeType::S)?)
        .attribute_definitions(definition("AggregateIdSequence", ScalarAttributeType::N)?)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash)?)
        .key_schema(key("AggregateIdSequence", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| format!("CreateTable {events}: {e:?}"))?;
    client
        .create_table()
        .table_name(snapshots)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition("AggregateTypeAndId", ScalarAttributeType::S)?)
        .key_schema(key("AggregateTypeAndId", KeyType::Hash)?)
        .send()
        .await
        .map_err(|e| format!("CreateTable {snapshots}: {e:?}"))?;
    Ok(())
}

/// Writes `events` as aggregate `id`'s history with BatchWriteItem, item for item as
/// dynamo-es's commit writes them.
pub async fn bulk_load(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
    events: &[AccountEvent],
) -> Result<(), String> {
    use futures::StreamExt as _;
    let key = format!("{}:{id}", <CqrsAccount as cqrs_es::Aggregate>::TYPE);
    let items: Vec<WriteRequest> = events
        .iter()
        .zip(1u64..)
        .map(|(event, sequence)| {
            let event = CqrsEvent(event.clone());
            let payload = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
            PutRequest::builder()
                .item("AggregateTypeAndId", AttributeValue::S(key.clone()))
                .item(
                    "AggregateIdSequence",
                    AttributeValue::N(sequence.to_string()),
                )
                .item(
                    "AggregateType",
                    AttributeValue::S(<CqrsAccount as cqrs_es::Aggregate>::TYPE.to_owned()),
                )
                .item("AggregateId", AttributeValue::S(id.to_owned()))
                .item("EventVersion", AttributeValue::S(event.event_version()))
                .item("EventType", AttributeValue::S(event.event_type()))
                .item("Payload", AttributeValue::B(Blob::new(payload)))
                .item("Metadata", AttributeValue::B(Blob::new(b"{}".to_vec())))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let batches: Vec<Vec<WriteRequest>> = items.chunks(25).map(<[_]>::to_vec).collect();
    let results: Vec<Result<(), String>> = futures::stream::iter(batches)
        .map(|batch| async move {
            let mut batch = batch;
            for _ in 0..10 {
                if batch.is_empty() {
                    return Ok(());
                }
                let output = client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut batch))
                    .send()
                    .await
                    .map_err(|e| format!("BatchWriteItem: {e:?}"))?;
                batch = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(table))
                    .unwrap_or_default();
            }
            Err("BatchWriteItem left items unprocessed".to_owned())
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect()
}

/// What became of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// `AggregateConflict` (no retry, or still conflicting at the deadline).
    Conflict,
    /// Anything else.
    Other,
}

/// A command's outcome: the attempts it took, or why it failed and the error's text.
pub type Outcome = Result<u32, (Failure, String)>;

/// Runs a command, retrying conflicts when `retry` is given: the loop a user of cqrs-es has to
/// write, given Eventfold's policy (full jitter in units of the last attempt's duration,
/// doubling, capped) and the same deadline.
pub async fn execute(
    framework: &Framework,
    id: &str,
    command: &CqrsCommand,
    retry: Option<(&RetryPolicy, Instant)>,
) -> Outcome {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        match framework.execute(id, command.clone()).await {
            Ok(()) => return Ok(attempt),
            Err(AggregateError::AggregateConflict) => {
                let Some((policy, deadline)) = retry else {
                    return Err((Failure::Conflict, "AggregateConflict".to_owned()));
                };
                let round_trip = started.elapsed();
                let cap = round_trip
                    .max(policy.base_delay)
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
                    .min(policy.max_delay);
                let delay = cap.mul_f64(fastrand::f64());
                if attempt >= policy.max_attempts || Instant::now() + delay >= deadline {
                    return Err((Failure::Conflict, "AggregateConflict".to_owned()));
                }
                tokio::time::sleep(delay).await;
            }
            Err(other) => return Err((Failure::Other, short(&other.to_string()))),
        }
    }
}

/// The first line of an error, at most 160 characters.
pub fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(160).collect()
}

/// How long a command may take, on both sides: the command function's 15 s less a margin.
pub const DEADLINE: Duration = Duration::from_secs(14);
