//! The DynamoDB event store.
//!
//! Round trips: an append that continues from a head it read (the command service's path) is
//! one call, a conditional `PutItem` for a lone event or one `TransactWriteItems` otherwise.
//! `Any`, or `Exact(n)` without a head, costs one read more. A full read is one `Query` per
//! 1 MB page.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use futures::future::try_join_all;

use super::plan::{self, Plan};
use super::{
    AppendRequest, AppendResult, CommandRecord, EventStore, ExpectedVersion, ItemPage, ReadRange,
    StoreSettings,
};
use crate::codec::{self, Item};
use crate::envelope::StreamHead;
use crate::error::{CurrentVersion, StoreError, Unavailable, from_sdk, from_sdk_write};
use crate::ids::{CommandId, StreamId};
use crate::names::{commands, events};

/// How many times an `ExpectedVersion::Any` append re-reads the head after losing a race.
const ANY_VERSION_ATTEMPTS: usize = 5;

/// The event store on DynamoDB: an events table and, for idempotent appends, a commands table.
///
/// A store built without a commands table reads and appends like any other but refuses an
/// append that carries a command id, before any I/O: functions that never take commands
/// (projector, snapshotter, query API) are given no table they have no IAM rights to.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    events_table: String,
    commands_table: Option<String>,
    settings: StoreSettings,
}

/// Why a write was refused, from the conditions that failed.
enum WriteRefusal {
    /// The command id exists; the item is the stored record if DynamoDB returned it.
    DuplicateCommand(Option<Item>),
    /// A version item already existed in this write's stream.
    StreamConflict(usize, Option<Item>),
    /// Our own items are already there: an earlier attempt of this very write committed.
    AlreadyCommitted,
    Failed(StoreError),
}

impl DynamoStore {
    /// A store over the events table, with a client built once at start.
    pub fn new(client: Client, events_table: impl Into<String>, settings: StoreSettings) -> Self {
        Self {
            client,
            events_table: events_table.into(),
            commands_table: None,
            settings,
        }
    }

    /// The same store, recording command ids in `commands_table` so appends are idempotent.
    #[must_use]
    pub fn with_commands_table(mut self, commands_table: impl Into<String>) -> Self {
        self.commands_table = Some(commands_table.into());
        self
    }

    /// The commands table, or why an idempotent operation cannot run on this store.
    fn commands_table(&self) -> Result<&str, StoreError> {
        self.commands_table.as_deref().ok_or_else(|| {
            StoreError::misuse(
                "this store has no commands table: appends with a command id need one \
                 (DynamoStore::with_commands_table)",
            )
        })
    }

    /// The SDK client, for callers that share it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The events table name.
    pub fn events_table(&self) -> &str {
        &self.events_table
    }

