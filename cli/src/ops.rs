//! Operator tasks: rebuild the accounts projection from the events table, redrive the
//! projector's dead-lettered batches, and snapshot existing streams.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use bank::read_model::AccountsProjection;
use eventfold::StreamId;
use eventfold::command::CommandService;
use eventfold::error::StoreError;
use eventfold::names::events;
use eventfold::projection::{BatchReport, Projector, StreamProjector, project_items};
use eventfold::snapshot::{DynamoSnapshots, SnapshotOutcome};
use eventfold::store::{DynamoStore, EventStore, ReadRange};
use serde::Deserialize;

use crate::local::provision::{Clients, Resources};
use crate::local::template::Template;

/// What a rebuild did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Outcomes of the events replayed.
    pub batch: BatchReport,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// Replays the whole events table into a projection: a parallel scan, one worker per segment
/// (each sees its streams in version order, a stream's consecutive events at once). Safe while
/// the stream consumer runs: the conditional checkpoint turns the overlap into duplicates.
pub async fn rebuild(
    store: &DynamoStore,
    projector: &dyn StreamProjector,
    segments: i32,
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let workers = (0..segments).map(|segment| async move {
        let mut report = BatchReport::default();
        let mut start = None;
        loop {
            let (items, next) = store.scan_segment(segment, segments, start).await?;
            report.merge(&project_items(projector, items).await?);
            start = next;
            if start.is_none() {
                return Ok::<_, StoreError>(report);
            }
        }
    });
    let mut total = RebuildReport::default();
    for report in futures::future::try_join_all(workers).await? {
        total.batch.merge(&report);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// What a redrive did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveReport {
    pub messages: usize,
    pub redriven: usize,
    pub events: usize,
    /// Messages left in the queue (their stream records expired, or applying failed again).
    pub left: usize,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

#[derive(Debug, Deserialize)]
struct FailureDescription {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
}

/// Sequence numbers are decimal strings of varying width: compare them as numbers.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The (stream, version) keys of the records a failed batch covered, read back from the stream.
async fn batch_keys(
    clients: &Clients,
    batch: &BatchInfo,
) -> Result<BTreeSet<(String, u64)>, String> {
    let mut iterator = clients
        .streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?
        .shard_iterator;
    let mut keys = BTreeSet::new();
    while let Some(current) = iterator {
        let output = clients
            .streams
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
        let records = output.records.unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for record in records {
            let Some(change) = record.dynamodb else {
                continue;
            };
            let sequence = change.sequence_number.unwrap_or_default();
            if sequence_order(&sequence, &batch.end_sequence_number).is_gt() {
                return Ok(keys);
            }
            let keys_map = change.keys.unwrap_or_default();
            let stream = keys_map
                .get(events::STREAM_ID)
                .and_then(|v| v.as_s().ok())
                .cloned();
            let version = keys_map
                .get(events::VERSION)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok());
            if let (Some(stream), Some(version)) = (stream, version) {
                keys.insert((stream, version));
            }
            if sequence_order(&sequence, &batch.end_sequence_number).is_eq() {
                return Ok(keys);
            }
        }
        iterator = output.next_shard_iterator;
    }
    Ok(keys)
}

/// Re-applies every dead-lettered batch of the projector: finds the events each one covered,
/// reads them from the events table (not the stream, which keeps only 24 hours), projects
/// them, and deletes the message only once all of its events are applied.
pub async fn redrive(
    clients: &Clients,
    dead_letter_url: &str,
    store: &dyn EventStore,
    projector: &dyn StreamProjector,
) -> Result<RedriveReport, String> {
    let mut report = RedriveReport::default();
    let mut seen = BTreeSet::new();
    loop {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(dead_letter_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(report);
        }
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            if !seen.insert(id) {
                // Came back after a failure in this run: it stays for the next run.
                return Ok(report);
            }
            report.messages += 1;
            match redrive_message(
                clients,
                store,
                projector,
                message.body.as_deref().unwrap_or_default(),
            )
            .await
            {
                Ok(applied) => {
                    report.events += applied;
                    clients
                        .sqs
                        .delete_message()
                        .queue_url(dead_letter_url)
                        .receipt_handle(message.receipt_handle.unwrap_or_default())
                        .send()
                        .await
                        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
                    report.redriven += 1;
                }
                Err(error) => {
                    tracing::error!(%error, "redrive failed; the message stays in the queue");
                    report.left += 1;
                }
            }
        }
    }
}

async fn redrive_message(
    clients: &Clients,
    store: &dyn EventStore,
    projector: &dyn StreamProjector,
    body: &str,
) -> Result<usize, String> {
    let description: FailureDescription =
        serde_json::from_str(body).map_err(|e| format!("not an on-failure record: {e}"))?;
    let keys = batch_keys(clients, &description.batch).await?;
    if keys.is_empty() {
        return Err("the batch's stream records are gone (older than 24 hours): rebuild the projection instead".into());
    }
    let mut applied = 0;
    for (stream, version) in keys {
        let stream_id = StreamId::parse(&stream).map_err(|e| e.to_string())?;
        let raw = store
            .read_raw(&stream_id, ReadRange::from(version).to(version))
            .await
            .map_err(|e| e.to_string())?;
        let events = store.upcast_all(raw.events).map_err(|e| e.to_string())?;
        projector
            .project_stream(&events)
            .await
            .into_result()
            .map_err(|e| e.to_string())?;
        applied += events.len();
    }
    Ok(applied)
}

/// What to operate on: a deployed stack (names from `EVENTS_TABLE`, … in the environment) or
/// the local environment (the template's logical ids under a prefix).
#[derive(Clone, Debug)]
pub struct OpsTarget {
    pub clients: Clients,
    pub store: Arc<DynamoStore>,
    pub accounts_table: String,
    pub snapshots_table: String,
    pub projector_dead_letter_url: Option<String>,
}

