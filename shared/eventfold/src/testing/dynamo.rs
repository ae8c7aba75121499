//! Helpers on DynamoDB (feature `aws`): tables for tests, long streams seeded fast, and the
//! store conformance suite's harness on a real table.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};

use super::store_suite::{Edit, Harness};
use crate::aws::error::from_sdk;
use crate::aws::item::{self, Item};
use crate::error::StoreError;
use crate::store::plan::PreparedAppend;
use crate::store::{AppendRequest, EventStore};
use crate::version::ExpectedVersion;
use crate::{NewEvent, StreamId};

/// Writes `events` as a new stream straight into a DynamoDB events table with BatchWriteItem
/// (25 items a request, four requests at a time): the very items the store writes, chained and
/// numbered from 1, but without conditions or a command record. For seeding long streams in
/// benchmarks and tests only: it checks nothing about what the table already holds.
pub async fn bulk_load(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    stream_id: &StreamId,
    events: impl IntoIterator<Item = NewEvent>,
    settings: &crate::store::StoreSettings,
) -> Result<u64, StoreError> {
    use futures::StreamExt as _;
    let mut head: Option<crate::StreamHead> = None;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(99).collect();
        let version = head.as_ref().map_or(0, crate::StreamHead::version);
        let request =
            AppendRequest::single(stream_id.clone(), ExpectedVersion::Exact(version), chunk);
        let plan = PreparedAppend::new(request, settings)?.plan(
            vec![head.clone()],
            settings,
            crate::envelope::now(),
        )?;
        let Some(write) = plan.writes.into_iter().next() else {
            break;
        };
        head = write.events.last().map(crate::RecordedEvent::head);
        let items = write
            .documents
            .iter()
            .map(item::from_document)
            .collect::<Result<Vec<_>, _>>()?;
        let batches: Vec<Vec<Item>> = items.chunks(25).map(<[_]>::to_vec).collect();
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
    items: Vec<Item>,
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
    /// Whether the sort key is a string (S) rather than a number.
    pub text_range: bool,
}

impl TableShape<'static> {
    /// The events table: `stream_id` (S) and `version` (N), with a `NEW_IMAGE` stream.
    pub const EVENTS: Self = Self {
        hash_key: crate::names::events::STREAM_ID,
        range_key: Some(crate::names::events::VERSION),
        stream: true,
        text_range: false,
    };
    /// The commands table: `command_id` (S).
    pub const COMMANDS: Self = Self {
        hash_key: crate::names::commands::COMMAND_ID,
        range_key: None,
        stream: false,
        text_range: false,
    };
    /// A timers table: `pk` (S) and `sk` (S).
    pub const TIMERS: Self = Self {
        hash_key: "pk",
        range_key: Some("sk"),
        stream: false,
        text_range: true,
    };
    /// The snapshots table: `stream_id` (S).
    pub const SNAPSHOTS: Self = Self {
        hash_key: crate::names::snapshots::STREAM_ID,
        range_key: None,
        stream: false,
        text_range: false,
    };
}

impl<'a> TableShape<'a> {
    /// A read-model table keyed by `key` (S).
    pub fn read_model(key: &'a str) -> Self {
        Self {
            hash_key: key,
            range_key: None,
            stream: false,
            text_range: false,
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
            .attribute_definitions(definition(
                range,
                if shape.text_range {
                    ScalarAttributeType::S
                } else {
                    ScalarAttributeType::N
                },
            )?)
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

/// A DynamoDB event store and direct access to its events table.
#[derive(Debug)]
pub struct DynamoHarness {
    /// The store under test (built with [`super::store_suite::settings`]).
    pub store: Arc<dyn EventStore>,
    /// A client for the same table.
    pub client: aws_sdk_dynamodb::Client,
    /// The events table.
    pub table: String,
}

#[async_trait]
impl Harness for DynamoHarness {
    fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit) {
        let names = crate::names::events::STREAM_ID;
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(names, AttributeValue::S(stream_id.to_string()))
            .key(
                crate::names::events::VERSION,
                AttributeValue::N(version.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("event exists");
        let mut document = item::to_document(found).expect("an item is a document");
        edit(&mut document);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(
                item::from_document(&document).expect("a document is an item"),
            ))
            .send()
            .await
            .expect("raw put");
    }
}
