//! `verify`: the integrity chain of one stream, or of every stream, with progress.

use eventfold::StreamId;
use eventfold::chain::Verification;
use eventfold::store::EventStore;
use futures::StreamExt;

use super::progress::Progress;
use super::{OpsError, Target, say};

/// Streams verified at once.
const CONCURRENCY: usize = 8;

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Streams whose chain holds.
    pub intact: usize,
    /// Streams and the first version that does not match.
    pub broken: Vec<(StreamId, u64)>,
}

/// Verifies `streams` (every stream when empty), printing each broken one.
pub async fn verify(target: &Target, stream: Option<&str>) -> Result<VerifyReport, OpsError> {
    let streams = match stream {
        Some(stream) => vec![StreamId::parse(stream).map_err(|e| OpsError(e.to_string()))?],
        None => target.store.stream_ids(None).await?,
    };
    let mut progress = Progress::new("verify", "streams", Some(streams.len() as u64));
    let mut report = VerifyReport::default();
    let store = target.store.clone();
    let mut checks = futures::stream::iter(streams)
        .map(|stream_id| {
            let store = store.clone();
            async move {
                let outcome = store.verify_stream(&stream_id).await;
                (stream_id, outcome)
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((stream_id, outcome)) = checks.next().await {
        progress.advance(1);
        match outcome? {
            Verification::Intact { events: 0, .. } if stream.is_some() => {
                return Err(OpsError(format!(
                    "no stream {stream_id} in {}",
                    target.label
                )));
            }
            Verification::Intact { .. } => report.intact += 1,
            Verification::Broken {
                first_bad_version, ..
            } => {
                say(&format!(
                    "TAMPERED {stream_id}: the chain breaks at version {first_bad_version}"
                ));
                report.broken.push((stream_id, first_bad_version));
            }
        }
    }
    progress.finish();
    say(&format!(
        "{} streams intact, {} broken",
        report.intact,
        report.broken.len()
    ));
    Ok(report)
}
