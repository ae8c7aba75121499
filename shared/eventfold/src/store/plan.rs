//! Validation, sizing and encoding of an append, shared by every store.
//!
//! [`PreparedAppend::new`] runs before any I/O and does the costly part once: ids and event
//! types checked, payloads normalised, each event encoded and sized, item counts and the
//! worst-case sizes held against DynamoDB's limits. [`PreparedAppend::plan`] then turns it into
//! the exact documents to write given the streams' heads, once per attempt: it only numbers the
//! events, marks the snapshot-due one and chains them, because that is all that changes when an
//! append is tried again after its head moved. Both stores write what the plan says, so they
//! write the same events byte for byte.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    AppendOutcome, AppendRequest, CommandRecord, NewCommand, StoreSettings, WrittenStream,
};
use crate::chain::{canonical_prefix, chain_after};
use crate::envelope::{RecordedEvent, StreamHead, at_stored_precision};
use crate::error::StoreError;
use crate::ids::{StreamId, validate_event_type};
use crate::limits::{MAX_ITEM_BYTES, MAX_TRANSACTION_BYTES, MAX_TRANSACTION_ITEMS};
use crate::names::events;
use crate::stored::{self, Document, digits_size};
use crate::version::{CurrentVersion, ExpectedVersion};

/// The widest version a stream can reach, for the worst-case size checked before I/O.
const WIDEST_VERSION: u64 = 999_999_999_999_999;
/// A chain value: 64 hex digits.
const CHAIN_LEN: usize = 64;

/// One event, encoded once: everything but its version, chain and snapshot mark.
#[derive(Debug)]
struct PreparedEvent {
    /// Version 0, empty chain, not snapshot-due: the three fields set per attempt.
    event: RecordedEvent,
    /// The event's document without those three fields.
    document: Document,
    /// The canonical bytes up to the snapshot mark (see [`canonical_prefix`]).
    canonical_prefix: String,
    /// The document's size without the three fields.
    size: usize,
}

impl PreparedEvent {
    /// The size of the item once numbered and chained.
    fn size_at(&self, version: u64, snapshot_due: bool) -> usize {
        self.size
            + events::VERSION.len()
            + digits_size(&version.to_string())
            + events::CHAIN.len()
            + CHAIN_LEN
            + if snapshot_due {
                events::SNAPSHOT_DUE.len() + 1
            } else {
                0
            }
    }
}

/// One stream's part of a prepared append.
#[derive(Debug)]
pub(crate) struct PreparedWrite {
    pub(crate) stream_id: StreamId,
    pub(crate) expected: ExpectedVersion,
    pub(crate) head: Option<StreamHead>,
    events: Vec<PreparedEvent>,
}

/// An append validated and encoded, ready to be planned against the streams' heads.
#[derive(Debug)]
pub struct PreparedAppend {
    writes: Vec<PreparedWrite>,
    command: Option<NewCommand>,
}

/// The events and documents planned for one stream.
#[derive(Debug)]
pub(crate) struct PlannedWrite {
    pub(crate) stream_id: StreamId,
    pub(crate) events: Vec<RecordedEvent>,
    pub(crate) documents: Vec<Document>,
}

/// Everything one attempt of an append writes.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) writes: Vec<PlannedWrite>,
    pub(crate) command: Option<(CommandRecord, Document)>,
}

impl Plan {
    pub(crate) fn outcome(&self) -> AppendOutcome {
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

    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn item_count(&self) -> usize {
        self.writes.iter().map(|w| w.documents.len()).sum::<usize>()
            + usize::from(self.command.is_some())
    }
}

impl PreparedAppend {
    /// Checks ids, event types, emptiness, item counts and worst-case sizes, and encodes every
    /// event: everything knowable before I/O.
    pub fn new(request: AppendRequest, settings: &StoreSettings) -> Result<Self, StoreError> {
        if request.writes.is_empty() {
            return Err(StoreError::misuse("an append needs at least one stream"));
        }
        let max_item = settings.event_item_limit();
        let mut seen = HashSet::new();
        let mut count = usize::from(request.command.is_some());
        let mut total_bytes = 0usize;
        let mut writes = Vec::with_capacity(request.writes.len());
        for write in request.writes {
            if write.events.is_empty() {
                return Err(StoreError::misuse(format!(
                    "the append to {} has no events",
                    write.stream_id
                )));
            }
            if !seen.insert(write.stream_id.clone()) {
                return Err(StoreError::misuse(format!(
                    "{} appears twice in one append",
                    write.stream_id
                )));
            }
            count += write.events.len();
            let mut events = Vec::with_capacity(write.events.len());
            for new in write.events {
                validate_event_type(&new.event_type)
                    .map_err(|e| StoreError::misuse(e.to_string()))?;
                let event = RecordedEvent {
                    stream_id: write.stream_id.clone(),
                    version: 0,
                    event_id: new.event_id,
                    event_type: new.event_type,
                    schema_version: new.schema_version,
                    occurred_at: at_stored_precision(new.occurred_at),
                    metadata: new.metadata,
                    payload: stored::normalize(new.payload)?,
                    chain: String::new(),
                    snapshot_due: false,
                };
                let mut document = stored::encode(&event)?;
                document.remove(events::VERSION);
                document.remove(events::CHAIN);
                let prepared = PreparedEvent {
                    canonical_prefix: canonical_prefix(&event),
                    size: stored::size(&document),
                    document,
                    event,
                };
                let widest = prepared.size_at(WIDEST_VERSION, true);
                if widest > max_item {
                    return Err(StoreError::TooLarge {
                        what: "event item (envelope plus payload)",
                        actual: widest,
                        limit: max_item,
                    });
                }
                total_bytes += widest;
                events.push(prepared);
            }
            writes.push(PreparedWrite {
                stream_id: write.stream_id,
                expected: write.expected,
                head: write.head,
                events,
            });
        }
        if count > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooLarge {
                what: "items in one transaction (events plus the command record)",
                actual: count,
                limit: MAX_TRANSACTION_ITEMS,
            });
        }
        if total_bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::TooLarge {
                what: "transaction bytes",
                actual: total_bytes,
                limit: MAX_TRANSACTION_BYTES,
            });
        }
        Ok(Self {
            writes,
            command: request.command,
        })
    }

    /// Each stream's part, in order.
    pub(crate) fn writes(&self) -> &[PreparedWrite] {
        &self.writes
    }

    /// The command record's request, if the append is idempotent.
    pub fn command(&self) -> Option<&NewCommand> {
        self.command.as_ref()
    }

    /// The exact documents to write given each stream's current head (`None`: absent).
    ///
    /// Fails with `Conflict` if a head does not satisfy its write's expected version, and with
    /// `TooLarge` if the command record is over DynamoDB's item limit.
    pub(crate) fn plan(
        &self,
        heads: Vec<Option<StreamHead>>,
        settings: &StoreSettings,
        now: DateTime<Utc>,
    ) -> Result<Plan, StoreError> {
        let mut writes = Vec::with_capacity(self.writes.len());
        for (write, head) in self.writes.iter().zip(heads) {
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
            writes.push(plan_write(write, head, settings));
        }
        let mut plan = Plan {
            writes,
            command: None,
        };
        if let Some(command) = &self.command {
            let record = CommandRecord {
                command_id: command.command_id.clone(),
                request_hash: command.request_hash.clone(),
                streams: plan.written_streams(),
                receipt: command.receipt.clone(),
                recorded_at: now,
                expires_at: (now + settings.command_ttl).timestamp(),
            };
            let document = stored::to_document(&record, "a command record")?;
            let size = stored::size(&document);
            if size > MAX_ITEM_BYTES {
                return Err(StoreError::TooLarge {
                    what: "command record",
                    actual: size,
                    limit: MAX_ITEM_BYTES,
                });
            }
            plan.command = Some((record, document));
        }
        Ok(plan)
    }
}

