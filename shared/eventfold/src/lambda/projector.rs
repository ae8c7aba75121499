//! The projector on a DynamoDB stream: records decoded, then a batch through the runtime.

use aws_lambda_events::event::dynamodb::EventRecord;

use super::stream::{StreamRecord, decode_stream_record};
use crate::projection::{BatchReport, StreamProjector, project_batch};

/// Processes one batch of DynamoDB Streams records through a projector: records of one stream
/// in order, different streams concurrently, stopping each stream at its first failure; the
/// report names the earliest record Lambda must retry from.
pub async fn process_stream_batch(
    projector: &dyn StreamProjector,
    records: &[EventRecord],
) -> BatchReport {
    let upcasters = &projector.event_store().settings().upcasters;
    let mut events = Vec::with_capacity(records.len());
    let (mut ignored, mut undecodable) = (0, None);
    for (index, record) in records.iter().enumerate() {
        match decode_stream_record(record, upcasters) {
            Ok(StreamRecord::Appended(event)) => events.push((index, *event)),
            Ok(StreamRecord::Ignored(kind)) => {
                tracing::debug!(index, kind, "ignored record");
                ignored += 1;
            }
            Err(error) => {
                tracing::error!(index, %error, "record does not decode");
                undecodable = Some(undecodable.map_or(index, |u: usize| u.min(index)));
            }
        }
    }
    let mut report = project_batch(projector, events).await;
    report.ignored = ignored;
    if let Some(index) = undecodable {
        report.failed_at(index);
    }
    tracing::info!(
        projection = projector.name(),
        records = records.len(),
        applied = report.applied,
        duplicates = report.duplicates,
        repaired = report.repaired,
        skipped = report.skipped,
        ignored = report.ignored,
        failed_at = ?report.first_failure,
        "batch projected"
    );
    report
}
