//! A read model in a DynamoDB table.
//!
//! A row is one item: the key attribute, `version` and the row's fields, flat, so the table
//! can be read and indexed like any other. A version without a row is an item with only the
//! key and `version`. Counter rows (`#…`) are items of counters, numbers moved with `ADD`; a
//! shared projection's checkpoints (`$<stream>`) are items of `version` and `row_key`; both in
//! the same table, written in the same transaction as the rows they move with.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use serde_json::{Map, Value};

use super::error::{from_sdk, from_sdk_write};
use super::item::Item;
use crate::error::{StoreError, Unavailable};
use crate::ids::StreamId;
use crate::names::read_model::{ROW_KEY, SOURCE_STREAM, VERSION};
use crate::projection::{
    CHECKPOINT_PREFIX, COUNTER_PREFIX, Checkpoint, Commit, ReadModelStore, Saved, StoredRow,
    check_commit, checkpoint_key,
};

/// DynamoDB's limit on requests in one `BatchWriteItem`.
const BATCH_WRITE_LIMIT: usize = 25;

/// A row item with the condition of its write.
struct RowWrite {
    item: Item,
    condition: &'static str,
    names: HashMap<String, String>,
    values: Option<HashMap<String, AttributeValue>>,
}

/// A read model in one table keyed by a string attribute.
#[derive(Clone, Debug)]
pub struct DynamoReadModel {
    client: Client,
    table: String,
    key_attribute: String,
}

