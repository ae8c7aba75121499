//! Validation, sizing and encoding of an append, shared by every backend.
//!
//! `validate` runs before any I/O; `build` turns a request plus the streams' current heads into
//! the exact items to write, so both backends write byte-identical events.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{
    AppendOutcome, AppendRequest, CommandRecord, DYNAMODB_MAX_ITEM_BYTES,
    DYNAMODB_MAX_TRANSACTION_BYTES, DYNAMODB_MAX_TRANSACTION_ITEMS, StoreSettings, WrittenStream,
};
use crate::chain::chain_hash;
use crate::codec::{self, Item, item_size};
use crate::envelope::{NewEvent, RecordedEvent, StreamHead};
use crate::error::{CurrentVersion, StoreError};
use crate::ids::{StreamId, validate_event_type};

/// A version wider than any real one, so provisional sizes are upper bounds.
const PROVISIONAL_VERSION: u64 = 999_999_999_999_999;

/// The events and items planned for one stream.
#[derive(Debug)]
pub(crate) struct PlannedWrite {
    pub(crate) stream_id: StreamId,
    pub(crate) events: Vec<RecordedEvent>,
    pub(crate) items: Vec<Item>,
}

/// Everything one append will write.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) writes: Vec<PlannedWrite>,
    pub(crate) command: Option<(CommandRecord, Item)>,
}

impl Plan {
    pub fn outcome(&self) -> AppendOutcome {
        AppendOutcome {
            streams: self.written_streams(),
            heads: self
                .writes
                .iter()
                .filter_map(|w| w.events.last().map(RecordedEvent::head))
                .collect(),
        }
    }

    fn written_streams(&self) -> Vec<WrittenStream> {
        self.writes
            .iter()
            .map(|w| WrittenStream {
                stream_id: w.stream_id.clone(),
                first_version: w.events.first().map_or(0, |e| e.version),
                last_version: w.events.last().map_or(0, |e| e.version),
            })
            .collect()
    }

    pub fn item_count(&self) -> usize {
        self.writes.iter().map(|w| w.items.len()).sum::<usize>()
            + usize::from(self.command.is_some())
    }
}

/// The largest event item a store accepts under `settings` (never above DynamoDB's limit).
pub(crate) fn max_event_bytes(settings: &StoreSettings) -> usize {
    settings.max_event_bytes.min(DYNAMODB_MAX_ITEM_BYTES)
}

/// Checks ids, event types, emptiness, item counts and sizes: everything knowable before I/O.
pub(crate) fn validate(
    request: &AppendRequest,
    settings: &StoreSettings,
) -> Result<(), StoreError> {
    if request.writes.is_empty() {
        return Err(StoreError::misuse("an append needs at least one stream"));
    }
    let mut seen = HashSet::new();
    let mut count = usize::from(request.command.is_some());
    for write in &request.writes {
        if write.events.is_empty() {
            return Err(StoreError::misuse(format!(
                "the append to {} has no events",
                write.stream_id
            )));
        }
        if !seen.insert(write.stream_id.as_str()) {
            return Err(StoreError::misuse(format!(
                "{} appears twice in one append",
                write.stream_id
            )));
        }
        for event in &write.events {
            validate_event_type(&event.event_type)
                .map_err(|e| StoreError::misuse(e.to_string()))?;
        }
        count += write.events.len();
    }
    if count > DYNAMODB_MAX_TRANSACTION_ITEMS {
        return Err(StoreError::TooLarge {
            what: "items in one transaction (events plus the command record)",
            actual: count,
            limit: DYNAMODB_MAX_TRANSACTION_ITEMS,
        });
    }
    // Encode with the widest version and a full-length chain: real items are never larger.
    let provisional_head = |stream_id: &StreamId| {
        StreamHead::new(stream_id.clone(), PROVISIONAL_VERSION, "0".repeat(64))
    };
    let heads = request
        .writes
        .iter()
        .map(|w| Some(provisional_head(&w.stream_id)))
        .collect();
    let mut provisional = request.clone();
    for write in &mut provisional.writes {
        write.expected = super::ExpectedVersion::Any;
    }
    build(&provisional, heads, settings, crate::envelope::now())?;
    Ok(())
}

/// Builds the items to write given each stream's current head (`None`: the stream is absent).
///
/// Fails with `Conflict` if a head does not satisfy its write's expected version, and with
/// `TooLarge` if an item or the transaction is over its limit.
pub(crate) fn build(
    request: &AppendRequest,
    heads: Vec<Option<StreamHead>>,
    settings: &StoreSettings,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let max_item = max_event_bytes(settings);
    let mut total_bytes = 0usize;
    let mut writes = Vec::with_capacity(request.writes.len());
    for (write, head) in request.writes.iter().zip(heads) {
        let actual = head.as_ref().map_or(0, StreamHead::version);
        if !write.expected.admits(actual) {
            return Err(StoreError::Conflict {
                stream_id: write.stream_id.clone(),
                expected: write.expected,
                actual: head.as_ref().map_or(CurrentVersion::NoStream, |h| {
                    CurrentVersion::At(h.version())
                }),
                next: None,
            });
        }
        let mut previous_chain = head.map(|h| h.chain().to_owned()).unwrap_or_default();
        let last_version = actual + write.events.len() as u64;
        let snapshot_due =
            settings
                .snapshot_policy
                .crossed(write.stream_id.category(), actual, last_version);
        let mut events = Vec::with_capacity(write.events.len());
        let mut items = Vec::with_capacity(write.events.len());
        for (offset, new_event) in (1u64..).zip(&write.events) {
            let version = actual + offset;
            let mut event = record(&write.stream_id, version, new_event)?;
            event.snapshot_due = snapshot_due && version == last_version;
            event.chain = chain_hash(&previous_chain, &event);
            previous_chain.clone_from(&event.chain);
            let item = codec::encode_event(&event)?;
            let size = item_size(&item);
            if size > max_item {
                return Err(StoreError::TooLarge {
                    what: "event item (envelope plus payload)",
                    actual: size,
                    limit: max_item,
                });
            }
            total_bytes += size;
            events.push(event);
            items.push(item);
        }
        writes.push(PlannedWrite {
            stream_id: write.stream_id.clone(),
            events,
            items,
        });
    }
    let mut plan = Plan {
        writes,
        command: None,
    };
    if let Some(command) = &request.command {
        let record = CommandRecord {
            command_id: command.command_id.clone(),
            request_hash: command.request_hash.clone(),
            streams: plan.written_streams(),
            receipt: command.receipt.clone(),
            recorded_at: now,
            expires_at: (now + settings.command_ttl).timestamp(),
        };
        let item = codec::to_item(&record)?;
        let size = item_size(&item);
        if size > DYNAMODB_MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge {
                what: "command record",
                actual: size,
                limit: DYNAMODB_MAX_ITEM_BYTES,
            });
        }
        total_bytes += size;
        plan.command = Some((record, item));
    }
    if total_bytes > DYNAMODB_MAX_TRANSACTION_BYTES {
        return Err(StoreError::TooLarge {
            what: "transaction bytes",
            actual: total_bytes,
            limit: DYNAMODB_MAX_TRANSACTION_BYTES,
        });
    }
    Ok(plan)
}

fn record(
    stream_id: &StreamId,
    version: u64,
    event: &NewEvent,
) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        stream_id: stream_id.clone(),
        version,
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        occurred_at: crate::envelope::at_stored_precision(event.occurred_at),
        metadata: event.metadata.clone(),
        payload: codec::normalize_payload(event.payload.clone())?,
        chain: String::new(),
        snapshot_due: false,
    })
}
