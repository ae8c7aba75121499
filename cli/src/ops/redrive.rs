//! On-failure records of the stream readers: which events a dead-lettered batch covered,
//! found by reading the batch's sequence range back from the change stream, then read from the
//! events table (the stream keeps records 24 hours; the table keeps events for ever).

use std::collections::BTreeSet;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventfold::names::events;
use eventfold::store::{EventStore, ReadRange};
use eventfold::{RecordedEvent, StreamId};
use serde::Deserialize;

use crate::local::provision::Clients;

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

/// The events a stream reader's on-failure record covers, read from the events table as
/// stored (the function upcasts them itself), in stream and version order.
pub async fn events_of_failed_batch(
    clients: &Clients,
    store: &dyn EventStore,
    body: &str,
) -> Result<Vec<RecordedEvent>, String> {
    let description: FailureDescription =
        serde_json::from_str(body).map_err(|e| format!("not an on-failure record: {e}"))?;
    let keys = batch_keys(clients, &description.batch).await?;
    if keys.is_empty() {
        return Err(
            "the batch's stream records are gone (older than 24 hours): rebuild the projection \
             instead"
                .into(),
        );
    }
    let mut covered = Vec::with_capacity(keys.len());
    for (stream, version) in keys {
        let stream_id = StreamId::parse(&stream).map_err(|e| e.to_string())?;
        let raw = store
            .read_raw(&stream_id, ReadRange::from(version).to(version))
            .await
            .map_err(|e| e.to_string())?;
        covered.extend(raw.events);
    }
    Ok(covered)
}
