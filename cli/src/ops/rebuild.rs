//! `projections rebuild`: clear a read model and replay the events table into it, with
//! progress (events per second, ETA from the table's item count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfold::aws::DynamoStore;
use eventfold::aws::error::from_sdk;
use eventfold::aws::item::from_item;
use eventfold::error::StoreError;
use eventfold::projection::{BatchReport, StreamProjector, project_in_order};
use eventfold::store::EventStore;
use tokio::sync::Mutex;

use super::progress::Progress;
use super::{OpsError, Target, confirm, say};

/// What a rebuild did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Outcomes of the events replayed.
    pub batch: BatchReport,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// Replays the whole events table into a projection: a parallel scan, one worker per segment
/// (each sees its streams in version order, a stream's consecutive events at once). Safe while
/// the stream consumer runs: the conditional checkpoint turns the overlap into duplicates.
pub async fn replay(
    store: &DynamoStore,
    projector: &dyn StreamProjector,
    segments: i32,
    progress: Option<&Mutex<Progress>>,
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let workers = (0..segments).map(|segment| async move {
        let mut report = BatchReport::default();
        let mut start = None;
        loop {
            let (items, next) = store.scan_segment(segment, segments, start).await?;
            let count = items.len() as u64;
            let events = items
                .into_iter()
                .map(|item| {
                    let event = from_item(item, "event")?;
                    store.settings().upcasters.upcast(event)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            report.merge(&project_in_order(projector, events).await?);
            if let Some(progress) = progress {
                progress.lock().await.advance(count);
            }
            start = next;
            if start.is_none() {
                return Ok::<_, StoreError>(report);
            }
        }
    });
    let mut total = RebuildReport::default();
    for report in futures::future::try_join_all(workers).await? {
        total.batch.merge(&report);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// `projections rebuild <name>`: asks, clears the read model, replays.
pub async fn rebuild(target: &Target, name: &str, yes: bool) -> Result<RebuildReport, OpsError> {
    let projectors = target.projectors()?;
    let projector: Arc<dyn StreamProjector> = projectors.get(name).cloned().ok_or_else(|| {
        OpsError(format!(
            "no projection {name}; there is {}",
            projectors.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let events_table = target.table("EventsTable")?;
    // The item count is DynamoDB's estimate (refreshed about every six hours): enough for an ETA.
    let described = target
        .clients
        .dynamodb
        .describe_table()
        .table_name(events_table)
        .send()
        .await
        .map_err(|e| from_sdk("DescribeTable", events_table, e))?;
    let estimate = described
        .table()
        .and_then(aws_sdk_dynamodb::types::TableDescription::item_count)
        .and_then(|n| u64::try_from(n).ok());
    confirm(
        &format!(
            "rebuild clears the {name} read model of {} and replays every event into it",
            target.label
        ),
        yes,
    )?;
    let cleared = projector.read_model().clear().await?;
    let progress = Mutex::new(Progress::new(
        &format!("rebuild {name}"),
        "events",
        estimate,
    ));
    let report = replay(&target.store, projector.as_ref(), 4, Some(&progress)).await?;
    let (_, took) = progress.into_inner().finish();
    let batch = &report.batch;
    say(&format!(
        "rebuilt {name}: cleared {cleared} rows, replayed {} events in {:.1} s ({:.0}/s): \
         {} applied, {} duplicates, {} repaired, {} skipped",
        batch.events(),
        took.as_secs_f64(),
        batch.events() as f64 / took.as_secs_f64().max(1e-3),
        batch.applied,
        batch.duplicates,
        batch.repaired,
        batch.skipped
    ));
    Ok(report)
}
