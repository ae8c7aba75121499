//! Event source mappings, as Lambda runs them, for the local runner.
//!
//! DynamoDB Streams: every shard is polled (parents before children), records are batched by
//! `BatchSize` and `MaximumBatchingWindowInSeconds`, filtered by `FilterCriteria`, and delivered
//! in order. A function error retries the batch (bisecting it first if configured); a reported
//! item failure retries from that record; after `MaximumRetryAttempts` (or past
//! `MaximumRecordAgeInSeconds`) the batch is described to the on-failure queue, as AWS does,
//! and the shard moves on.
//!
//! SQS: messages are received in batches and delivered; the ones the function reports (or all,
//! on a function error) are left to reappear after the visibility timeout, so the queue's own
//! redrive policy moves a poison message to its dead-letter queue.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::local::filter;
use crate::local::functions::{QueueHandler, StreamHandler};
use crate::local::provision::Clients;
use crate::local::template::{QueueSource, StreamSource};

/// How often an idle shard or queue is polled.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often the stream is described to discover new shards.
const SHARD_DISCOVERY: Duration = Duration::from_secs(1);
/// Delay before the first retry of a failed batch; doubles up to `MAX_RETRY_DELAY`.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Counters of one mapping, for logs and tests.
#[derive(Debug, Default)]
pub struct MappingStats {
    pub invocations: AtomicU64,
    pub records_delivered: AtomicU64,
    pub records_filtered: AtomicU64,
    pub batches_dead_lettered: AtomicU64,
}

impl MappingStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A DynamoDB Streams event source mapping.
#[derive(Clone, Debug)]
pub struct StreamMapping {
    pub function: String,
    pub source: StreamSource,
    pub stream_arn: String,
    pub region: String,
    /// URL of the on-failure destination queue.
    pub on_failure_url: Option<String>,
    pub handler: Arc<dyn StreamHandler>,
    pub stats: Arc<MappingStats>,
}

/// A stream record as Lambda delivers it, with what the mapping needs to know about it.
#[derive(Clone, Debug)]
struct Delivered {
    json: Value,
    sequence_number: String,
    created: Option<f64>,
}

