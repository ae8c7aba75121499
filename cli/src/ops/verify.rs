//! `verify`: the integrity chain of one stream, or of every stream, with progress; a whole
//! verification also compares every stream's head with the latest signed anchor (see
//! [`super::anchor`]) and, finding nothing, anchors the heads anew.

use std::collections::BTreeMap;

use eventfold::StreamId;
use eventfold::chain::Verification;
use eventfold::store::EventStore;
use futures::StreamExt;

use super::anchor::{Finding, Head, compare};
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
    /// What the latest signed anchor says of the history (every stream's): streams deleted,
    /// tails cut, events rewritten and rechained since.
    pub against_anchor: Vec<Finding>,
    /// Where the new anchor was stored (a whole verification that found nothing anchors).
    pub anchored: Option<String>,
}

impl VerifyReport {
    /// Whether anything was found.
    pub fn tampered(&self) -> usize {
        self.broken.len() + self.against_anchor.len()
    }
}

/// Verifies `streams` (every stream when empty), printing each broken one.
pub async fn verify(target: &Target, stream: Option<&str>) -> Result<VerifyReport, OpsError> {
    let streams = match stream {
        Some(stream) => vec![StreamId::parse(stream).map_err(|e| OpsError(e.to_string()))?],
        None => target.store.stream_ids(None).await?,
    };
    let mut progress = Progress::new("verify", "streams", Some(streams.len() as u64));
    let mut report = VerifyReport::default();
    let mut heads = BTreeMap::new();
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
            Verification::Intact { head, events, .. } => {
                report.intact += 1;
                heads.insert(
                    stream_id.to_string(),
                    Head {
                        stream: stream_id.to_string(),
                        version: events,
                        chain: head,
                    },
                );
            }
            Verification::Broken {
                first_bad_version, ..
            } => {
                say(&format!(
                    "TAMPERED {stream_id}: the chain breaks at version {first_bad_version}"
                ));
                if let Some(head) = target.store.read_head(&stream_id).await? {
                    heads.insert(
                        stream_id.to_string(),
                        Head {
                            stream: stream_id.to_string(),
                            version: head.version(),
                            chain: head.chain().to_owned(),
                        },
                    );
                }
                report.broken.push((stream_id, first_bad_version));
            }
        }
    }
    progress.finish();
    if stream.is_none()
        && let Some(anchors) = &target.anchor
    {
        if let Some(anchor) = anchors.latest().await? {
            report.against_anchor = compare(target, &anchor, &heads).await?;
            for finding in &report.against_anchor {
                say(&finding.to_string());
            }
            say(&format!(
                "against the anchor of {} ({} streams): {} found",
                anchor.anchored_at,
                anchor.heads.len(),
                report.against_anchor.len()
            ));
        }
        if report.tampered() == 0 {
            let (_, location) = anchors.anchor(heads.into_values().collect()).await?;
            say(&format!("anchored every stream's head: {location}"));
            report.anchored = Some(location);
        }
    }
    say(&format!(
        "{} streams intact, {} broken",
        report.intact,
        report.broken.len()
    ));
    Ok(report)
}
