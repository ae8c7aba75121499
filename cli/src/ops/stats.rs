//! `stats`: streams and events, the largest streams, how far each projection is behind, and
//! every queue's depth. One scan of the events table (keys and times only) and one of each
//! read model.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use eventfold::aws::error::from_sdk;
use eventfold::envelope::parse_timestamp;
use eventfold::names::events;

use super::dlq::depth;
use super::{OpsError, Target, say};

/// What `stats` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Streams in the events table.
    pub streams: usize,
    /// Events in the events table.
    pub events: usize,
    /// The largest streams: (stream, events).
    pub largest: Vec<(String, u64)>,
    /// Per projection: events not yet projected, and the age of the oldest one in seconds.
    pub lag: BTreeMap<String, (u64, Option<i64>)>,
    /// Per queue: messages waiting.
    pub queues: BTreeMap<String, i64>,
}

/// Gathers and prints the statistics.
pub async fn stats(target: &Target) -> Result<Stats, OpsError> {
    let table = target.table("EventsTable")?;
    // Each stream's head: its last version and when that happened.
    let mut heads: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut times: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut events = 0;
    let mut start = None;
    loop {
        let output = target
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .projection_expression("#s, #v, #t")
            .expression_attribute_names("#s", events::STREAM_ID)
            .expression_attribute_names("#v", events::VERSION)
            .expression_attribute_names("#t", events::OCCURRED_AT)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| from_sdk("Scan", table, e))?;
        for item in output.items() {
            let stream = item.get(events::STREAM_ID).and_then(|v| v.as_s().ok());
            let version = item
                .get(events::VERSION)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok());
            let time = item.get(events::OCCURRED_AT).and_then(|v| v.as_s().ok());
            if let (Some(stream), Some(version), Some(time)) = (stream, version, time) {
                events += 1;
                let head = heads.entry(stream.clone()).or_insert((0, String::new()));
                if version > head.0 {
                    *head = (version, time.clone());
                }
                times.insert((stream.clone(), version), time.clone());
            }
        }
        start = output.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let mut largest: Vec<(String, u64)> = heads.iter().map(|(s, (v, _))| (s.clone(), *v)).collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest.truncate(5);
    let mut stats = Stats {
        streams: heads.len(),
        events,
        largest,
        ..Stats::default()
    };
    let now = Utc::now();
    for (name, projector) in target.projectors()? {
        let rows = projector.read_model().rows().await?;
        let checkpoints: BTreeMap<&str, u64> =
            rows.iter().map(|(k, r)| (k.as_str(), r.version)).collect();
        let mut behind = 0;
        let mut oldest: Option<DateTime<Utc>> = None;
        for (stream, (head, _)) in &heads {
            let Some(key) = eventfold::StreamId::parse(stream)
                .ok()
                .filter(|id| projector.follows(id))
                .map(|id| id.entity_id().to_owned())
            else {
                continue;
            };
            let checkpoint = checkpoints.get(key.as_str()).copied().unwrap_or(0);
            if checkpoint < *head {
                behind += head - checkpoint;
                let first_missing = times
                    .get(&(stream.clone(), checkpoint + 1))
                    .and_then(|t| parse_timestamp(t));
                oldest = match (oldest, first_missing) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        stats
            .lag
            .insert(name, (behind, oldest.map(|t| (now - t).num_seconds())));
    }
    for (logical, url) in &target.queues {
        let (waiting, _) = depth(target, url).await?;
        stats.queues.insert(logical.clone(), waiting);
    }
    say(&format!(
        "{}: {} streams, {} events",
        target.label, stats.streams, stats.events
    ));
    say("largest streams:");
    for (stream, events) in &stats.largest {
        say(&format!("  {stream:<44} {events:>8} events"));
    }
    say("projections:");
    for (name, (behind, age)) in &stats.lag {
        let age = age.map_or_else(
            || "up to date".to_owned(),
            |s| format!("oldest unprojected event {s} s old"),
        );
        say(&format!("  {name:<20} {behind:>6} events behind, {age}"));
    }
    say("queues (messages waiting):");
    for (logical, waiting) in &stats.queues {
        say(&format!("  {logical:<28} {waiting:>6}"));
    }
    Ok(stats)
}
