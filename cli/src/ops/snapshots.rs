//! `snapshots backfill`: snapshot every stream of a category (or one stream), with progress.

use std::sync::Arc;

use eventfold::StreamId;
use eventfold::aws::DynamoSnapshots;
use eventfold::command::CommandService;
use eventfold::snapshot::{SnapshotOutcome, Snapshotter};

use super::progress::Progress;
use super::{OpsError, Target, say};

/// The service's snapshotter over this environment's tables.
pub fn snapshotter(target: &Target) -> Result<Snapshotter, OpsError> {
    let snapshots = Arc::new(DynamoSnapshots::new(
        target.clients.dynamodb.clone(),
        target.table("SnapshotsTable")?,
    ));
    Ok(bank::snapshotter(
        CommandService::new(target.store.clone()).with_snapshots(snapshots),
    )?)
}

/// Snapshots one stream (`Account-<id>`) or every stream of a category (`Account`); returns
/// the streams looked at and the snapshots written.
pub async fn backfill(target: &Target, what: &str) -> Result<(usize, usize), OpsError> {
    let snapshotter = snapshotter(target)?;
    let streams = if what.contains('-') {
        vec![StreamId::parse(what).map_err(|e| OpsError(e.to_string()))?]
    } else {
        if !snapshotter.categories().any(|c| c == what) {
            return Err(OpsError(format!(
                "no aggregate for category {what}; snapshots are kept for {}",
                snapshotter.categories().collect::<Vec<_>>().join(", ")
            )));
        }
        target.store.streams_in_category(what).await?
    };
    let mut progress = Progress::new(
        &format!("snapshots {what}"),
        "streams",
        Some(streams.len() as u64),
    );
    let mut written = 0;
    for stream in &streams {
        if let SnapshotOutcome::Written(_) = snapshotter.snapshot(stream).await? {
            written += 1;
        }
        progress.advance(1);
    }
    progress.finish();
    say(&format!(
        "{} streams; {written} snapshots written (the rest were current)",
        streams.len()
    ));
    Ok((streams.len(), written))
}
