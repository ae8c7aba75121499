//! The publisher: every appended event into the global feed (where there is one), to
//! subscribers over an SQS FIFO queue, and every snapshot-due event to the snapshot queue.
//! What the events stream's second reader runs.
//!
//! Every event goes to an SQS FIFO queue (group = stream id, so subscribers see each stream in
//! order; deduplication id = event id, so a redelivered record is not published twice), up to
//! ten per `SendMessageBatch`. Each event flagged snapshot-due also goes to the snapshot queue.
//!
//! SQS accepts or rejects each entry of a batch on its own, so two events of one stream in the
//! same call could be stored with the later one accepted and the earlier one not; its retry
//! would then land behind its successor. Calls are therefore planned in waves ([`waves`]): a
//! wave holds at most one event per stream, and a stream's next event waits for the wave after.
//! When a wave is not wholly accepted, nothing more is sent, and the earliest record not
//! accepted is reported in `batchItemFailures`; Lambda retries from there, and deduplication
//! makes the re-sends of records that did go through harmless.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::stream::{StreamRecord, decode_stream_record};
use crate::aws::error::{QueueError, queue_error};
use crate::envelope::RecordedEvent;
use crate::error::error_chain;
use crate::feed::{IndexReport, Indexer};
use crate::snapshot::SnapshotRequest;
use crate::upcast::Upcasters;

/// SQS's limit on entries per `SendMessageBatch`.
pub const SQS_BATCH: usize = 10;

/// SQS's limit on the bodies of one `SendMessageBatch` together (1 MiB; each event, at most
/// `MAX_EVENT_BYTES` of payload, fits in a message on its own).
pub const SQS_BATCH_BYTES: usize = 1024 * 1024;

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Events accepted by the events queue.
    pub published: usize,
    /// Snapshot requests sent.
    pub snapshot_requests: usize,
    /// Records that are not inserts.
    pub ignored: usize,
    /// Records of an event item modified or removed: nothing the application does, so someone
    /// rewrote history (logged and counted for an alarm; never published).
    pub rewritten: usize,
    /// Index of the earliest record not accepted.
    pub first_failure: Option<usize>,
    /// What indexing the batch into the feed did (where there is a feed).
    pub index: IndexReport,
}

/// What the publisher logs (as an error) for a record of an event item modified or removed.
pub const EVENT_REWRITTEN: &str = "an event item was modified or removed in the events table";

/// The publisher, built once per process.
#[derive(Clone, Debug)]
pub struct Publisher {
    sqs: Client,
    events_queue_url: String,
    snapshot_queue_url: String,
    upcasters: Upcasters,
    indexer: Option<Arc<Indexer>>,
}

