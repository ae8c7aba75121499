//! DynamoDB Streams records of the events table for tests (feature `lambda`): what Lambda
//! hands a stream reader, built from recorded events.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use serde_json::{Value, json};

use crate::aws::item::from_document;
use crate::envelope::RecordedEvent;
use crate::stored;

/// What happened to the item a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new event: the record carries its image.
    Insert,
    /// An event rewritten in place (never by the application).
    Modify,
    /// An event deleted (never by the application): the record carries no new image.
    Remove,
}

/// The stream record of `event`, at sequence number `sequence`, as Lambda delivers it.
pub fn stream_record(event: &RecordedEvent, sequence: u64, change: Change) -> EventRecord {
    let document = stored::encode(event).expect("a recorded event encodes");
    let item = from_document(&document).expect("a document is an item");
    let image = serde_json::to_value(serde_dynamo::Item::from(item)).expect("an image is JSON");
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_795_465_295.0,
        "Keys": {
            "stream_id": {"S": event.stream_id.as_str()},
            "version": {"N": event.version.to_string()},
        },
        "SequenceNumber": format!("{sequence:021}"),
        "SizeBytes": 100,
        "StreamViewType": "NEW_IMAGE",
    });
    if change != Change::Remove {
        dynamodb["NewImage"] = image;
    }
    let name = match change {
        Change::Insert => "INSERT",
        Change::Modify => "MODIFY",
        Change::Remove => "REMOVE",
    };
    serde_json::from_value(json!({
        "eventID": format!("e{sequence}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/events/stream/2026-11-23T00:00:00.000",
    }))
    .expect("a stream record as Lambda sends it")
}

/// The insert records of `events`, numbered from 1 in order.
pub fn inserts<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Vec<EventRecord> {
    events
        .into_iter()
        .zip(1..)
        .map(|(event, sequence)| stream_record(event, sequence, Change::Insert))
        .collect()
}

/// A batch of records as one invocation's event.
pub fn stream_batch(records: Vec<EventRecord>) -> DynamoDbEvent {
    let records: Vec<Value> = records
        .into_iter()
        .map(|r| serde_json::to_value(r).expect("a record is JSON"))
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a batch as Lambda sends it")
}
