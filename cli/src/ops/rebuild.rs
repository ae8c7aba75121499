//! `projections rebuild`: clear a projector's read-model tables and replay the events table
//! through the projector function itself, as its stream would deliver it, with progress
//! (events per second, ETA from the table's item count).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use eventfold::aws::error::from_sdk;
use eventfold::aws::item::from_item;
use eventfold::error::StoreError;
use eventfold::lambda::stream::{insert_record, stream_event};
use tokio::sync::Mutex;

use super::progress::Progress;
use super::service::ProjectorSpec;
use super::{OpsError, Target, confirm, say};

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events handed to the projector.
    pub events: u64,
    /// Invocations of the projector function.
    pub invocations: u64,
    /// Records sent again after the function reported them failed.
    pub retried: u64,
    /// How long the replay took.
    pub elapsed: Duration,
}

impl RebuildReport {
    fn merge(&mut self, other: &Self) {
        self.events += other.events;
        self.invocations += other.invocations;
        self.retried += other.retried;
    }
}

/// Attempts at a batch the function keeps failing before the rebuild stops.
const ATTEMPTS: u32 = 6;
/// The largest invocation payload sent (Lambda accepts 6 MB synchronously).
const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Items deleted from one table: a scan of its keys, `BatchWriteItem` deletes of 25, what
/// DynamoDB leaves unprocessed sent again.
pub async fn clear_table(target: &Target, logical_id: &str) -> Result<u64, OpsError> {
    let name = target.table(logical_id)?;
    let spec = target
        .template
        .table(logical_id)
        .ok_or_else(|| OpsError::new(format!("the template has no table {logical_id}")))?;
    let keys: Vec<&str> = std::iter::once(spec.hash_key.as_str())
        .chain(spec.range_key.as_deref())
        .collect();
    let dynamodb = &target.clients.dynamodb;
    let mut deleted = 0;
    let mut start = None;
    loop {
        let mut scan = dynamodb
            .scan()
            .table_name(name)
            .projection_expression(
                (0..keys.len())
                    .map(|i| format!("#k{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .set_exclusive_start_key(start);
        for (i, key) in keys.iter().enumerate() {
            scan = scan.expression_attribute_names(format!("#k{i}"), *key);
        }
        let page = scan.send().await.map_err(|e| from_sdk("Scan", name, e))?;
        for chunk in page.items().chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let key = item.clone();
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key))
                                .build()
                                .expect("a key is set"),
                        )
                        .build()
                })
                .collect();
            let mut pause = Duration::from_millis(50);
            while !requests.is_empty() {
                let output = dynamodb
                    .batch_write_item()
                    .request_items(name, requests.clone())
                    .send()
                    .await
                    .map_err(|e| from_sdk("BatchWriteItem", name, e))?;
                let left = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(name))
                    .unwrap_or_default();
                deleted += (requests.len() - left.len()) as u64;
                if !left.is_empty() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                requests = left;
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(deleted);
        }
    }
}

/// Clears every read-model table of the projector; the items deleted.
pub async fn clear(target: &Target, projector: &ProjectorSpec) -> Result<u64, OpsError> {
    let mut deleted = 0;
    for table in &projector.tables {
        deleted += clear_table(target, table).await?;
    }
    Ok(deleted)
}

/// The sequence number a record was given.
fn sequence_of(record: &EventRecord) -> &str {
    record.change.sequence_number.as_deref().unwrap_or_default()
}

/// One batch through the function until it accepts all of it: after a partial failure the
/// failed record and those behind it are sent again, as Lambda does.
async fn deliver(
    target: &Target,
    projector: &ProjectorSpec,
    mut records: Vec<EventRecord>,
    report: &mut RebuildReport,
) -> Result<(), OpsError> {
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let event = stream_event(records.clone())?;
        report.invocations += 1;
        let failed_at = match target
            .invoker
            .invoke::<_, DynamoDbEventResponse>(&projector.function, &event)
            .await
        {
            Ok(response) => match response.batch_item_failures.first() {
                None => return Ok(()),
                Some(failure) => {
                    let id = failure.item_identifier.as_deref().unwrap_or_default();
                    Some(
                        records
                            .iter()
                            .position(|r| sequence_of(r) == id)
                            .unwrap_or(0),
                    )
                }
            },
            Err(error) if attempt == ATTEMPTS => {
                return Err(OpsError::new(format!(
                    "{} failed {ATTEMPTS} times on a batch: {error}",
                    projector.function
                )));
            }
            Err(_) => None,
        };
        if attempt == ATTEMPTS {
            let first = failed_at.and_then(|at| records.get(at));
            return Err(OpsError::new(format!(
                "{} refused {} {ATTEMPTS} times; its log says why",
                projector.function,
                first.map_or_else(
                    || "a batch".to_owned(),
                    |r| format!("the event at sequence {}", sequence_of(r))
                )
            )));
        }
        if let Some(at) = failed_at {
            records.drain(..at);
        }
        report.retried += records.len() as u64;
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    Ok(())
}

