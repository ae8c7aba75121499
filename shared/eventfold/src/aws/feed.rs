//! The feed in a DynamoDB table: a partition's pages under `P#<partition>` sorted by their first
//! position, each stream's mark under `M#<stream>`.
//!
//! A page is put only where no page starts (`attribute_not_exists`), a mark only where it was
//! (`version = :from`, or absent for a new stream), all in one transaction: two writers can
//! never take the same positions or index an event twice.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{from_sdk, from_sdk_write};
use super::item::{Item, from_item, to_item};
use crate::error::StoreError;
use crate::feed::{
    Checkpoint, FeedStore, MAX_PARTITIONS, PAGE_EVENTS, Page, PageWrite, Parked, Span, Written,
};
use crate::ids::StreamId;
use crate::names::feed::{
    CHECKPOINT_PREFIX, CONSUMERS, END, LEASE_UNTIL, MARK_PREFIX, OWNER, PAGE_PREFIX, PARKED,
    PARKED_PREFIX, PARKERS_KEY, PARTITIONS, PARTITIONS_KEY, PK, POSITION, SK, VERSION,
};

/// Keys one `BatchGetItem` reads at most.
const BATCH_GET: usize = 100;
/// Times unprocessed keys are asked for again before the read fails.
const BATCH_GET_TRIES: usize = 10;

/// A page as its item holds it.
#[derive(Serialize, Deserialize)]
struct PageItem {
    pk: String,
    sk: u64,
    end: u64,
    spans: Vec<Span>,
    #[serde(with = "crate::envelope::timestamp_format")]
    indexed_at: DateTime<Utc>,
}

/// The feed in a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoFeed {
    client: Client,
    table: String,
    partitions: u32,
}

fn page_key(partition: u32) -> String {
    format!("{PAGE_PREFIX}{partition}")
}

fn mark_key(stream_id: &StreamId) -> String {
    format!("{MARK_PREFIX}{stream_id}")
}

fn checkpoint_key(consumer: &str, partition: u32) -> Item {
    Item::from([
        (
            PK.to_owned(),
            AttributeValue::S(format!("{CHECKPOINT_PREFIX}{consumer}")),
        ),
        (SK.to_owned(), AttributeValue::N(partition.to_string())),
    ])
}

fn parkers_key() -> Item {
    Item::from([
        (PK.to_owned(), AttributeValue::S(PARKERS_KEY.to_owned())),
        (SK.to_owned(), AttributeValue::N("0".into())),
    ])
}