    /// One page of a parallel scan of the events table: segment `segment` of `total`.
    ///
    /// Every item of a stream lies in one segment, in version order, so a worker per segment
    /// sees each stream in order. Returns the items and the key to continue from.
    pub async fn scan_segment(
        &self,
        segment: i32,
        total: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.events_table)
            .segment(segment)
            .total_segments(total)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| from_sdk("Scan", &self.events_table, e))?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }

    /// Every stream id of a category (one scan, filtered to each stream's first event).
    pub async fn streams_in_category(&self, category: &str) -> Result<Vec<StreamId>, StoreError> {
        self.stream_ids(Some(category)).await
    }

    /// Every stream id, or every one of a category: one scan, filtered to each stream's first
    /// event, sorted.
    pub async fn stream_ids(&self, category: Option<&str>) -> Result<Vec<StreamId>, StoreError> {
        let mut streams = Vec::new();
        let mut start = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.events_table)
                .projection_expression("#s")
                .expression_attribute_names("#s", events::STREAM_ID)
                .expression_attribute_names("#v", events::VERSION)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .set_exclusive_start_key(start);
            scan = match category {
                Some(category) => scan
                    .filter_expression("begins_with(#s, :prefix) AND #v = :one")
                    .expression_attribute_values(
                        ":prefix",
                        AttributeValue::S(format!("{category}-")),
                    ),
                None => scan.filter_expression("#v = :one"),
            };
            let output = scan
                .send()
                .await
                .map_err(|e| from_sdk("Scan", &self.events_table, e))?;
            for item in output.items.unwrap_or_default() {
                if let Some(AttributeValue::S(id)) = item.get(events::STREAM_ID) {
                    streams
                        .push(StreamId::parse(id).map_err(|e| StoreError::corrupt(e.to_string()))?);
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        streams.sort();
        Ok(streams)
    }

    async fn head_for_write(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        known: Option<&StreamHead>,
    ) -> Result<Option<StreamHead>, StoreError> {
        if let Some(head) = known {
            return Ok(Some(head.clone()));
        }
        match expected {
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => Ok(None),
            ExpectedVersion::Any => self.read_head(stream_id).await,
            ExpectedVersion::Exact(version) => {
                match self.read_event_chain(stream_id, version).await? {
                    Some(chain) => Ok(Some(StreamHead::new(stream_id.clone(), version, chain))),
                    None => Err(StoreError::Conflict {
                        stream_id: stream_id.clone(),
                        expected,
                        next: None,
                        actual: self
                            .read_head(stream_id)
                            .await?
                            .map_or(CurrentVersion::NoStream, |h| {
                                CurrentVersion::At(h.version())
                            }),
                    }),
                }
            }
        }
    }

    /// The chain of one event, `None` if the stream has no such version.
    async fn read_event_chain(
        &self,
        stream_id: &StreamId,
        version: u64,
    ) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.events_table)
            .key(events::STREAM_ID, AttributeValue::S(stream_id.to_string()))
            .key(events::VERSION, AttributeValue::N(version.to_string()))
            .projection_expression("#c")
            .expression_attribute_names("#c", events::CHAIN)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.events_table, e))?;
        Ok(output
            .item
            .and_then(|mut item| match item.remove(events::CHAIN) {
                Some(AttributeValue::S(chain)) => Some(chain),
                _ => None,
            }))
    }

    fn put_event(&self, item: Item) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.events_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", events::STREAM_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::misuse(format!("cannot build put: {e}")))
    }

    /// Writes a plan with one conditional call.
    async fn write(&self, plan: &Plan) -> Result<(), WriteRefusal> {
        if plan.command.is_none() && plan.item_count() == 1 {
            return self.put_single(plan).await;
        }
        let mut actions = Vec::with_capacity(plan.item_count());
        // Which write each action belongs to; `None` marks the command record.
        let mut owners = Vec::with_capacity(plan.item_count());
        for (index, write) in plan.writes.iter().enumerate() {
            for item in &write.items {
                let put = self.put_event(item.clone()).map_err(WriteRefusal::Failed)?;
                actions.push(TransactWriteItem::builder().put(put).build());
                owners.push(Some(index));
            }
        }
        if let Some((_, item)) = &plan.command {
            let table = self.commands_table().map_err(WriteRefusal::Failed)?;
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#c)")
                .expression_attribute_names("#c", commands::COMMAND_ID)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| {
                    WriteRefusal::Failed(StoreError::misuse(format!("cannot build put: {e}")))
                })?;
            actions.push(TransactWriteItem::builder().put(put).build());
            owners.push(None);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            // Makes the SDK's own retry of a transaction whose answer was lost a no-op success.
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Err(
                    self.interpret_cancellation(plan, &owners, cancelled.cancellation_reasons())
                ),
                _ => Err(WriteRefusal::Failed(from_sdk_write(
                    "TransactWriteItems",
                    &self.events_table,
                    err,
                ))),
            },
        }
    }

    async fn put_single(&self, plan: &Plan) -> Result<(), WriteRefusal> {
        let write = &plan.writes[0];
        let result = self
            .client
            .put_item()
            .table_name(&self.events_table)
            .set_item(Some(write.items[0].clone()))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", events::STREAM_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    if is_our_event(failed.item(), plan, 0) {
                        Err(WriteRefusal::AlreadyCommitted)
                    } else {
                        Err(WriteRefusal::StreamConflict(0, failed.item().cloned()))
                    }
                }
                _ => Err(WriteRefusal::Failed(from_sdk_write(
                    "PutItem",
                    &self.events_table,
                    err,
                ))),
            },
        }
    }

    fn interpret_cancellation(
        &self,
        plan: &Plan,
        owners: &[Option<usize>],
        reasons: &[CancellationReason],
    ) -> WriteRefusal {
        let failed = |reason: &CancellationReason| reason.code() == Some("ConditionalCheckFailed");
        // A repeated command wins over everything else: its first execution is the answer.
        for (owner, reason) in owners.iter().zip(reasons) {
            if owner.is_none() && failed(reason) {
                return WriteRefusal::DuplicateCommand(reason.item().cloned());
            }
        }
        for (owner, reason) in owners.iter().zip(reasons) {
            if let Some(index) = owner
                && failed(reason)
            {
                // A transaction is all or nothing: if one of our items is there, all are,
                // and this is an earlier attempt of ours that committed.
                if is_our_event(reason.item(), plan, *index) {
                    return WriteRefusal::AlreadyCommitted;
                }
                return WriteRefusal::StreamConflict(*index, reason.item().cloned());
            }
        }
        let codes: Vec<&str> = reasons
            .iter()
            .filter_map(CancellationReason::code)
            .collect();
        let retryable = codes.iter().any(|code| {
            matches!(
                *code,
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        });
        WriteRefusal::Failed(StoreError::Unavailable(Box::new(Unavailable {
            operation: "TransactWriteItems",
            resource: self.events_table.clone(),
            code: Some("TransactionCanceledException".into()),
            retryable,
            // A cancelled transaction wrote nothing.
            outcome_unknown: false,
            source: format!("transaction cancelled: {}", codes.join(", ")).into(),
        })))
    }

    async fn resolve_duplicate(
        &self,
        request: &AppendRequest,
        returned: Option<Item>,
    ) -> Result<AppendResult, StoreError> {
        let Some(command) = &request.command else {
            return Err(StoreError::corrupt("duplicate command without a command"));
        };
        let record = match returned {
            Some(item) => Some(codec::from_item::<CommandRecord>(item, "command record")?),
            None => self.read_command(&command.command_id).await?,
        };
        match record {
            Some(record) => Ok(AppendResult::Replayed(
                record.replay_for(&command.request_hash)?,
            )),
            // Expired between the failed condition and this read: the command is long done.
            None => Err(StoreError::IdempotencyMismatch {
                command_id: command.command_id.clone(),
            }),
        }
    }

    /// A conflict found before writing (from a head read): a command that was already
    /// executed answers instead. After a write, the transaction's own cancellation reasons
    /// say whether the command existed, so no read is needed there.
    async fn conflict_or_replay(
        &self,
        request: &AppendRequest,
        conflict: StoreError,
    ) -> Result<AppendResult, StoreError> {
        if let Some(command) = &request.command
            && let Some(record) = self.read_command(&command.command_id).await?
        {
            return Ok(AppendResult::Replayed(
                record.replay_for(&command.request_hash)?,
            ));
        }
        Err(conflict)
    }
}

