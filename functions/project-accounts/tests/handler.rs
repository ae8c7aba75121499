//! Projector handler tests with DynamoDB Streams fixture events: duplicates, out-of-order
//! delivery, gaps, non-INSERT records, unknown event types and a poison record mid-batch.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::sync::Arc;

use bank::domain::Name;
use bank::domain::account::AccountEvent;
use bank::domain::money::{Amount, Currency};
use bank::read_model::{AccountRow, account_row, expected_row, totals};
use eventfold::encoding::to_new_event;
use eventfold::lambda::aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use eventfold::lambda::consumers::ProjectorFunction;
use eventfold::lambda::lambda_runtime::{Context, LambdaEvent};
use eventfold::projection::MemoryReadModel;
use eventfold::store::{AppendRequest, EventStore, ExpectedVersion, MemoryStore};
use eventfold::testing::records::{Change, stream_batch, stream_record};
use eventfold::{EntityId, NewEvent, RecordedEvent, StreamId};
use serde_json::json;

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn record(event: &RecordedEvent, sequence: u64, change: Change) -> EventRecord {
    stream_record(event, sequence, change)
}

fn batch(records: Vec<EventRecord>) -> DynamoDbEvent {
    stream_batch(records)
}

struct Setup {
    app: ProjectorFunction,
    store: Arc<MemoryStore>,
    read_model: Arc<MemoryReadModel>,
}

impl Setup {
    async fn account(&self, id: &str) -> Option<AccountRow> {
        account_row(self.read_model.as_ref(), id).await.unwrap()
    }

    async fn totals(&self) -> bank::read_model::Totals {
        totals(self.read_model.as_ref()).await.unwrap()
    }
}

fn amount(units: i64) -> Amount {
    Amount::new(units).unwrap()
}

fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let read_model = Arc::new(MemoryReadModel::new(bank::names::accounts::ACCOUNT_ID));
    Setup {
        app: ProjectorFunction::new(vec![Arc::new(bank::accounts_projector(
            read_model.clone(),
            store.clone(),
        ))]),
        store,
        read_model,
    }
}

async fn append(store: &MemoryStore, id: &str, events: &[AccountEvent]) -> Vec<RecordedEvent> {
    let stream = StreamId::parse(&format!("Account-{id}")).unwrap();
    let new_events: Vec<NewEvent> = events.iter().map(|e| to_new_event(e).unwrap()).collect();
    store
        .append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Any,
            new_events,
        ))
        .await
        .unwrap();
    store.read_all(&stream, 1).await.unwrap()
}

fn history() -> Vec<AccountEvent> {
    vec![
        AccountEvent::AccountOpened {
            owner: eventfold::personal::Personal::new("ada", Name::parse("Ada").unwrap()),
            currency: eur(),
            owner_id: None,
        },
        AccountEvent::MoneyDeposited {
            amount: amount(700),
            currency: eur(),
        },
        AccountEvent::MoneyWithdrawn {
            amount: amount(200),
            currency: eur(),
        },
        AccountEvent::TransferSent {
            transfer_id: EntityId::parse("t").unwrap(),
            to: EntityId::parse("b").unwrap(),
            amount: amount(100),
            currency: eur(),
        },
    ]
}

async fn invoke(app: &ProjectorFunction, event: DynamoDbEvent) -> Vec<String> {
    let response = app
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect()
}

#[tokio::test]
async fn applies_a_stream_in_order_and_keeps_totals() {
    let s = setup();
    let events = append(&s.store, "a", &history()).await;
    let records = events
        .iter()
        .enumerate()
        .map(|(i, e)| record(e, i as u64 + 1, Change::Insert))
        .collect();
    assert!(invoke(&s.app, batch(records)).await.is_empty());
    assert_eq!(s.account("a").await, expected_row(&events));
    let totals = s.totals().await;
    assert_eq!(
        (
            totals.accounts_open,
            totals.held["EUR"],
            totals.events_applied
        ),
        (1, 400, 4)
    );
}

