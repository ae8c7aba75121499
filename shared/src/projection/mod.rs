//! Projections fed by DynamoDB Streams: decoding stream records and the accounts read model.

pub mod accounts;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use crate::codec::{self, Item};
use crate::envelope::RecordedEvent;
use crate::error::StoreError;
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
            Ok(StreamRecord::Appended(Box::new(codec::decode_event(
                item, upcasters,
            )?)))
        }
        "MODIFY" => Ok(StreamRecord::Ignored("MODIFY")),
        "REMOVE" => Ok(StreamRecord::Ignored("REMOVE")),
        _ => Ok(StreamRecord::Ignored("unknown record type")),
    }
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
