//! Timers in a DynamoDB table (`pk` S, `sk` S), two items a timer, written together:
//!
//! - the **schedule**, under `D#<reactor>` sorted by `<due, 16 digits of epoch ms>#<key>`, so a
//!   reactor's due timers are one `Query` from the earliest;
//! - the **pointer**, under `K#<reactor>` and the key, naming the timer that is current.
//!
//! A newer timer under a key replaces the pointer; a cancel deletes it. A schedule whose
//! pointer names another timer (or none) is stale: never returned as due, and deleted when its
//! time comes. So scheduling and cancelling each cost one request, and nothing is read first.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::error::{from_sdk, from_sdk_write};
use super::item::{Item, from_item, to_item};
use crate::error::StoreError;
use crate::reactor::{Timer, TimerStore};

const PK: &str = "pk";
const SK: &str = "sk";
const SCHEDULE_PREFIX: &str = "D#";
const POINTER_PREFIX: &str = "K#";
/// The largest payload a timer carries (its items stay small).
pub const MAX_PAYLOAD_BYTES: usize = 4_096;

/// Timers in a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoTimers {
    client: Client,
    table: String,
}

fn due_key(timer: &Timer) -> String {
    format!("{:016}#{}", timer.due.timestamp_millis().max(0), timer.key)
}

fn key(pk: String, sk: String) -> Item {
    Item::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
}

fn schedule_key(timer: &Timer) -> Item {
    key(
        format!("{SCHEDULE_PREFIX}{}", timer.reactor),
        due_key(timer),
    )
}

fn pointer_key(reactor: &str, timer_key: &str) -> Item {
    key(format!("{POINTER_PREFIX}{reactor}"), timer_key.to_owned())
}

impl DynamoTimers {
    /// Timers in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn item(&self, base: Item, timer: &Timer) -> Result<Item, StoreError> {
        let mut item = to_item(timer)?;
        item.extend(base);
        Ok(item)
    }

    async fn delete(&self, key: Item) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| from_sdk_write("DeleteItem", &self.table, e))?;
        Ok(())
    }

    /// The current timers' ids under `keys` of `reactor`.
    async fn current(
        &self,
        reactor: &str,
        keys: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut current = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut wanted = KeysAndAttributes::builder().consistent_read(true);
            for timer_key in chunk {
                wanted = wanted.keys(pointer_key(reactor, timer_key));
            }
            let wanted = wanted
                .build()
                .map_err(|e| StoreError::misuse(format!("a pointer read: {e}")))?;
            let mut pending = HashMap::from([(self.table.clone(), wanted)]);
            for _ in 0..10 {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| from_sdk("BatchGetItem", &self.table, e))?;
                for item in output
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let timer: Timer = from_item(item, "timer")?;
                    current.insert(timer.key, timer.id);
                }
                pending = output.unprocessed_keys.unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::corrupt(
                    "timer pointers left unread after 10 tries",
                ));
            }
        }
        Ok(current)
    }

    async fn pointers(&self, reactor: Option<&str>) -> Result<Vec<Timer>, StoreError> {
        let mut timers = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = match reactor {
                Some(reactor) => {
                    let output = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_values(
                            ":pk",
                            AttributeValue::S(format!("{POINTER_PREFIX}{reactor}")),
                        )
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| from_sdk("Query", &self.table, e))?;
                    (output.items.unwrap_or_default(), output.last_evaluated_key)
                }
                None => {
                    let output = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .filter_expression("begins_with(#pk, :pointer)")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_values(
                            ":pointer",
                            AttributeValue::S(POINTER_PREFIX.to_owned()),
                        )
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| from_sdk("Scan", &self.table, e))?;
                    (output.items.unwrap_or_default(), output.last_evaluated_key)
                }
            };
            for item in items {
                timers.push(from_item::<Timer>(item, "timer")?);
            }
            start = next;
            if start.is_none() {
                return Ok(timers);
            }
        }
    }
}

#[async_trait]
impl TimerStore for DynamoTimers {
    async fn schedule(&self, timer: &Timer) -> Result<(), StoreError> {
        Timer::check_key(&timer.key)?;
        let payload = serde_json::to_vec(&timer.payload).map_or(usize::MAX, |b| b.len());
        if payload > MAX_PAYLOAD_BYTES {
            return Err(StoreError::TooLarge {
                what: "a timer's payload (bytes)",
                actual: payload,
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::misuse(format!("a timer write: {e}")))
        };
        self.client
            .transact_write_items()
            .transact_items(put(self.item(schedule_key(timer), timer)?)?)
            .transact_items(put(
                self.item(pointer_key(&timer.reactor, &timer.key), timer)?
            )?)
            .send()
            .await
            .map_err(|e| from_sdk_write("TransactWriteItems", &self.table, e))?;
        Ok(())
    }

    async fn cancel(&self, reactor: &str, key: &str) -> Result<(), StoreError> {
        self.delete(pointer_key(reactor, key)).await
    }

    async fn due(
        &self,
        reactor: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let until = format!("{:016}#~", now.timestamp_millis().max(0));
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk <= :until")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(format!("{SCHEDULE_PREFIX}{reactor}")),
            )
            .expression_attribute_values(":until", AttributeValue::S(until))
            .limit(i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000))
            .send()
            .await
            .map_err(|e| from_sdk("Query", &self.table, e))?;
        let scheduled: Vec<Timer> = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item(item, "timer"))
            .collect::<Result<_, _>>()?;
        let keys: Vec<String> = scheduled.iter().map(|t| t.key.clone()).collect();
        let current = self.current(reactor, &keys).await?;
        let mut due = Vec::new();
        for timer in scheduled {
            if current.get(&timer.key) == Some(&timer.id) {
                due.push(timer);
            } else {
                // Replaced or cancelled: its time has come, and it goes.
                self.delete(schedule_key(&timer)).await?;
            }
        }
        Ok(due)
    }

    async fn fired(&self, timer: &Timer) -> Result<(), StoreError> {
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(pointer_key(&timer.reactor, &timer.key)))
            .condition_expression("#id = :id")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":id", AttributeValue::S(timer.id.clone()))
            .send()
            .await;
        match removed {
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) => {}
            Err(err) => return Err(from_sdk_write("DeleteItem", &self.table, err)),
        }
        self.delete(schedule_key(timer)).await
    }

    async fn pending(&self, reactor: Option<&str>) -> Result<Vec<Timer>, StoreError> {
        Ok(crate::reactor::by_due(self.pointers(reactor).await?))
    }
}
