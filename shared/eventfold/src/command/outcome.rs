//! What a command did, as data: the edge says it in HTTP, metrics count it.

use std::time::Duration;

use crate::ids::StreamId;
use crate::store::WrittenStream;

/// What a command did.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed<R> {
    /// The receipt of the execution (for a replay: the first execution's).
    pub receipt: R,
    /// The versions written, per stream that got events, in target order, claims last.
    pub streams: Vec<WrittenStream>,
    /// True when this was a repeat of an earlier command and nothing was written.
    pub replayed: bool,
    /// How the execution went, for metrics.
    pub stats: ExecutionStats,
}

/// How an execution went: what metrics report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Appends tried, the successful one included (1 without a conflict; 0 for a replay).
    pub attempts: u32,
    /// How long the successful append took.
    pub append_latency: Duration,
    /// Events folded on top of the snapshots (or from the start) by the first load: how far
    /// behind the snapshots were.
    pub events_folded: usize,
    /// Snapshots the first load found and refused: they did not verify against their MAC.
    pub snapshots_refused: usize,
}

impl<R> Executed<R> {
    /// The new version of a stream, if the command wrote to it.
    pub fn version_of(&self, stream_id: &StreamId) -> Option<u64> {
        self.streams
            .iter()
            .find(|s| &s.stream_id == stream_id)
            .map(|s| s.last_version)
    }

    /// What the command came to: written, or replayed.
    pub fn outcome(&self) -> super::Outcome {
        if self.replayed {
            super::Outcome::Replayed
        } else {
            super::Outcome::Written
        }
    }
}
