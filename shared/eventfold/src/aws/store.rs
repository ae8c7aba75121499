//! The DynamoDB event store.
//!
//! Round trips: an append that continues from a head it read (the command service's path) is
//! one call, a conditional `PutItem` for a lone event or one `TransactWriteItems` otherwise.
//! `Any`, or `Exact(n)` without a head, costs one read more. A full read is one `Query` per
//! 1 MB page.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;

use super::error::from_sdk;
use super::item::{self, Item};
use super::store_write::WriteRefusal;
use crate::envelope::StreamHead;
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::names::{commands, events};
use crate::store::plan::PreparedAppend;
use crate::store::{
    AppendRequest, AppendResult, CommandRecord, CurrentVersion, DocumentPage, EventStore,
    ExpectedVersion, RawRead, ReadRange, StoreSettings,
};

/// How many times an `ExpectedVersion::Any` append re-reads the head after losing a race.
const ANY_VERSION_ATTEMPTS: usize = 5;

/// The event store on DynamoDB: an events table and, for idempotent appends, a commands table.
///
/// A store built without a commands table reads and appends like any other but refuses an
/// append that carries a command id, before any I/O: functions that never take commands
/// (projector, snapshotter, query API) are given no table they have no IAM rights to.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) events_table: String,
    commands_table: Option<String>,
    settings: StoreSettings,
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
    pub(super) fn commands_table(&self) -> Result<&str, StoreError> {
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

    /// Every stream's newest version: one scan of the keys, whatever the number of streams.
    pub async fn stream_heads(&self) -> Result<BTreeMap<StreamId, u64>, StoreError> {
        let mut heads: BTreeMap<StreamId, u64> = BTreeMap::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.events_table)
                .projection_expression("#s, #v")
                .expression_attribute_names("#s", events::STREAM_ID)
                .expression_attribute_names("#v", events::VERSION)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| from_sdk("Scan", &self.events_table, e))?;
            for item in output.items.unwrap_or_default() {
                let (Some(AttributeValue::S(id)), Some(AttributeValue::N(version))) =
                    (item.get(events::STREAM_ID), item.get(events::VERSION))
                else {
                    continue;
                };
                let stream = StreamId::parse(id).map_err(|e| StoreError::corrupt(e.to_string()))?;
                let version: u64 = version
                    .parse()
                    .map_err(|_| StoreError::corrupt(format!("{stream}'s version {version}")))?;
                let head = heads.entry(stream).or_insert(0);
                *head = (*head).max(version);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(heads);
            }
        }
    }

    /// The items of a range in version order, following every page, and whether the range
    /// holds more past its limit.
    async fn query_items(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let mut items = Vec::new();
        if range.from > range.to {
            // DynamoDB refuses a BETWEEN whose bounds are the wrong way round.
            return Ok((items, false));
        }
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
                .scan_index_forward(!range.newest)
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
        if range.newest {
            items.reverse();
        }
        Ok((items, more))
    }

    /// The conflict a refused write reports: what the store knows of the stream, and the
    /// event in the way when the refusal carried it.
    async fn conflict_after_write(
        &self,
        write: &crate::store::plan::PreparedWrite,
        existing: Option<Item>,
    ) -> Result<StoreError, StoreError> {
        let actual = match &write.head {
            // The version after the head the caller read exists: the stream moved on, and how
            // far is the caller's catch-up read to find, not ours.
            Some(head) => CurrentVersion::Beyond(head.version()),
            None => self
                .read_head(&write.stream_id)
                .await?
                .map_or(CurrentVersion::NoStream, |h| {
                    CurrentVersion::At(h.version())
                }),
        };
        // The item in the way is the event after the head: the writer's next step, at no cost.
        let next = write.head.as_ref().and_then(|head| {
            existing
                .and_then(|item| item::from_item(item, "event").ok())
                .and_then(|event| self.settings.upcasters.upcast(event).ok())
                .filter(|event| event.version == head.version() + 1)
                .map(Box::new)
        });
        Ok(StoreError::Conflict {
            stream_id: write.stream_id.clone(),
            expected: write.expected,
            actual,
            next,
        })
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
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let prepared = PreparedAppend::new(request, &self.settings)?;
        if prepared.command().is_some() {
            self.commands_table()?;
        }
        // The one loop of this store: an `Any` append that lost a race reads the head again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let heads = try_join_all(
                prepared
                    .writes()
                    .iter()
                    .map(|w| self.head_for_write(&w.stream_id, w.expected, w.head.as_ref())),
            )
            .await;
            let heads = match heads {
                Ok(heads) => heads,
                Err(conflict @ StoreError::Conflict { .. }) => {
                    return self.conflict_or_replay(&prepared, conflict).await;
                }
                Err(other) => return Err(other),
            };
            let plan = match prepared.plan(heads, &self.settings, crate::envelope::now()) {
                Ok(plan) => plan,
                Err(conflict @ StoreError::Conflict { .. }) => {
                    return self.conflict_or_replay(&prepared, conflict).await;
                }
                Err(other) => return Err(other),
            };
            match self.write(&plan).await {
                Ok(()) | Err(WriteRefusal::AlreadyCommitted) => {
                    return Ok(AppendResult::Written(plan.outcome()));
                }
                Err(WriteRefusal::DuplicateCommand(item)) => {
                    return self.resolve_duplicate(&prepared, item).await;
                }
                Err(WriteRefusal::StreamConflict(index, existing)) => {
                    let write = &prepared.writes()[index];
                    if write.expected == ExpectedVersion::Any && attempt < ANY_VERSION_ATTEMPTS {
                        continue;
                    }
                    return Err(self.conflict_after_write(write, existing).await?);
                }
                Err(WriteRefusal::Failed(error)) => return Err(error),
            }
        }
    }

    async fn read_documents(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<DocumentPage, StoreError> {
        let page = self.query_items(stream_id, range).await?;
        Ok(DocumentPage {
            documents: page
                .0
                .into_iter()
                .map(item::to_document)
                .collect::<Result<_, _>>()?,
            more: page.1,
        })
    }

    /// Decodes items straight into events, without the document in between: the hot path of
    /// every load.
    async fn read_raw(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<RawRead, StoreError> {
        let (items, more) = self.query_items(stream_id, range).await?;
        let events = items
            .into_iter()
            .map(|item| item::from_item(item, "event"))
            .collect::<Result<_, _>>()?;
        Ok(RawRead { events, more })
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
        let head: Head = item::from_item(item, "stream head")?;
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
            .map(|item| item::from_item(item, "command record"))
            .transpose()
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}
