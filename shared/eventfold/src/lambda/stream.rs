//! DynamoDB Streams records of the events table, as both stream readers (the projector and the
//! publisher) receive them: decoded into events, and answered with the record Lambda must
//! retry from.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::{Value, json};

use crate::aws::item::{Item, from_document, from_item};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::stored;
use crate::upcast::Upcasters;

/// What a stream record holds for a consumer.
#[derive(Debug)]
pub enum StreamRecord {
    /// A newly appended event, decoded and upcast.
    Appended(Box<RecordedEvent>),
    /// Not an insert (events are never modified or removed by the application).
    Ignored(&'static str),
}

/// Decodes a DynamoDB Streams record of the events table.
///
/// An `INSERT` whose image does not decode is an error: the record is poison.
pub fn decode_stream_record(
    record: &EventRecord,
    upcasters: &Upcasters,
) -> Result<StreamRecord, StoreError> {
    match record.event_name.as_str() {
        "INSERT" => {
            let item: Item = record.change.new_image.clone().into();
            if item.is_empty() {
                return Err(StoreError::corrupt("INSERT record without a NEW_IMAGE"));
            }
            let event: RecordedEvent = from_item(item, "event")?;
            Ok(StreamRecord::Appended(Box::new(upcasters.upcast(event)?)))
        }
        "MODIFY" => Ok(StreamRecord::Ignored("MODIFY")),
        "REMOVE" => Ok(StreamRecord::Ignored("REMOVE")),
        _ => Ok(StreamRecord::Ignored("unknown record type")),
    }
}

/// The stream and version a record of the events table is keyed by, from its keys alone: where
/// a consumer parks a stream whose event does not decode. `None` when the keys are not the
/// events table's.
pub fn record_key(record: &EventRecord) -> Option<(StreamId, u64)> {
    #[derive(serde::Deserialize)]
    struct Key {
        stream_id: String,
        version: u64,
    }
    let key: Key = from_item(record.change.keys.clone().into(), "the record's keys").ok()?;
    Some((StreamId::parse(&key.stream_id).ok()?, key.version))
}

/// The response of a stream consumer: the earliest failed record, by sequence number, so that
/// Lambda retries from it (and only it and what follows).
pub fn batch_response(
    records: &[EventRecord],
    first_failure: Option<usize>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    if let Some(record) = first_failure.and_then(|index| records.get(index)) {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure
            .item_identifier
            .clone_from(&record.change.sequence_number);
        response.batch_item_failures.push(failure);
    }
    response
}

/// How long ago each inserted event of a batch occurred, in milliseconds: a consumer's lag,
/// for its metrics (from the event's own time, so it includes the stream's delay).
pub fn ages_millis(records: &[EventRecord]) -> Vec<f64> {
    let now = chrono::Utc::now();
    records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(
            |r| match r.change.new_image.get(crate::names::events::OCCURRED_AT) {
                Some(serde_dynamo::AttributeValue::S(text)) => {
                    crate::envelope::parse_timestamp(text)
                }
                _ => None,
            },
        )
        .map(|at| (now - at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect()
}

/// The `INSERT` record of an event at `sequence`, as Lambda delivers the events table's
/// stream: what an operator's rebuild or redrive hands a stream reader, from the table.
pub fn insert_record(event: &RecordedEvent, sequence: u64) -> Result<EventRecord, StoreError> {
    let item = from_document(&stored::encode(event)?)?;
    let image = serde_json::to_value(serde_dynamo::Item::from(item))
        .map_err(|e| StoreError::misuse(format!("an image is JSON: {e}")))?;
    let record = json!({
        "eventID": format!("e{sequence}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": event.occurred_at.timestamp() as f64,
            "Keys": {
                crate::names::events::STREAM_ID: {"S": event.stream_id.as_str()},
                crate::names::events::VERSION: {"N": event.version.to_string()},
            },
            "NewImage": image,
            "SequenceNumber": format!("{sequence:021}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/events/stream/replay",
    });
    serde_json::from_value(record)
        .map_err(|e| StoreError::misuse(format!("a stream record as Lambda sends it: {e}")))
}

/// A batch of records as one invocation's event.
pub fn stream_event(records: Vec<EventRecord>) -> Result<DynamoDbEvent, StoreError> {
    let records: Vec<Value> = records
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::misuse(format!("a record is JSON: {e}")))?;
    serde_json::from_value(json!({ "Records": records }))
        .map_err(|e| StoreError::misuse(format!("a batch as Lambda sends it: {e}")))
}
