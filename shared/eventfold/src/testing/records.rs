//! DynamoDB Streams records of the events table for tests (feature `lambda`): what Lambda
//! hands a stream reader, built from recorded events.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};

use crate::envelope::RecordedEvent;
use crate::lambda::stream::{insert_record, stream_event};

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
    let mut record = insert_record(event, sequence).expect("a recorded event makes a record");
    match change {
        Change::Insert => {}
        Change::Modify => record.event_name = "MODIFY".into(),
        Change::Remove => {
            record.event_name = "REMOVE".into();
            record.change.new_image = Default::default();
        }
    }
    record
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
    stream_event(records).expect("a batch as Lambda sends it")
}