/// Whether the item a failed condition returned is the event this plan meant to write.
fn is_our_event(
    existing: Option<&HashMap<String, AttributeValue>>,
    plan: &Plan,
    write: usize,
) -> bool {
    let Some(AttributeValue::S(existing_id)) = existing.and_then(|item| item.get(events::EVENT_ID))
    else {
        return false;
    };
    plan.writes[write]
        .events
        .iter()
        .any(|event| event.event_id.to_string() == *existing_id)
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        plan::validate(&request, &self.settings)?;
        if request.command.is_some() {
            self.commands_table()?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let heads = try_join_all(
                request
                    .writes
                    .iter()
                    .map(|w| self.head_for_write(&w.stream_id, w.expected, w.known_head())),
            )
            .await;
            let heads = match heads {
                Ok(heads) => heads,
                Err(conflict @ StoreError::Conflict { .. }) => {
                    return self.conflict_or_replay(&request, conflict).await;
                }
                Err(other) => return Err(other),
            };
            let plan = match plan::build(&request, heads, &self.settings, crate::envelope::now()) {
                Ok(plan) => plan,
                Err(conflict @ StoreError::Conflict { .. }) => {
                    return self.conflict_or_replay(&request, conflict).await;
                }
                Err(other) => return Err(other),
            };
            match self.write(&plan).await {
                Ok(()) => return Ok(AppendResult::Written(plan.outcome())),
                Err(WriteRefusal::DuplicateCommand(item)) => {
                    return self.resolve_duplicate(&request, item).await;
                }
                Err(WriteRefusal::StreamConflict(index, existing)) => {
                    let write = &request.writes[index];
                    if write.expected == ExpectedVersion::Any && attempt < ANY_VERSION_ATTEMPTS {
                        continue;
                    }
                    let actual = match write.known_head() {
                        // The version after the head the caller read exists: the stream moved
                        // on, and how far is the caller's catch-up read to find, not ours.
                        Some(head) => CurrentVersion::Beyond(head.version()),
                        None => self
                            .read_head(&write.stream_id)
                            .await?
                            .map_or(CurrentVersion::NoStream, |h| {
                                CurrentVersion::At(h.version())
                            }),
                    };
                    // The item in the way is the event after the head: the writer's next
                    // step, at no cost.
                    let next = write.known_head().and_then(|head| {
                        existing
                            .and_then(|item| {
                                codec::decode_event(item, &self.settings.upcasters).ok()
                            })
                            .filter(|event| event.version == head.version() + 1)
                            .map(Box::new)
                    });
                    return Err(StoreError::Conflict {
                        stream_id: write.stream_id.clone(),
                        expected: write.expected,
                        actual,
                        next,
                    });
                }
                Err(WriteRefusal::AlreadyCommitted) => {
                    return Ok(AppendResult::Written(plan.outcome()));
                }
                Err(WriteRefusal::Failed(error)) => return Err(error),
            }
        }
    }

    async fn read_items(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<ItemPage, StoreError> {
        let mut items = Vec::new();
        let mut start_key = None;
        // One more than asked for tells whether the range continues.
        let wanted = range.limit.map(|limit| limit.saturating_add(1));
        loop {
            let page_limit =
                wanted.map(|w| i32::try_from(w - items.len()).unwrap_or(i32::MAX).max(1));
            // Only the bounds the range has: a whole stream is read by its key alone. DynamoDB
            // serves both alike; an emulator that tests the bound item by item is faster.
            let (from, to) = (range.from > 1, range.to < u64::MAX);
            let condition = match (from, to) {
                (false, false) => "#s = :s",
                (true, false) => "#s = :s AND #v >= :from",
                (false, true) => "#s = :s AND #v <= :to",
                (true, true) => "#s = :s AND #v BETWEEN :from AND :to",
            };
            let mut query = self
                .client
                .query()
                .table_name(&self.events_table)
                .key_condition_expression(condition)
                .expression_attribute_names("#s", events::STREAM_ID)
                .expression_attribute_values(":s", AttributeValue::S(stream_id.to_string()));
            if from || to {
                query = query.expression_attribute_names("#v", events::VERSION);
            }
            if from {
                query = query.expression_attribute_values(
                    ":from",
                    AttributeValue::N(range.from.to_string()),
                );
            }
            if to {
                query = query
                    .expression_attribute_values(":to", AttributeValue::N(range.to.to_string()));
            }
            let output = query
                .consistent_read(true)
                .set_limit(page_limit)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| from_sdk("Query", &self.events_table, e))?;
            items.extend(output.items.unwrap_or_default());
            start_key = output.last_evaluated_key;
            let satisfied = wanted.is_some_and(|w| items.len() >= w);
            if start_key.is_none() || satisfied {
                break;
            }
        }
        let more = match range.limit {
            Some(limit) if items.len() > limit => {
                items.truncate(limit);
                true
            }
            _ => false,
        };
        Ok(ItemPage { items, more })
    }

    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.events_table)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", events::STREAM_ID)
            .expression_attribute_names("#v", events::VERSION)
            .expression_attribute_names("#c", events::CHAIN)
            .expression_attribute_values(":s", AttributeValue::S(stream_id.to_string()))
            .projection_expression("#v, #c")
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("Query", &self.events_table, e))?;
        let Some(item) = output.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Head {
            version: u64,
            chain: String,
        }
        let head: Head = codec::from_item(item, "stream head")?;
        Ok(Some(StreamHead::new(
            stream_id.clone(),
            head.version,
            head.chain,
        )))
    }

    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let table = self.commands_table()?;
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(
                commands::COMMAND_ID,
                AttributeValue::S(command_id.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", table, e))?;
        output
            .item
            .map(|item| codec::from_item(item, "command record"))
            .transpose()
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}