impl StreamMapping {
    /// Polls every shard until shutdown.
    pub async fn run(self, clients: Clients, mut shutdown: watch::Receiver<bool>) {
        let mapping = Arc::new(self);
        let mut started = BTreeSet::new();
        let finished = Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
        let mut workers = Vec::new();
        loop {
            match mapping.shards(&clients).await {
                Ok(shards) => {
                    let known: BTreeSet<String> = shards.keys().cloned().collect();
                    for (shard, parent) in shards {
                        if started.contains(&shard) {
                            continue;
                        }
                        let parent_pending = parent.as_ref().is_some_and(|p| {
                            known.contains(p) && !finished.lock().is_ok_and(|f| f.contains(p))
                        });
                        if parent_pending {
                            continue;
                        }
                        started.insert(shard.clone());
                        let worker = mapping.clone();
                        let clients = clients.clone();
                        let done = finished.clone();
                        let shutdown = shutdown.clone();
                        workers.push(tokio::spawn(async move {
                            worker.poll_shard(&clients, &shard, shutdown).await;
                            if let Ok(mut done) = done.lock() {
                                done.insert(shard);
                            }
                        }));
                    }
                }
                Err(error) => {
                    tracing::warn!(function = %mapping.function, %error, "describing the stream failed");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(SHARD_DISCOVERY) => {}
                _ = shutdown.changed() => break,
            }
        }
        for worker in workers {
            worker.abort();
        }
    }

    /// Shard ids and their parents.
    async fn shards(&self, clients: &Clients) -> Result<BTreeMap<String, Option<String>>, String> {
        let mut shards = BTreeMap::new();
        let mut start = None;
        loop {
            let output = clients
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
            let Some(description) = output.stream_description else {
                break;
            };
            for shard in description.shards.unwrap_or_default() {
                if let Some(id) = shard.shard_id {
                    shards.insert(id, shard.parent_shard_id);
                }
            }
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        Ok(shards)
    }

    async fn iterator(
        &self,
        clients: &Clients,
        shard: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, String> {
        let mut request = clients
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard);
        request = match after {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None if self.source.starting_position == "LATEST" => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        request
            .send()
            .await
            .map(|o| o.shard_iterator)
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())
    }

    /// Reads a shard to its end (or forever, while it is open).
    async fn poll_shard(&self, clients: &Clients, shard: &str, shutdown: watch::Receiver<bool>) {
        let mut last_sequence: Option<String> = None;
        let mut iterator = None;
        let mut pending: Vec<Delivered> = Vec::new();
        let mut batch_started: Option<Instant> = None;
        let window = Duration::from_secs(self.source.maximum_batching_window_seconds);
        while !*shutdown.borrow() {
            if iterator.is_none() {
                match self
                    .iterator(clients, shard, last_sequence.as_deref())
                    .await
                {
                    Ok(Some(it)) => iterator = Some(it),
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%shard, %error, "no shard iterator");
                        tokio::time::sleep(SHARD_DISCOVERY).await;
                        continue;
                    }
                }
            }
            let want = self
                .source
                .batch_size
                .saturating_sub(pending.len())
                .clamp(1, 1000);
            let output = clients
                .streams
                .get_records()
                .shard_iterator(iterator.clone().unwrap_or_default())
                .limit(i32::try_from(want).unwrap_or(1000))
                .send()
                .await;
            let (records, next) = match output {
                Ok(output) => (
                    output.records.unwrap_or_default(),
                    output.next_shard_iterator,
                ),
                Err(error) => {
                    tracing::warn!(%shard, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(error), "GetRecords failed; re-reading after the last record");
                    iterator = None;
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            let got_records = !records.is_empty();
            for record in records {
                let delivered = self.to_delivered(&record);
                last_sequence = Some(delivered.sequence_number.clone());
                if filter::matches_any(&self.source.filters, &delivered.json) {
                    batch_started.get_or_insert_with(Instant::now);
                    pending.push(delivered);
                } else {
                    MappingStats::add(&self.stats.records_filtered, 1);
                }
            }
            let closed = next.is_none();
            iterator = next;
            let full = pending.len() >= self.source.batch_size;
            let window_over = batch_started.is_some_and(|t| t.elapsed() >= window);
            if !pending.is_empty()
                && (full || window_over || closed || (!got_records && window.is_zero()))
            {
                let batch: Vec<Delivered> = std::mem::take(&mut pending);
                batch_started = None;
                self.deliver(clients, shard, batch).await;
            }
            if closed && pending.is_empty() {
                return;
            }
            if !got_records {
                // Lambda reads each shard about four times a second, whatever the window.
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    fn to_delivered(&self, record: &Record) -> Delivered {
        let change = record.dynamodb.as_ref();
        let image = |item: Option<
            &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| {
            item.map(|i| {
                serde_json::to_value(serde_dynamo::Item::from(i.clone())).unwrap_or(Value::Null)
            })
        };
        let created = change
            .and_then(|c| c.approximate_creation_date_time)
            .map(|t| t.as_secs_f64());
        let sequence_number = change
            .and_then(|c| c.sequence_number.clone())
            .unwrap_or_default();
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": created.unwrap_or_default(),
            "Keys": image(change.and_then(|c| c.keys.as_ref())).unwrap_or(json!({})),
            "SequenceNumber": sequence_number,
            "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or_default(),
            "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
        });
        if let Some(new_image) = image(change.and_then(|c| c.new_image.as_ref())) {
            dynamodb["NewImage"] = new_image;
        }
        if let Some(old_image) = image(change.and_then(|c| c.old_image.as_ref())) {
            dynamodb["OldImage"] = old_image;
        }
        Delivered {
            json: json!({
                "eventID": record.event_id,
                "eventName": record.event_name.as_ref().map(|n| n.as_str().to_owned()),
                "eventVersion": record.event_version.clone().unwrap_or_else(|| "1.1".into()),
                "eventSource": "aws:dynamodb",
                "awsRegion": record.aws_region.clone().unwrap_or_else(|| self.region.clone()),
                "dynamodb": dynamodb,
                "eventSourceARN": self.stream_arn,
            }),
            sequence_number,
            created,
        }
    }

    /// Delivers a batch with Lambda's retry, bisect and on-failure semantics.
    async fn deliver(&self, clients: &Clients, shard: &str, batch: Vec<Delivered>) {
        // Each entry: records still to deliver, and retries used on them.
        let mut queue: VecDeque<(Vec<Delivered>, i64)> = VecDeque::from([(batch, 0)]);
        while let Some((mut records, retries)) = queue.pop_front() {
            if self.source.maximum_record_age_seconds >= 0 {
                let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
                let max_age = self.source.maximum_record_age_seconds as f64;
                let expired = records
                    .iter()
                    .take_while(|r| r.created.is_some_and(|c| now - c > max_age))
                    .count();
                if expired > 0 {
                    let old: Vec<_> = records.drain(..expired).collect();
                    self.dead_letter(clients, shard, &old, "RecordAgeExceeded", retries)
                        .await;
                }
            }
            if records.is_empty() {
                continue;
            }
            let event: Result<DynamoDbEvent, _> = serde_json::from_value(
                json!({ "Records": records.iter().map(|r| &r.json).collect::<Vec<_>>() }),
            );
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::error!(%error, "stream records do not form a Lambda event");
                    self.dead_letter(clients, shard, &records, "RetryAttemptsExhausted", retries)
                        .await;
                    continue;
                }
            };
            MappingStats::add(&self.stats.invocations, 1);
            let failed_from = match self.handler.invoke(event).await {
                Ok(response) if self.source.report_batch_item_failures => {
                    response.batch_item_failures.first().map(|failure| {
                        failure
                            .item_identifier
                            .as_ref()
                            .and_then(|id| records.iter().position(|r| &r.sequence_number == id))
                            // An identifier that names no record fails the whole batch, as on AWS.
                            .unwrap_or(0)
                    })
                }
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(function = %self.function, %error, records = records.len(), "function error");
                    if self.source.bisect_on_error && records.len() > 1 {
                        let second = records.split_off(records.len() / 2);
                        queue.push_front((second, retries));
                        queue.push_front((records, retries));
                        continue;
                    }
                    Some(0)
                }
            };
            let Some(index) = failed_from else {
                MappingStats::add(&self.stats.records_delivered, records.len());
                continue;
            };
            MappingStats::add(&self.stats.records_delivered, index);
            let remaining = records.split_off(index);
            let limit = self.source.maximum_retry_attempts;
            if limit >= 0 && retries >= limit {
                self.dead_letter(
                    clients,
                    shard,
                    &remaining,
                    "RetryAttemptsExhausted",
                    retries,
                )
                .await;
                continue;
            }
            let shift = u32::try_from(retries.clamp(0, 5)).unwrap_or(5);
            tokio::time::sleep((FIRST_RETRY_DELAY * 2u32.pow(shift)).min(MAX_RETRY_DELAY)).await;
            queue.push_front((remaining, retries + 1));
        }
    }