impl Publisher {
    /// A publisher to the given queues. Events are published as stored (not upcast).
    pub fn new(
        sqs: Client,
        events_queue_url: impl Into<String>,
        snapshot_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            events_queue_url: events_queue_url.into(),
            snapshot_queue_url: snapshot_queue_url.into(),
            upcasters: Upcasters::new(),
            indexer: None,
        }
    }

    /// The same publisher, indexing every batch into the global feed before it publishes (the
    /// stream keeps its two readers).
    #[must_use]
    pub fn with_indexer(mut self, indexer: Arc<Indexer>) -> Self {
        self.indexer = Some(indexer);
        self
    }

    /// The indexer, where there is a feed.
    pub fn indexer(&self) -> Option<&Arc<Indexer>> {
        self.indexer.as_ref()
    }

    /// Publishes one batch of stream records.
    pub async fn process(&self, records: &[EventRecord]) -> PublishReport {
        let mut report = PublishReport::default();
        let mut events: Vec<(usize, RecordedEvent)> = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match decode_stream_record(record, &self.upcasters) {
                Ok(StreamRecord::Appended(event)) => events.push((index, *event)),
                Ok(StreamRecord::Ignored(kind)) => {
                    report.ignored += 1;
                    if matches!(kind, "MODIFY" | "REMOVE") {
                        report.rewritten += 1;
                        tracing::error!(kind, item = ?record.change.keys,
                            "{EVENT_REWRITTEN}");
                    }
                }
                Err(error) => {
                    tracing::error!(index, error = %error_chain(&error), "record does not decode");
                    report.first_failure = Some(index);
                    // Nothing after a poison record is sent: FIFO order must not skip it.
                    break;
                }
            }
        }
        if let Some(indexer) = &self.indexer {
            match indexer.index(events.iter().map(|(_, e)| e)).await {
                Ok(index) => report.index = index,
                Err(error) => {
                    // Nothing is published past an event the feed does not hold yet: the
                    // retry indexes and publishes it (both are idempotent).
                    tracing::error!(error = %error_chain(&error), "feed indexing failed");
                    report.first_failure = events.first().map(|(i, _)| *i).or(report.first_failure);
                    return report;
                }
            }
        }
        self.publish_indexed(&events, &mut report).await;
        tracing::info!(
            records = records.len(),
            indexed = report.index.indexed,
            published = report.published,
            snapshot_requests = report.snapshot_requests,
            ignored = report.ignored,
            failed_at = ?report.first_failure,
            "batch published"
        );
        report
    }

    /// Publishes events read from the events table (a redrive of a dead-lettered batch), in
    /// stream order; `first_failure` is the position of the first event not accepted.
    pub async fn publish_events(&self, events: Vec<RecordedEvent>) -> PublishReport {
        let indexed: Vec<(usize, RecordedEvent)> = events.into_iter().enumerate().collect();
        let mut report = PublishReport::default();
        self.publish_indexed(&indexed, &mut report).await;
        report
    }

    /// Sends events (with their record positions) wave by wave, and their snapshot requests;
    /// stops at the first wave not wholly accepted.
    async fn publish_indexed(&self, events: &[(usize, RecordedEvent)], report: &mut PublishReport) {
        let mut accepted = vec![false; events.len()];
        let groups: Vec<&str> = events.iter().map(|(_, e)| e.stream_id.as_str()).collect();
        for wave in waves(&groups, SQS_BATCH) {
            let sent = self.publish(wave.iter().map(|&i| &events[i].1)).await;
            report.published += sent.iter().filter(|ok| **ok).count();
            for (&i, ok) in wave.iter().zip(sent) {
                accepted[i] = ok;
            }
            for &i in &wave {
                let (index, event) = &events[i];
                if !accepted[i] || !event.snapshot_due {
                    continue;
                }
                match self.request_snapshot(event).await {
                    Ok(()) => report.snapshot_requests += 1,
                    Err(error) => {
                        tracing::error!(index, error = %error_chain(&error), "snapshot request failed");
                        accepted[i] = false;
                    }
                }
            }
            // A stream's next event must not overtake one that was not accepted.
            if wave.iter().any(|&i| !accepted[i]) {
                break;
            }
        }
        // Lambda retries from the earliest record not accepted, whether it failed or was never
        // sent because an earlier wave failed; all of them come before a poison record.
        let first_unaccepted = events
            .iter()
            .zip(&accepted)
            .find(|(_, accepted)| !**accepted)
            .map(|((index, _), _)| *index);
        report.first_failure = first_unaccepted.or(report.first_failure);
    }

    /// Sends one wave (at most one event per stream) in as few calls as SQS's entry and byte
    /// limits allow; says which events were accepted. The calls hold distinct streams, so
    /// their relative order does not matter.
    async fn publish<'a>(&self, wave: impl Iterator<Item = &'a RecordedEvent>) -> Vec<bool> {
        let mut accepted = Vec::new();
        let mut calls: Vec<Vec<(usize, SendMessageBatchRequestEntry)>> = Vec::new();
        let mut call_bytes = 0;
        for (position, event) in wave.enumerate() {
            accepted.push(false);
            let entry = serde_json::to_string(event)
                .map_err(|e| e.to_string())
                .and_then(|body| {
                    SendMessageBatchRequestEntry::builder()
                        .id(position.to_string())
                        .message_group_id(event.stream_id.as_str())
                        .message_deduplication_id(event.event_id.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| e.to_string())
                });
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::error!(event_id = %event.event_id, %error, "event does not encode");
                    continue;
                }
            };
            let bytes = entry.message_body().len();
            let full = calls
                .last()
                .is_none_or(|call| call.len() == SQS_BATCH || call_bytes + bytes > SQS_BATCH_BYTES);
            if full {
                calls.push(Vec::new());
                call_bytes = 0;
            }
            call_bytes += bytes;
            calls.last_mut().expect("a call").push((position, entry));
        }
        for call in calls {
            let positions: Vec<usize> = call.iter().map(|(position, _)| *position).collect();
            let output = self
                .sqs
                .send_message_batch()
                .queue_url(&self.events_queue_url)
                .set_entries(Some(call.into_iter().map(|(_, entry)| entry).collect()))
                .send()
                .await;
            match output {
                Ok(output) => {
                    for position in positions {
                        accepted[position] = true;
                    }
                    for failure in &output.failed {
                        tracing::error!(
                            entry = failure.id,
                            code = failure.code,
                            reason = failure.message,
                            "SendMessageBatch rejected an entry"
                        );
                        if let Ok(position) = failure.id.parse::<usize>() {
                            accepted[position] = false;
                        }
                    }
                }
                Err(error) => {
                    let error = queue_error("SendMessageBatch", &self.events_queue_url, error);
                    tracing::error!(entries = positions.len(), error = %error_chain(&error),
                        "SendMessageBatch failed");
                }
            }
        }
        accepted
    }

    async fn request_snapshot(&self, event: &RecordedEvent) -> Result<(), QueueError> {
        let request = SnapshotRequest {
            stream_id: event.stream_id.to_string(),
            version: event.version,
        };
        let body = serde_json::to_string(&request)
            .map_err(|e| QueueError::encoding(&self.snapshot_queue_url, e))?;
        self.sqs
            .send_message()
            .queue_url(&self.snapshot_queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| queue_error("SendMessage", &self.snapshot_queue_url, e))?;
        Ok(())
    }
}