impl OpsTarget {
    /// Resolves names from the environment if `EVENTS_TABLE` is set, else from the template.
    pub async fn resolve(prefix: &str) -> Result<Self, String> {
        let sdk = eventfold::aws::load_sdk_config().await;
        let clients = Clients::new(&sdk);
        let config = eventfold::config::Config::from_env().map_err(|e| e.to_string())?;
        let accounts_from_env = config
            .var(bank::names::env::ACCOUNTS_TABLE)
            .unwrap_or_default()
            .to_owned();
        let (events_table, accounts_table, snapshots_table, dlq_name) =
            if config.events_table.is_empty() {
                let template = Template::load_default().map_err(|e| e.to_string())?;
                let name = |id: &str| {
                    let fifo = template.queue(id).is_some_and(|q| q.fifo);
                    crate::local::provision::physical_name(prefix, id, fifo)
                };
                (
                    name("EventsTable"),
                    name("AccountsTable"),
                    name("SnapshotsTable"),
                    Some(name("ProjectorDeadLetterQueue")),
                )
            } else {
                (
                    config.events_table.clone(),
                    accounts_from_env,
                    config.snapshots_table.clone(),
                    std::env::var("PROJECTOR_DLQ_NAME").ok(),
                )
            };
        let projector_dead_letter_url = match dlq_name {
            Some(name) => clients
                .sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .ok()
                .and_then(|o| o.queue_url),
            None => None,
        };
        // Rebuilds, redrives and snapshots never append with command ids.
        let store = Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            events_table,
            config.store.clone(),
        ));
        Ok(Self {
            clients,
            store,
            accounts_table,
            snapshots_table,
            projector_dead_letter_url,
        })
    }

    /// The projector writing this target's read model.
    pub fn projector(&self) -> Projector<AccountsProjection> {
        bank::accounts_projector(
            Arc::new(bank::accounts_read_model(
                self.clients.dynamodb.clone(),
                &self.accounts_table,
            )),
            self.store.clone(),
        )
    }
}

/// Resources of a provisioned environment as an operator target (tests, the local runner).
pub fn target_for(
    resources: &Resources,
    clients: &Clients,
    settings: eventfold::StoreSettings,
) -> OpsTarget {
    OpsTarget {
        clients: clients.clone(),
        store: Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            resources.table("EventsTable"),
            settings,
        )),
        accounts_table: resources.table("AccountsTable").to_owned(),
        snapshots_table: resources.table("SnapshotsTable").to_owned(),
        projector_dead_letter_url: resources
            .queue("ProjectorDeadLetterQueue")
            .map(|q| q.url.clone()),
    }
}

/// Snapshots one stream (`Account-<id>`) or every stream of a category (`Account`).
pub async fn snapshot_backfill(target: &OpsTarget, what: &str) -> Result<(usize, usize), String> {
    let snapshotter = bank::snapshotter(CommandService::new(target.store.clone()).with_snapshots(
        Arc::new(DynamoSnapshots::new(
            target.clients.dynamodb.clone(),
            &target.snapshots_table,
        )),
    ));
    let streams = if what.contains('-') {
        vec![StreamId::parse(what).map_err(|e| e.to_string())?]
    } else {
        target
            .store
            .streams_in_category(what)
            .await
            .map_err(|e| e.to_string())?
    };
    let mut written = 0;
    for stream in &streams {
        if let SnapshotOutcome::Written(_) = snapshotter
            .snapshot(stream)
            .await
            .map_err(|e| e.to_string())?
        {
            written += 1;
        }
    }
    Ok((streams.len(), written))
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// `eventfold rebuild [--prefix P]`: clears the projection and replays the events table.
pub async fn rebuild_command(prefix: &str) -> Result<(), String> {
    let target = OpsTarget::resolve(prefix).await?;
    let projector = target.projector();
    let cleared = projector
        .read_model()
        .clear()
        .await
        .map_err(|e| e.to_string())?;
    let report = rebuild(&target.store, &projector, 4)
        .await
        .map_err(|e| e.to_string())?;
    let batch = &report.batch;
    say(&format!(
        "cleared {cleared} rows; replayed {} events in {:?}: {} applied, {} duplicates, {} repaired, {} skipped",
        batch.events(),
        report.elapsed,
        batch.applied,
        batch.duplicates,
        batch.repaired,
        batch.skipped
    ));
    Ok(())
}

/// `eventfold redrive [--prefix P]`: re-applies the projector's dead-lettered batches.
pub async fn redrive_command(prefix: &str) -> Result<(), String> {
    let target = OpsTarget::resolve(prefix).await?;
    let url = target
        .projector_dead_letter_url
        .clone()
        .ok_or("no projector dead-letter queue found (set PROJECTOR_DLQ_NAME against a stack)")?;
    let report = redrive(
        &target.clients,
        &url,
        target.store.as_ref(),
        &target.projector(),
    )
    .await?;
    say(&format!(
        "{} messages: {} redriven ({} events applied), {} left in the queue",
        report.messages, report.redriven, report.events, report.left
    ));
    if report.left > 0 {
        return Err(format!("{} messages could not be redriven", report.left));
    }
    Ok(())
}

/// `eventfold snapshot <Category|StreamId> [--prefix P]`.
pub async fn snapshot_command(prefix: &str, what: Option<&str>) -> Result<(), String> {
    let what = what.ok_or("name a category (Account) or a stream (Account-<id>)")?;
    let target = OpsTarget::resolve(prefix).await?;
    let (streams, written) = snapshot_backfill(&target, what).await?;
    say(&format!(
        "{streams} streams; {written} snapshots written (the rest were current)"
    ));
    Ok(())
}