    /// Describes a failed batch to the on-failure destination, in AWS's format.
    async fn dead_letter(
        &self,
        clients: &Clients,
        shard: &str,
        records: &[Delivered],
        condition: &str,
        retries: i64,
    ) {
        MappingStats::add(&self.stats.batches_dead_lettered, 1);
        let arrival = |r: Option<&Delivered>| {
            r.and_then(|r| r.created)
                .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
                .map(|t| t.to_rfc3339())
        };
        let description = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": format!("arn:aws:lambda:{}:000000000000:function:{}", self.region, self.function),
                "condition": condition,
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": records.first().map(|r| r.sequence_number.clone()),
                "endSequenceNumber": records.last().map(|r| r.sequence_number.clone()),
                "approximateArrivalOfFirstRecord": arrival(records.first()),
                "approximateArrivalOfLastRecord": arrival(records.last()),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            },
        });
        tracing::error!(function = %self.function, %condition, records = records.len(), "batch sent to the on-failure destination");
        let Some(url) = &self.on_failure_url else {
            return;
        };
        if let Err(error) = clients
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(description.to_string())
            .send()
            .await
        {
            tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "on-failure destination refused the record");
        }
    }
}

/// An SQS event source mapping.
#[derive(Clone, Debug)]
pub struct QueueMapping {
    pub function: String,
    pub source: QueueSource,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub handler: Arc<dyn QueueHandler>,
    pub stats: Arc<MappingStats>,
}

impl QueueMapping {
    /// Receives and delivers until shutdown.
    pub async fn run(self, clients: Clients, shutdown: watch::Receiver<bool>) {
        let window = Duration::from_secs(self.source.maximum_batching_window_seconds);
        while !*shutdown.borrow() {
            let mut messages = Vec::new();
            let started = Instant::now();
            while messages.len() < self.source.batch_size {
                let want = (self.source.batch_size - messages.len()).min(10);
                let received = clients
                    .sqs
                    .receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(i32::try_from(want).unwrap_or(10))
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await;
                match received {
                    Ok(output) => {
                        let got = output.messages.unwrap_or_default();
                        let empty = got.is_empty();
                        messages.extend(got);
                        if empty || started.elapsed() >= window {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "ReceiveMessage failed");
                        tokio::time::sleep(IDLE_POLL).await;
                        break;
                    }
                }
                if *shutdown.borrow() {
                    return;
                }
            }
            if messages.is_empty() {
                continue;
            }
            self.deliver(&clients, messages).await;
        }
    }

    async fn deliver(&self, clients: &Clients, messages: Vec<aws_sdk_sqs::types::Message>) {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        let event: SqsEvent = match serde_json::from_value(json!({ "Records": records })) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "messages do not form a Lambda event");
                return;
            }
        };
        MappingStats::add(&self.stats.invocations, 1);
        let failed: BTreeSet<String> = match self.handler.invoke(event).await {
            Ok(response) if self.source.report_batch_item_failures => response
                .batch_item_failures
                .into_iter()
                .filter_map(|f| f.item_identifier)
                .collect(),
            Ok(_) => BTreeSet::new(),
            Err(error) => {
                tracing::warn!(function = %self.function, %error, "function error; the batch returns to the queue");
                return;
            }
        };
        let done: Vec<_> = messages
            .iter()
            .filter(|m| m.message_id.as_ref().is_none_or(|id| !failed.contains(id)))
            .collect();
        MappingStats::add(&self.stats.records_delivered, done.len());
        for chunk in done.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            if let Err(error) = clients
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "DeleteMessageBatch failed; messages will be redelivered");
            }
        }
    }
}