fn parked_key(consumer: &str) -> Item {
    Item::from([
        (
            PK.to_owned(),
            AttributeValue::S(format!("{PARKED_PREFIX}{consumer}")),
        ),
        (SK.to_owned(), AttributeValue::N("0".into())),
    ])
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

impl DynamoFeed {
    /// The feed in `table`, of `partitions` partitions (1 to [`MAX_PARTITIONS`]).
    pub fn new(client: Client, table: impl Into<String>, partitions: u32) -> Self {
        Self {
            client,
            table: table.into(),
            partitions: partitions.clamp(1, MAX_PARTITIONS),
        }
    }

    /// The table it is kept in.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn page_put(&self, page: &Page) -> Result<TransactWriteItem, StoreError> {
        let item = to_item(&PageItem {
            pk: page_key(page.partition),
            sk: page.first,
            end: page.end(),
            spans: page.spans.clone(),
            indexed_at: page.indexed_at,
        })?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| StoreError::misuse(format!("a page put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn mark_put(
        &self,
        stream_id: &StreamId,
        from: u64,
        to: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(mark_key(stream_id)))
            .item(SK, AttributeValue::N("0".into()))
            .item(VERSION, AttributeValue::N(to.to_string()));
        put = if from == 0 {
            put.condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            put.condition_expression("#v = :from")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
        };
        let put = put
            .build()
            .map_err(|e| StoreError::misuse(format!("a mark put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A conditional update's output, `None` when its condition did not hold.
    fn conditional(
        &self,
        result: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
    ) -> Result<Option<UpdateItemOutput>, StoreError> {
        match result {
            Ok(output) => Ok(Some(output)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(from_sdk_write("UpdateItem", &self.table, err)),
            },
        }
    }

    fn decode_page(&self, item: Item) -> Result<Page, StoreError> {
        let stored: PageItem = from_item(item, "feed page")?;
        let partition = stored
            .pk
            .strip_prefix(PAGE_PREFIX)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| StoreError::corrupt(format!("feed page key {:?}", stored.pk)))?;
        let page = Page {
            partition,
            first: stored.sk,
            spans: stored.spans,
            indexed_at: stored.indexed_at,
        };
        if page.end() != stored.end || page.is_empty() || page.len() > PAGE_EVENTS {
            return Err(StoreError::corrupt(format!(
                "feed page {} at {} holds {} events but says it ends at {}",
                page.partition,
                page.first,
                page.len(),
                stored.end
            )));
        }
        Ok(page)
    }
}

#[async_trait]
impl FeedStore for DynamoFeed {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn record_partitions(&self) -> Result<u32, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(PARTITIONS_KEY.into()))
            .key(SK, AttributeValue::N("0".into()))
            .update_expression("SET #n = if_not_exists(#n, :n)")
            .expression_attribute_names("#n", PARTITIONS)
            .expression_attribute_values(":n", AttributeValue::N(self.partitions.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| from_sdk_write("UpdateItem", &self.table, e))?;
        output
            .attributes
            .as_ref()
            .and_then(|item| number(item, PARTITIONS))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| StoreError::corrupt("the feed's partition count"))
    }

    async fn marks(&self, streams: &[StreamId]) -> Result<HashMap<StreamId, u64>, StoreError> {
        let mut marks = HashMap::new();
        let by_key: HashMap<String, &StreamId> = streams.iter().map(|s| (mark_key(s), s)).collect();
        for chunk in streams.chunks(BATCH_GET) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|stream| {
                    Item::from([
                        (PK.to_owned(), AttributeValue::S(mark_key(stream))),
                        (SK.to_owned(), AttributeValue::N("0".into())),
                    ])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::misuse(format!("a mark read: {e}")))?;
            let mut left = true;
            for attempt in 0..BATCH_GET_TRIES {
                if attempt > 0 {
                    // What DynamoDB left unprocessed was throttled: back off before asking again.
                    let cap = std::time::Duration::from_millis(10 << attempt.min(6));
                    tokio::time::sleep(cap.mul_f64(fastrand::f64())).await;
                }
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(|e| from_sdk("BatchGetItem", &self.table, e))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in items {
                    let stream = match item.get(PK) {
                        Some(AttributeValue::S(key)) => by_key.get(key).copied(),
                        _ => None,
                    };
                    if let (Some(stream), Some(version)) = (stream, number(&item, VERSION)) {
                        marks.insert(stream.clone(), version);
                    }
                }
                match output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(unprocessed) if !unprocessed.keys.is_empty() => request = unprocessed,
                    _ => {
                        left = false;
                        break;
                    }
                }
            }
            if left {
                return Err(StoreError::Unavailable(Box::new(
                    crate::error::Unavailable {
                        operation: "BatchGetItem",
                        resource: self.table.clone(),
                        code: Some("UnprocessedKeys".into()),
                        retryable: true,
                        outcome_unknown: false,
                        source: format!("marks left unprocessed {BATCH_GET_TRIES} times").into(),
                    },
                )));
            }
        }
        Ok(marks)
    }

    async fn all_marks(&self) -> Result<BTreeMap<StreamId, u64>, StoreError> {
        let mut marks = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(#pk, :mark)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":mark", AttributeValue::S(MARK_PREFIX.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| from_sdk("Scan", &self.table, e))?;
            for item in output.items.unwrap_or_default() {
                let stream = match item.get(PK) {
                    Some(AttributeValue::S(key)) => key.strip_prefix(MARK_PREFIX),
                    _ => None,
                };
                let stream = stream
                    .and_then(|s| StreamId::parse(s).ok())
                    .ok_or_else(|| StoreError::corrupt("a feed mark's key is not a stream"))?;
                let version = number(&item, VERSION)
                    .ok_or_else(|| StoreError::corrupt(format!("{stream}'s feed mark")))?;
                marks.insert(stream, version);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(marks);
            }
        }
    }

    async fn end(&self, partition: u32) -> Result<u64, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", AttributeValue::S(page_key(partition)))
            .scan_index_forward(false)
            .limit(1)
            .projection_expression("#end")
            .expression_attribute_names("#end", END)
            .send()
            .await
            .map_err(|e| from_sdk("Query", &self.table, e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .first()
            .and_then(|item| number(item, END))
            .unwrap_or(0))
    }

    async fn write(&self, write: &PageWrite) -> Result<Written, StoreError> {
        crate::feed::check_write(write, self.partitions)?;
        let mut actions = Vec::with_capacity(write.pages.len() + write.marks.len());
        for page in &write.pages {
            actions.push(self.page_put(page)?);
        }
        for mark in &write.marks {
            actions.push(self.mark_put(&mark.stream_id, mark.from, mark.to)?);
        }
        // A token makes the SDK's retry of a transaction that did commit answer as committed.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Written::Written);
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            // Refused, or raced by another writer on the same items: plan again from what is
            // stored.
            let raced = cancelled.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                )
            });
            if raced {
                return Ok(Written::Stale);
            }
        }
        Err(from_sdk_write("TransactWriteItems", &self.table, err))
    }

    async fn read_pages(
        &self,
        partition: u32,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Page>, StoreError> {
        // The page holding `from` starts at most a page's length before it.
        let earliest = from.saturating_sub(PAGE_EVENTS - 1);
        let mut pages = Vec::new();
        let mut held = 0;
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND #sk >= :earliest")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", AttributeValue::S(page_key(partition)))
                .expression_attribute_values(":earliest", AttributeValue::N(earliest.to_string()))
                .limit(i32::try_from(limit.clamp(1, 1_000) + 1).unwrap_or(1_000))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| from_sdk("Query", &self.table, e))?;
            for item in output.items.unwrap_or_default() {
                let page = self.decode_page(item)?;
                if page.end() <= from {
                    continue;
                }
                held += page.end() - page.first.max(from);
                pages.push(page);
                if held >= limit as u64 {
                    return Ok(pages);
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(pages);
            }
        }
    }

    async fn acquire(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<u64>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(consumer, partition)))
            .update_expression(
                "SET #owner = :owner, #until = :until, #position = if_not_exists(#position, :zero)",
            )
            .condition_expression("attribute_not_exists(#pk) OR #owner = :owner OR #until < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_names("#position", POSITION)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        Ok(self.conditional(result)?.map(|output| {
            output
                .attributes
                .as_ref()
                .and_then(|item| number(item, POSITION))
                .unwrap_or(0)
        }))
    }

    async fn advance(
        &self,
        consumer: &str,
        partition: u32,
        owner: &str,
        from: u64,
        to: u64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(consumer, partition)))
            .update_expression("SET #position = :to, #until = :until")
            .condition_expression("#owner = :owner AND #position = :from")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_names("#position", POSITION)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .expression_attribute_values(":to", AttributeValue::N(to.to_string()))
            .send()
            .await;
        Ok(self.conditional(result)?.is_some())
    }

    async fn checkpoints(&self, consumer: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let mut checkpoints = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(format!("{CHECKPOINT_PREFIX}{consumer}")),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| from_sdk("Query", &self.table, e))?;
            for item in output.items.unwrap_or_default() {
                let owner = match item.get(OWNER) {
                    Some(AttributeValue::S(owner)) => owner.clone(),
                    _ => String::new(),
                };
                checkpoints.push(Checkpoint {
                    partition: number(&item, SK)
                        .and_then(|p| u32::try_from(p).ok())
                        .unwrap_or(0),
                    position: number(&item, POSITION).unwrap_or(0),
                    owner,
                    lease_until: number(&item, LEASE_UNTIL)
                        .and_then(|t| i64::try_from(t).ok())
                        .unwrap_or(0),
                });
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(checkpoints);
            }
        }
    }

    async fn parked(&self, consumer: &str) -> Result<BTreeMap<StreamId, Parked>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(parked_key(consumer)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.table, e))?;
        let Some(AttributeValue::M(streams)) = output.item.and_then(|mut item| item.remove(PARKED))
        else {
            return Ok(BTreeMap::new());
        };
        streams
            .into_values()
            .map(|value| match value {
                AttributeValue::M(item) => {
                    let parked: Parked = from_item(item, "parked stream")?;
                    Ok((parked.stream_id.clone(), parked))
                }
                _ => Err(StoreError::corrupt("a parked stream is not a map")),
            })
            .collect()
    }

    async fn park(&self, consumer: &str, parked: &Parked, replace: bool) -> Result<(), StoreError> {
        // The consumer named where operators look, then the map (a path into it needs it),
        // then the stream, unless parked already.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(parkers_key()))
            .update_expression("ADD #consumers :consumer")
            .expression_attribute_names("#consumers", CONSUMERS)
            .expression_attribute_values(":consumer", AttributeValue::Ss(vec![consumer.to_owned()]))
            .send()
            .await
            .map_err(|e| from_sdk_write("UpdateItem", &self.table, e))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(parked_key(consumer)))
            .update_expression("SET #parked = if_not_exists(#parked, :empty)")
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_values(":empty", AttributeValue::M(Item::new()))
            .send()
            .await
            .map_err(|e| from_sdk_write("UpdateItem", &self.table, e))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(parked_key(consumer)))
            .update_expression("SET #parked.#stream = :parked");
        if !replace {
            update = update.condition_expression("attribute_not_exists(#parked.#stream)");
        }
        let result = update
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_names("#stream", parked.stream_id.as_str())
            .expression_attribute_values(":parked", AttributeValue::M(to_item(parked)?))
            .send()
            .await;
        self.conditional(result).map(drop)
    }

    async fn parking_consumers(&self) -> Result<Vec<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(parkers_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.table, e))?;
        let mut consumers = match output.item.and_then(|mut item| item.remove(CONSUMERS)) {
            Some(AttributeValue::Ss(names)) => names,
            None => Vec::new(),
            Some(_) => {
                return Err(StoreError::corrupt(
                    "the parking consumers are not a string set",
                ));
            }
        };
        consumers.sort_unstable();
        Ok(consumers)
    }

    async fn request_redrive(
        &self,
        consumer: &str,
        stream_id: &StreamId,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(parked_key(consumer)))
            .update_expression("SET #parked.#stream.#redrive = :yes")
            .condition_expression("attribute_exists(#parked.#stream)")
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_names("#stream", stream_id.as_str())
            .expression_attribute_names("#redrive", "redrive")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        Ok(self.conditional(result)?.is_some())
    }

    async fn unpark(&self, consumer: &str, stream_id: &StreamId) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(parked_key(consumer)))
            .update_expression("REMOVE #parked.#stream")
            .condition_expression("attribute_exists(#parked)")
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_names("#stream", stream_id.as_str())
            .send()
            .await;
        self.conditional(result).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::feed::{INDEXED_AT, SPANS};

    #[test]
    fn a_page_item_has_the_attributes_the_names_say() {
        let item = to_item(&PageItem {
            pk: page_key(3),
            sk: 200,
            end: 201,
            spans: vec![Span {
                stream_id: StreamId::parse("Account-1").expect("id"),
                first_version: 1,
                types: vec!["Opened".into()],
            }],
            indexed_at: Utc::now(),
        })
        .expect("encodes");
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = vec![PK, SK, END, SPANS, INDEXED_AT];
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(item[PK], AttributeValue::S("P#3".into()));
    }
}