#[tokio::test]
async fn duplicates_and_replays_change_nothing() {
    let s = setup();
    let events = append(&s.store, "a", &history()).await;
    let records: Vec<EventRecord> = events
        .iter()
        .enumerate()
        .map(|(i, e)| record(e, i as u64 + 1, Change::Insert))
        .collect();
    invoke(&s.app, batch(records.clone())).await;
    let mut doubled = records.clone();
    doubled.extend(records);
    assert!(invoke(&s.app, batch(doubled)).await.is_empty());
    assert_eq!(s.account("a").await, expected_row(&events));
    assert_eq!(s.totals().await.held["EUR"], 400, "money counted once");
}

#[tokio::test]
async fn out_of_order_delivery_and_gaps_are_repaired_from_the_store() {
    let s = setup();
    let events = append(&s.store, "a", &history()).await;
    // Version 4 first: a gap (nothing applied yet) repaired by reading 1..3 from the store;
    // then 2 and 1 arrive late and are duplicates.
    let records = vec![
        record(&events[3], 4, Change::Insert),
        record(&events[1], 2, Change::Insert),
        record(&events[0], 1, Change::Insert),
    ];
    assert!(invoke(&s.app, batch(records)).await.is_empty());
    assert_eq!(s.account("a").await, expected_row(&events));
    assert_eq!(s.totals().await.events_applied, 4);
}

#[tokio::test]
async fn non_inserts_and_unknown_types_are_skipped() {
    let s = setup();
    append(&s.store, "a", &history()[..2]).await;
    let stream = StreamId::parse("Account-a").unwrap();
    s.store
        .append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Exact(2),
            vec![NewEvent::new("AccountAudited", json!({"by": "x"}))],
        ))
        .await
        .unwrap();
    let events = s.store.read_all(&stream, 1).await.unwrap();
    let user = StreamId::parse("User-u").unwrap();
    s.store
        .append(AppendRequest::single(
            user.clone(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "UserRegistered",
                json!({"email": "a@b.co", "name": "A"}),
            )],
        ))
        .await
        .unwrap();
    let user_event = s.store.read_all(&user, 1).await.unwrap().remove(0);
    let records = vec![
        record(&events[0], 1, Change::Insert),
        record(&events[0], 2, Change::Modify),
        record(&events[1], 3, Change::Remove),
        record(&events[1], 4, Change::Insert),
        record(&user_event, 5, Change::Insert),
        record(&events[2], 6, Change::Insert),
    ];
    let report = s.app.process(&batch(records).records).await;
    assert_eq!(report.first_failure, None);
    assert_eq!((report.applied, report.ignored, report.skipped), (2, 2, 2));
    let row = s.account("a").await.unwrap();
    assert_eq!(
        (row.view.balance, row.version),
        (700, 3),
        "the unknown event moves the checkpoint only"
    );
}

#[tokio::test]
async fn a_poison_record_fails_from_its_position() {
    let s = setup();
    let a = append(&s.store, "a", &history()).await;
    let b = append(&s.store, "b", &history()[..2]).await;
    // Account b's second event does not decode as the type it claims.
    let mut poison = b[1].clone();
    poison.payload = json!({"amount": "lots"});
    let records = vec![
        record(&a[0], 10, Change::Insert),
        record(&b[0], 11, Change::Insert),
        record(&a[1], 12, Change::Insert),
        record(&poison, 13, Change::Insert),
        record(&a[2], 14, Change::Insert),
        record(&a[3], 15, Change::Insert),
    ];
    let failures = invoke(&s.app, batch(records)).await;
    assert_eq!(
        failures,
        vec![format!("{:021}", 13)],
        "the earliest failed record"
    );
    assert_eq!(
        s.account("a").await,
        expected_row(&a),
        "other streams go on"
    );
    assert_eq!(s.account("b").await.unwrap().version, 1);
    // A record that is not even an event fails at its own position.
    let undecodable = json!({
        "eventID": "x", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
        "dynamodb": {"ApproximateCreationDateTime": 1.0, "Keys": {}, "NewImage": {"stream_id": {"S": "Account-c"}}, "SequenceNumber": "000000000000000000007", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"},
    });
    let undecodable: EventRecord = serde_json::from_value(undecodable).unwrap();
    let failures = invoke(
        &s.app,
        batch(vec![record(&b[0], 6, Change::Insert), undecodable]),
    )
    .await;
    assert_eq!(failures, vec!["000000000000000000007".to_owned()]);
}