/// Plans the `SendMessageBatch` calls for events whose message groups are `groups` (in record
/// order): each wave holds at most `max` events and at most one per group, and a group's events
/// go out in order, one wave after another. Returns positions into `groups`.
///
/// The streams with the most events left go first (ties: the earliest record), which needs the
/// fewest calls: the larger of the longest stream's length and `len / max`, rounded up. A batch
/// that is all one stream therefore costs one call per event: the price of never letting a
/// partial failure reorder a stream.
pub fn waves(groups: &[&str], max: usize) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut queues: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (position, group) in groups.iter().enumerate() {
        queues.entry(group).or_default().push_back(position);
    }
    // Each group's next event, keyed by how many events the group has left.
    let next = |queue: &mut VecDeque<usize>| {
        let left = queue.len();
        queue.pop_front().map(|position| (left, Reverse(position)))
    };
    let mut heads: BinaryHeap<(usize, Reverse<usize>)> =
        queues.values_mut().filter_map(next).collect();
    let mut planned = Vec::new();
    while !heads.is_empty() {
        let mut wave = Vec::with_capacity(max);
        while let Some((_, Reverse(position))) = heads.pop() {
            wave.push(position);
            if wave.len() == max {
                break;
            }
        }
        // Only now may the groups in this wave offer their next events.
        for &position in &wave {
            if let Some(head) = queues.get_mut(groups[position]).and_then(next) {
                heads.push(head);
            }
        }
        planned.push(wave);
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::waves;
    use proptest::prelude::*;

    #[test]
    fn one_event_per_stream_per_call_and_streams_in_order() {
        let groups = ["A", "A", "B", "A", "C"];
        let planned = waves(&groups, 2);
        assert_eq!(planned, vec![vec![0, 2], vec![1, 4], vec![3]]);
    }

    #[test]
    fn distinct_streams_share_calls_ten_at_a_time() {
        let names: Vec<String> = (0..25).map(|n| format!("S{n}")).collect();
        let groups: Vec<&str> = names.iter().map(String::as_str).collect();
        let sizes: Vec<usize> = waves(&groups, 10).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    proptest! {
        #[test]
        fn waves_keep_every_stream_in_order_with_the_fewest_calls(
            picks in proptest::collection::vec(0..6usize, 0..80),
            max in 1..12usize,
        ) {
            let names = ["A", "B", "C", "D", "E", "F"];
            let groups: Vec<&str> = picks.iter().map(|&p| names[p]).collect();
            let planned = waves(&groups, max);
            let mut wave_of = vec![usize::MAX; groups.len()];
            for (w, wave) in planned.iter().enumerate() {
                prop_assert!(!wave.is_empty() && wave.len() <= max);
                let mut in_wave: Vec<&str> = wave.iter().map(|&p| groups[p]).collect();
                in_wave.sort_unstable();
                in_wave.dedup();
                prop_assert_eq!(in_wave.len(), wave.len(), "one event per stream per call");
                for &p in wave {
                    prop_assert_eq!(wave_of[p], usize::MAX, "each event once");
                    wave_of[p] = w;
                }
            }
            prop_assert!(wave_of.iter().all(|&w| w != usize::MAX), "every event planned");
            for name in names {
                let order: Vec<usize> = (0..groups.len())
                    .filter(|&p| groups[p] == name)
                    .map(|p| wave_of[p])
                    .collect();
                prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "stream {} in order", name);
            }
            let longest = names
                .iter()
                .map(|n| groups.iter().filter(|g| *g == n).count())
                .max()
                .unwrap_or(0);
            prop_assert_eq!(planned.len(), longest.max(groups.len().div_ceil(max)));
        }
    }
}
