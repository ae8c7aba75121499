//! The testing kit (feature `testing`): given/when/then for aggregates, conformance suites for
//! event stores and read-model stores, and helpers to seed streams and create tables.
//!
//! ```toml
//! [dev-dependencies]
//! eventfold = { version = "…", features = ["testing"] }
//! ```

mod given;
pub mod read_model_suite;
pub mod store_suite;

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus,
};

pub use given::{Outcome, Scenario, given};

use crate::error::{StoreError, from_sdk};
use crate::store::{AppendRequest, EventStore, ExpectedVersion};
use crate::{NewEvent, StreamId};

/// Appends `events` to a new stream, 99 per transaction (DynamoDB's 100 items less the
/// command record): long streams for tests and benchmarks, written without a command service.
pub async fn append_in_chunks(
    store: &dyn EventStore,
    stream_id: &StreamId,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<u64, StoreError> {
    let mut version = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(99).collect();
        let count = chunk.len() as u64;
        store
            .append(AppendRequest::single(
                stream_id.clone(),
                ExpectedVersion::Exact(version),
                chunk,
            ))
            .await?;
        version += count;
    }
    Ok(version)
}

/// Writes `events` as a new stream straight into a DynamoDB events table with BatchWriteItem
/// (25 items a request, four requests at a time): the very items the store writes, chained and
/// numbered from 1, but without conditions or a command record. For seeding long streams in
/// benchmarks and tests only: it checks nothing about what the table already holds.
pub async fn bulk_load(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    stream_id: &StreamId,
    events: impl IntoIterator<Item = NewEvent>,
    settings: &crate::StoreSettings,
) -> Result<u64, StoreError> {
    use futures::StreamExt as _;
    let mut head: Option<crate::StreamHead> = None;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(99).collect();
        let version = head.as_ref().map_or(0, crate::StreamHead::version);
        let request =
            AppendRequest::single(stream_id.clone(), ExpectedVersion::Exact(version), chunk);
        let plan = crate::store::plan::build(
            &request,
            vec![head.clone()],
            settings,
            crate::envelope::now(),
        )?;
        let Some(write) = plan.writes.into_iter().next() else {
            break;
        };
        head = write.events.last().map(crate::RecordedEvent::head);
        let batches: Vec<Vec<_>> = write.items.chunks(25).map(<[_]>::to_vec).collect();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(batches)
            .map(|items| batch_put(client, table, items))
            .buffer_unordered(4)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    Ok(head.map_or(0, |h| h.version()))
}

/// One BatchWriteItem of puts, sending again whatever DynamoDB leaves unprocessed.
async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<crate::codec::Item>,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let mut requests = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| StoreError::misuse(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for attempt in 0u32..10 {
        if requests.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
        }
        let output = client
            .batch_write_item()
            .request_items(table, std::mem::take(&mut requests))
            .send()
            .await
            .map_err(|e| from_sdk("BatchWriteItem", table, e))?;
        requests = output
            .unprocessed_items
            .and_then(|mut left| left.remove(table))
            .unwrap_or_default();
    }
    Err(StoreError::misuse(format!(
        "BatchWriteItem to {table} left items unprocessed ten times"
    )))
}

/// The shape of a table to create for a test.
#[derive(Clone, Copy, Debug)]
pub struct TableShape<'a> {
    /// Partition key (S).
    pub hash_key: &'a str,
    /// Sort key (N), if any.
    pub range_key: Option<&'a str>,
    /// Whether DynamoDB Streams is on (`NEW_IMAGE`).
    pub stream: bool,
}

impl TableShape<'static> {
    /// The events table: `stream_id` (S) and `version` (N), with a `NEW_IMAGE` stream.
    pub const EVENTS: Self = Self {
        hash_key: crate::names::events::STREAM_ID,
        range_key: Some(crate::names::events::VERSION),
        stream: true,
    };
    /// The commands table: `command_id` (S).
    pub const COMMANDS: Self = Self {
        hash_key: crate::names::commands::COMMAND_ID,
        range_key: None,
        stream: false,
    };
    /// The snapshots table: `stream_id` (S).
    pub const SNAPSHOTS: Self = Self {
        hash_key: crate::names::snapshots::STREAM_ID,
        range_key: None,
        stream: false,
    };
}

impl<'a> TableShape<'a> {
    /// A read-model table keyed by `key` (S).
    pub fn read_model(key: &'a str) -> Self {
        Self {
            hash_key: key,
            range_key: None,
            stream: false,
        }
    }
}

/// Creates a pay-per-request table (on an emulator, usually) and waits until it is active.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    shape: TableShape<'_>,
) -> Result<(), StoreError> {
    let definition = |attribute: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(kind)
            .build()
            .map_err(|e| StoreError::misuse(e.to_string()))
    };
    let key = |attribute: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::misuse(e.to_string()))
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition(shape.hash_key, ScalarAttributeType::S)?)
        .key_schema(key(shape.hash_key, KeyType::Hash)?);
    if let Some(range) = shape.range_key {
        request = request
            .attribute_definitions(definition(range, ScalarAttributeType::N)?)
            .key_schema(key(range, KeyType::Range)?);
    }
    if shape.stream {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| StoreError::misuse(e.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| from_sdk("CreateTable", name, e))?;
    for _ in 0..100 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeTable", name, e))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StoreError::misuse(format!("{name} did not become active")))
}

/// Defines one `#[tokio::test]` per case of the event store conformance suite, each on the
/// harness the expression makes (a fresh one per test).
///
/// ```text
/// eventfold::event_store_conformance!(eventfold::testing::store_suite::MemoryHarness::new());
/// ```
#[macro_export]
macro_rules! event_store_conformance {
    ($harness:expr) => {
        $crate::event_store_conformance!(@cases $harness;
            append_then_read_back expected_versions append_after_head multi_stream_atomicity
            transaction_item_limits invalid_appends_write_nothing large_stream_reads_every_page
            paged_reads as_of_reads idempotent_commands upcasting_on_read
            integrity_chain_detects_tampering snapshot_due_marking);
    };
    (@cases $harness:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $harness;
                $crate::testing::store_suite::$case(&harness).await;
            }
        )*
    };
}

/// Defines one `#[tokio::test]` per case of the read-model conformance suite, each on the
/// `Arc<dyn ReadModelStore>` the expression makes (a fresh, empty store per test: one case
/// clears its store).
#[macro_export]
macro_rules! read_model_conformance {
    ($store:expr) => {
        $crate::read_model_conformance!(@cases $store;
            saves_are_conditional_on_the_checkpoint checkpoints_without_rows
            counters_move_with_the_row misuse_is_refused_before_writing values_round_trip
            rows_and_clear an_unused_first_event_moves_only_the_checkpoint duplicates_and_gaps
            unfollowed_streams_write_nothing);
    };
    (@cases $store:expr; $($case:ident)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::projection::ReadModelStore> = $store;
                $crate::testing::read_model_suite::$case(store).await;
            }
        )*
    };
}