/// Numbers, marks and chains one stream's events after `head`.
fn plan_write(
    write: &PreparedWrite,
    head: Option<StreamHead>,
    settings: &StoreSettings,
) -> PlannedWrite {
    let actual = head.as_ref().map_or(0, StreamHead::version);
    let mut previous_chain = head.map(|h| h.chain().to_owned()).unwrap_or_default();
    let last_version = actual + write.events.len() as u64;
    let snapshot_due =
        settings
            .snapshot_policy
            .crossed(write.stream_id.category(), actual, last_version);
    let mut events = Vec::with_capacity(write.events.len());
    let mut documents = Vec::with_capacity(write.events.len());
    for (version, prepared) in (actual + 1..).zip(&write.events) {
        let due = snapshot_due && version == last_version;
        let chain = chain_after(
            &previous_chain,
            &prepared.canonical_prefix,
            due,
            &write.stream_id,
            version,
        );
        let mut document = prepared.document.clone();
        document.insert(events::VERSION.into(), Value::from(version));
        document.insert(events::CHAIN.into(), Value::String(chain.clone()));
        if due {
            document.insert(events::SNAPSHOT_DUE.into(), Value::Bool(true));
        }
        let mut event = prepared.event.clone();
        event.version = version;
        event.snapshot_due = due;
        event.chain.clone_from(&chain);
        previous_chain = chain;
        events.push(event);
        documents.push(document);
    }
    PlannedWrite {
        stream_id: write.stream_id.clone(),
        events,
        documents,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chain::chain_hash;
    use crate::envelope::NewEvent;

    fn request(events: usize, payload_bytes: usize) -> AppendRequest {
        let stream = StreamId::new("Plan", "1").expect("valid");
        let events = (0..events)
            .map(|_| NewEvent::new("Planned", json!({ "text": "x".repeat(payload_bytes) })))
            .collect();
        AppendRequest::single(stream, ExpectedVersion::Any, events)
    }

    #[test]
    fn a_plan_numbers_chains_and_sizes_as_the_definition_says() {
        let settings = StoreSettings::default();
        let prepared = PreparedAppend::new(request(3, 10), &settings).expect("valid");
        let plan = prepared
            .plan(vec![None], &settings, crate::envelope::now())
            .expect("plans");
        let write = &plan.writes[0];
        let mut previous = String::new();
        for (event, document) in write.events.iter().zip(&write.documents) {
            assert_eq!(
                event.chain,
                chain_hash(&previous, event),
                "chained by definition"
            );
            assert_eq!(
                &stored::encode(event).expect("encodes"),
                document,
                "the document is the event's"
            );
            assert_eq!(
                stored::size(document),
                prepared.writes[0].events[0].size_at(event.version, event.snapshot_due)
            );
            previous.clone_from(&event.chain);
        }
        assert_eq!(
            write.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn limits_are_enforced_before_any_head_is_known() {
        let settings = StoreSettings::default();
        let too_big = PreparedAppend::new(request(1, settings.max_event_bytes), &settings);
        assert!(matches!(too_big, Err(StoreError::TooLarge { .. })));
        let too_many = PreparedAppend::new(request(101, 1), &settings);
        assert!(matches!(too_many, Err(StoreError::TooLarge { .. })));
        assert!(PreparedAppend::new(request(100, 1), &settings).is_ok());
    }
}