impl DynamoReadModel {
    /// A read model over `table`, whose partition key (S) is `key_attribute`.
    pub fn new(client: Client, table: impl Into<String>, key_attribute: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            key_attribute: key_attribute.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(&self, key: &str) -> (String, AttributeValue) {
        (
            self.key_attribute.clone(),
            AttributeValue::S(key.to_owned()),
        )
    }

    /// The row's item and the condition that it still be at `expected`.
    fn row_write(&self, write: &crate::projection::RowWrite) -> Result<RowWrite, StoreError> {
        let (key, expected, row) = (&write.key, write.expected, &write.row);
        let mut item: Item = match &row.row {
            Some(document) => serde_dynamo::to_item(document)
                .map_err(|e| StoreError::misuse(format!("a row does not encode: {e}")))?,
            None => Item::new(),
        };
        item.insert(VERSION.into(), AttributeValue::N(row.version.to_string()));
        if let Some(source) = &write.source {
            item.insert(SOURCE_STREAM.into(), AttributeValue::S(source.to_string()));
        }
        Ok(self.conditional(key, expected, item))
    }

    /// A checkpoint's item and the condition that it still be at `expected`.
    fn checkpoint_write(&self, write: &crate::projection::CheckpointWrite) -> RowWrite {
        let mut item = Item::from([(
            VERSION.to_owned(),
            AttributeValue::N(write.checkpoint.version.to_string()),
        )]);
        if let Some(row_key) = &write.checkpoint.row_key {
            item.insert(ROW_KEY.into(), AttributeValue::S(row_key.clone()));
        }
        self.conditional(&checkpoint_key(&write.stream_id), write.expected, item)
    }

    /// `item` under `key`, written only if the stored version is `expected` (0: absent).
    fn conditional(&self, key: &str, expected: u64, mut item: Item) -> RowWrite {
        let (name, value) = self.key(key);
        item.insert(name, value);
        let mut names = HashMap::from([("#k".to_owned(), self.key_attribute.clone())]);
        let mut values = HashMap::new();
        let condition = if expected == 0 {
            "attribute_not_exists(#k)"
        } else {
            names.insert("#v".into(), VERSION.into());
            values.insert(":expected".into(), AttributeValue::N(expected.to_string()));
            "attribute_exists(#k) AND #v = :expected"
        };
        RowWrite {
            item,
            condition,
            names,
            values: (!values.is_empty()).then_some(values),
        }
    }

    fn put(write: RowWrite, table: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(write.item))
            .condition_expression(write.condition)
            .set_expression_attribute_names(Some(write.names))
            .set_expression_attribute_values(write.values)
            .build()
            .map_err(|e| StoreError::misuse(format!("cannot build put: {e}")))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn counter_update(
        &self,
        key: &str,
        deltas: &BTreeMap<&str, i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (name, value) = self.key(key);
        let mut update = Update::builder().table_name(&self.table).key(name, value);
        let mut clauses = Vec::with_capacity(deltas.len());
        for (n, (counter, delta)) in deltas.iter().enumerate() {
            clauses.push(format!("#c{n} :d{n}"));
            update = update
                .expression_attribute_names(format!("#c{n}"), *counter)
                .expression_attribute_values(
                    format!(":d{n}"),
                    AttributeValue::N(delta.to_string()),
                );
        }
        let update = update
            .update_expression(format!("ADD {}", clauses.join(", ")))
            .build()
            .map_err(|e| StoreError::misuse(format!("cannot build update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let (name, value) = self.key(key);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(name, value)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.table, e))?;
        Ok(output.item)
    }

    /// A row item back into a stored row; `None` for an item that is not a row (counters).
    fn decode(&self, mut item: Item) -> Result<Option<StoredRow>, StoreError> {
        item.remove(&self.key_attribute);
        item.remove(SOURCE_STREAM);
        let version = match item.remove(VERSION) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| StoreError::corrupt(format!("row version {n:?} is not a number")))?,
            Some(_) => return Err(StoreError::corrupt("a row's version is not a number")),
            None => return Ok(None),
        };
        let row = if item.is_empty() {
            None
        } else {
            Some(
                serde_dynamo::from_item::<_, Map<String, Value>>(item)
                    .map_err(|e| StoreError::corrupt(format!("a row does not decode: {e}")))?,
            )
        };
        Ok(Some(StoredRow { version, row }))
    }

    /// Every item of the table, page by page.
    async fn scan(&self, keys_only: bool) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if keys_only {
                scan = scan
                    .projection_expression("#k")
                    .expression_attribute_names("#k", &self.key_attribute);
            }
            let output = scan
                .send()
                .await
                .map_err(|e| from_sdk("Scan", &self.table, e))?;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl ReadModelStore for DynamoReadModel {
    fn key_attribute(&self) -> &str {
        &self.key_attribute
    }

    async fn load(&self, key: &str) -> Result<Option<StoredRow>, StoreError> {
        match self.get(key).await? {
            Some(item) => self.decode(item),
            None => Ok(None),
        }
    }

    async fn load_checkpoint(
        &self,
        stream_id: &StreamId,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let Some(mut item) = self.get(&checkpoint_key(stream_id)).await? else {
            return Ok(None);
        };
        let row_key = match item.remove(ROW_KEY) {
            Some(AttributeValue::S(key)) => Some(key),
            _ => None,
        };
        let version = self.decode(item)?.map_or(0, |row| row.version);
        Ok(Some(Checkpoint { version, row_key }))
    }

    async fn commit(&self, commit: &Commit) -> Result<Saved, StoreError> {
        let merged = check_commit(commit, &self.key_attribute)?;
        if let ([row], None, true) = (
            commit.rows.as_slice(),
            &commit.checkpoint,
            merged.is_empty(),
        ) {
            let write = self.row_write(row)?;
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(write.item))
                .condition_expression(write.condition)
                .set_expression_attribute_names(Some(write.names))
                .set_expression_attribute_values(write.values)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Saved::Written),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(Saved::Stale),
                    _ => Err(from_sdk_write("PutItem", &self.table, err)),
                },
            };
        }
        let mut actions = Vec::with_capacity(commit.rows.len() + merged.len() + 1);
        if let Some(checkpoint) = &commit.checkpoint {
            actions.push(Self::put(self.checkpoint_write(checkpoint), &self.table)?);
        }
        for row in &commit.rows {
            actions.push(Self::put(self.row_write(row)?, &self.table)?);
        }
        for (counter_key, deltas) in &merged {
            actions.push(self.counter_update(counter_key, deltas)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Saved::Written);
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(from_sdk_write("TransactWriteItems", &self.table, err));
        };
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if codes.contains(&"ConditionalCheckFailed") {
            return Ok(Saved::Stale);
        }
        Err(StoreError::Unavailable(Box::new(Unavailable {
            operation: "TransactWriteItems",
            resource: self.table.clone(),
            code: Some("TransactionCanceledException".into()),
            // Another transaction on a counter row, or throttling: worth another try.
            retryable: true,
            outcome_unknown: false,
            source: format!("transaction cancelled: {}", codes.join(", ")).into(),
        })))
    }

    async fn counters(&self, key: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut counters = BTreeMap::new();
        for (name, value) in self.get(key).await?.unwrap_or_default() {
            if name == self.key_attribute {
                continue;
            }
            let AttributeValue::N(number) = value else {
                return Err(StoreError::corrupt(format!(
                    "counter {name} is not a number"
                )));
            };
            let number = number
                .parse()
                .map_err(|_| StoreError::corrupt(format!("counter {name} is not an integer")))?;
            counters.insert(name, number);
        }
        Ok(counters)
    }

    async fn rows(&self) -> Result<BTreeMap<String, StoredRow>, StoreError> {
        let mut rows = BTreeMap::new();
        for item in self.scan(false).await? {
            let Some(AttributeValue::S(key)) = item.get(&self.key_attribute).cloned() else {
                continue;
            };
            if key.starts_with(COUNTER_PREFIX) || key.starts_with(CHECKPOINT_PREFIX) {
                continue;
            }
            if let Some(row) = self.decode(item)? {
                rows.insert(key, row);
            }
        }
        Ok(rows)
    }

    async fn clear(&self) -> Result<usize, StoreError> {
        let keys = self.scan(true).await?;
        for chunk in keys.chunks(BATCH_WRITE_LIMIT) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                        .map_err(|e| StoreError::misuse(format!("cannot build delete: {e}")))
                })
                .collect::<Result<_, _>>()?;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| from_sdk("BatchWriteItem", &self.table, e))?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(keys.len())
    }
}
