//! What reads ask for and return: version ranges, pages, points in time.

use chrono::{DateTime, Utc};

use crate::envelope::RecordedEvent;
use crate::stored::Document;

/// A page of a stream read forwards.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadPage {
    /// The events, upcast.
    pub events: Vec<RecordedEvent>,
    /// The `from` of the following page, if there are more events.
    pub next: Option<u64>,
}

/// A version range to read, inclusive at both ends, with an optional cap on events returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRange {
    /// First version (at least 1).
    pub from: u64,
    /// Last version.
    pub to: u64,
    /// Most events returned.
    pub limit: Option<usize>,
    /// Whether the limit keeps the newest events of the range instead of the oldest (they
    /// are still returned in version order; `more` then says the range holds older ones).
    pub newest: bool,
}

impl ReadRange {
    /// Every version from `from` on.
    pub fn from(from: u64) -> Self {
        Self {
            from: from.max(1),
            to: u64::MAX,
            limit: None,
            newest: false,
        }
    }

    /// Caps the number of events returned.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Keeps the last `limit` events of the range: a stream's tail in one read, from its head
    /// back.
    #[must_use]
    pub fn newest(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self.newest = true;
        self
    }

    /// Stops at version `to` (inclusive).
    #[must_use]
    pub fn to(mut self, to: u64) -> Self {
        self.to = to;
        self
    }
}

/// Stored events as read, before upcasting, and whether the range holds more past the limit
/// (before the first event returned, for a read of the [`ReadRange::newest`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RawRead {
    /// The events as stored.
    pub events: Vec<RecordedEvent>,
    /// Whether the range holds more past the limit.
    pub more: bool,
}

/// Stored events in version order, undecoded, and whether the range holds more past the limit.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentPage {
    /// The stored documents, in version order.
    pub documents: Vec<Document>,
    /// Whether the range holds more past the limit.
    pub more: bool,
}

/// A point in a stream's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Up to and including this version.
    Version(u64),
    /// Every event that occurred at or before this instant (a prefix of the stream).
    Time(DateTime<Utc>),
}