/// Replays the whole events table through the projector function: a parallel scan, one worker
/// per segment (each sees a stream's events together, in version order), batches as its event
/// source mapping sends them. Safe while the stream consumer runs: the projector's conditional
/// checkpoints turn the overlap into duplicates.
pub async fn replay(
    target: &Target,
    projector: &ProjectorSpec,
    segments: i32,
    progress: Option<&Mutex<Progress>>,
) -> Result<RebuildReport, OpsError> {
    let started = Instant::now();
    let sequence = AtomicU64::new(0);
    let store = &target.store;
    let workers = (0..segments).map(|segment| {
        let sequence = &sequence;
        async move {
            let mut report = RebuildReport::default();
            let mut start = None;
            loop {
                let (items, next) = store.scan_segment(segment, segments, start).await?;
                let mut batch = Vec::new();
                let mut bytes = 0;
                for item in items {
                    let event = from_item(item, "event")?;
                    let record =
                        insert_record(&event, sequence.fetch_add(1, Ordering::Relaxed) + 1)?;
                    let size = serde_json::to_vec(&record).map_or(0, |v| v.len());
                    if !batch.is_empty()
                        && (batch.len() >= projector.batch_size || bytes + size > MAX_PAYLOAD_BYTES)
                    {
                        let count = batch.len() as u64;
                        deliver(target, projector, std::mem::take(&mut batch), &mut report).await?;
                        report.events += count;
                        advance(progress, count).await;
                        bytes = 0;
                    }
                    bytes += size;
                    batch.push(record);
                }
                if !batch.is_empty() {
                    let count = batch.len() as u64;
                    deliver(target, projector, batch, &mut report).await?;
                    report.events += count;
                    advance(progress, count).await;
                }
                start = next;
                if start.is_none() {
                    return Ok::<_, OpsError>(report);
                }
            }
        }
    });
    let mut total = RebuildReport::default();
    for report in futures::future::try_join_all(workers).await? {
        total.merge(&report);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn advance(progress: Option<&Mutex<Progress>>, count: u64) {
    if let Some(progress) = progress {
        progress.lock().await.advance(count);
    }
}

/// The events table's item count: DynamoDB's estimate (refreshed about every six hours),
/// enough for an ETA, and no more than that: without it (no `DescribeTable` permission, an
/// answer that does not parse) the rebuild shows progress without one.
async fn estimate(target: &Target) -> Option<u64> {
    match described_count(target).await {
        Ok(count) => count,
        Err(error) => {
            tracing::warn!(error = %super::describe(&error), "no item count for an ETA");
            None
        }
    }
}

async fn described_count(target: &Target) -> Result<Option<u64>, StoreError> {
    let events_table = target.store.events_table();
    let described = target
        .clients
        .dynamodb
        .describe_table()
        .table_name(events_table)
        .send()
        .await
        .map_err(|e| from_sdk("DescribeTable", events_table, e))?;
    Ok(described
        .table()
        .and_then(aws_sdk_dynamodb::types::TableDescription::item_count)
        .and_then(|n| u64::try_from(n).ok()))
}

/// `projections rebuild <name>`: asks, clears the read model, replays.
pub async fn rebuild(target: &Target, name: &str, yes: bool) -> Result<RebuildReport, OpsError> {
    let projector = target.service.projector(name)?.clone();
    let estimate = estimate(target).await;
    confirm(
        &format!(
            "rebuild clears {} of {} and replays every event through {}",
            projector.tables.join(", "),
            target.label,
            projector.function
        ),
        yes,
    )?;
    let cleared = clear(target, &projector).await?;
    let progress = Mutex::new(Progress::new(
        &format!("rebuild {}", projector.name),
        "events",
        estimate,
    ));
    let report = replay(target, &projector, 4, Some(&progress)).await?;
    let (_, took) = progress.into_inner().finish();
    say(&format!(
        "rebuilt {}: cleared {cleared} items, replayed {} events in {:.1} s ({:.0}/s) through \
         {} invocations of {}; {} records sent again",
        projector.name,
        report.events,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64().max(1e-3),
        report.invocations,
        projector.function,
        report.retried
    ));
    Ok(report)
}
