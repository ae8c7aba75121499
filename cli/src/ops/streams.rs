//! `streams read` and `streams tail`: a stream's events, or the events table's change stream
//! followed live.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventfold::aws::error::from_sdk;
use eventfold::aws::item::{Item, from_item};
use eventfold::envelope::format_timestamp;
use eventfold::store::{AsOf, EventStore};
use eventfold::{RecordedEvent, StreamId};

use super::{OpsError, Target, say};

/// How a stream is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One aligned line per event.
    Pretty,
    /// One JSON document per line.
    Json,
}

/// One event as the operator sees it.
pub fn show(event: &RecordedEvent, format: Format) {
    match format {
        Format::Json => say(&serde_json::to_string(event).unwrap_or_default()),
        Format::Pretty => say(&format!(
            "{:<40} {:>6}  {}  {:<22} {}",
            event.stream_id.as_str(),
            event.version,
            format_timestamp(&event.occurred_at),
            event.event_type,
            event.payload
        )),
    }
}

/// `as_of`: a version (digits) or an RFC 3339 instant.
pub fn parse_as_of(text: &str) -> Result<AsOf, OpsError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(AsOf::Version)
            .map_err(|_| OpsError(format!("--as-of {text}: not a version")));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| AsOf::Time(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            OpsError(format!(
                "--as-of {text}: neither a version nor an RFC 3339 instant"
            ))
        })
}

/// Prints a stream's events from version `from`, or as of a version or instant.
pub async fn read(
    target: &Target,
    stream: &str,
    from: u64,
    as_of: Option<AsOf>,
    format: Format,
) -> Result<usize, OpsError> {
    let stream_id = StreamId::parse(stream).map_err(|e| OpsError(e.to_string()))?;
    let events = match as_of {
        Some(as_of) => target.store.read_as_of(&stream_id, as_of).await?,
        None => target.store.read_all(&stream_id, from).await?,
    };
    if events.is_empty() && target.store.read_head(&stream_id).await?.is_none() {
        return Err(OpsError(format!(
            "no stream {stream_id} in {}",
            target.label
        )));
    }
    for event in &events {
        show(event, format);
    }
    Ok(events.len())
}

/// Follows the events table's change stream from now (or its start), printing each new event
/// (of `category`, if given) until `max` have been shown or Ctrl-C.
pub async fn tail(
    target: &Target,
    category: Option<&str>,
    format: Format,
    from_start: bool,
    max: Option<usize>,
) -> Result<usize, OpsError> {
    let table = target.table("EventsTable")?;
    let described = target
        .clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| from_sdk("DescribeTable", table, e))?;
    let stream_arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| OpsError(format!("{table} has no change stream")))?
        .to_owned();
    let streams = &target.clients.streams;
    let mut iterators: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut shown = 0;
    let position = if from_start {
        ShardIteratorType::TrimHorizon
    } else {
        ShardIteratorType::Latest
    };
    loop {
        // New shards appear as old ones close: look again on every round.
        let shards = streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeStream", &stream_arn, e))?;
        for shard in shards
            .stream_description()
            .map(aws_sdk_dynamodbstreams::types::StreamDescription::shards)
            .unwrap_or_default()
        {
            let Some(id) = shard.shard_id() else { continue };
            if iterators.contains_key(id) {
                continue;
            }
            // A shard born after the tail started is read from its beginning.
            let from = if iterators.is_empty() {
                position.clone()
            } else {
                ShardIteratorType::TrimHorizon
            };
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(&stream_arn)
                .shard_id(id)
                .shard_iterator_type(from)
                .send()
                .await
                .map_err(|e| from_sdk("GetShardIterator", &stream_arn, e))?
                .shard_iterator;
            iterators.insert(id.to_owned(), iterator);
        }
        for iterator in iterators.values_mut() {
            let Some(current) = iterator.take() else {
                continue;
            };
            let output = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| from_sdk("GetRecords", &stream_arn, e))?;
            for record in output.records() {
                let Some(image) = record.dynamodb().and_then(|d| d.new_image()) else {
                    continue;
                };
                let item: Item = serde_dynamo::Item::from(image.clone()).into();
                let Ok(event) = from_item::<RecordedEvent>(item, "event") else {
                    continue;
                };
                if category.is_some_and(|c| c != event.stream_id.category()) {
                    continue;
                }
                show(&event, format);
                shown += 1;
                if max.is_some_and(|m| shown >= m) {
                    return Ok(shown);
                }
            }
            *iterator = output.next_shard_iterator;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
