//! `stats`: streams and events, the largest streams, how far each projection and the feed are
//! behind, and every queue's depth. One scan of the events table (keys and times only) and one of each
//! read-model table (keys, versions and sources only): per-stream rows carry the stream they
//! follow, shared projections a checkpoint per stream, so no projection code is needed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use eventfold::aws::aws_sdk_dynamodb::types::AttributeValue;
use eventfold::aws::error::from_sdk;
use eventfold::envelope::parse_timestamp;
use eventfold::names::{events, read_model};
use eventfold::projection::CHECKPOINT_PREFIX;

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
    /// Where the service keeps a feed: events indexed, and its partitions.
    pub feed: Option<(u64, u32)>,
}

/// Gathers and prints the statistics.
pub async fn stats(target: &Target) -> Result<Stats, OpsError> {
    let table = target.table("EventsTable")?;
    // Each stream's head: its last version and when that happened.
    let mut heads: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut times: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut events = 0;
    scan_all(
        target,
        table,
        &[
            ("#s", events::STREAM_ID),
            ("#v", events::VERSION),
            ("#t", events::OCCURRED_AT),
        ],
        |item| {
            let stream = item.get(events::STREAM_ID).and_then(|v| v.as_s().ok());
            let version = number(item, events::VERSION);
            let time = item.get(events::OCCURRED_AT).and_then(|v| v.as_s().ok());
            if let (Some(stream), Some(version), Some(time)) = (stream, version, time) {
                events += 1;
                let head = heads.entry(stream.clone()).or_insert((0, String::new()));
                if version > head.0 {
                    *head = (version, time.clone());
                }
                times.insert((stream.clone(), version), time.clone());
            }
        },
    )
    .await?;
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
    for (name, projector) in &target.service.projectors {
        let progress = projected(target, &projector.tables).await?;
        // The projector follows the categories it has written for; a category it never
        // projected anything of is not counted.
        let categories: BTreeSet<&str> = progress.keys().filter_map(|s| category(s)).collect();
        let mut behind = 0;
        let mut oldest: Option<DateTime<Utc>> = None;
        for (stream, (head, _)) in &heads {
            if !category(stream).is_some_and(|c| categories.contains(c)) {
                continue;
            }
            let checkpoint = progress.get(stream).copied().unwrap_or(0);
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
        stats.lag.insert(
            name.clone(),
            (behind, oldest.map(|t| (now - t).num_seconds())),
        );
    }
    if let Ok(feed) = super::feed::feed_of(target) {
        use eventfold::feed::FeedStore;
        let mut indexed = 0;
        for partition in 0..feed.partitions() {
            indexed += feed.end(partition).await?;
        }
        stats.feed = Some((indexed, feed.partitions()));
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
    if let Some((indexed, partitions)) = stats.feed {
        let behind = (stats.events as u64).saturating_sub(indexed);
        say(&format!(
            "feed: {indexed} events indexed in {partitions} partitions, {behind} behind the events table"
        ));
    }
    say("queues (messages waiting):");
    for (logical, waiting) in &stats.queues {
        say(&format!("  {logical:<28} {waiting:>6}"));
    }
    Ok(stats)
}

fn category(stream: &str) -> Option<&str> {
    stream.split_once('-').map(|(category, _)| category)
}

/// How far a projector's tables say each stream is projected: a per-stream row's version
/// beside its `source_stream`, or a shared projection's `$<stream>` checkpoint.
async fn projected(target: &Target, tables: &[String]) -> Result<BTreeMap<String, u64>, OpsError> {
    let mut progress = BTreeMap::new();
    for logical in tables {
        let table = target.table(logical)?;
        let key = target
            .template
            .table(logical)
            .map(|t| t.hash_key.clone())
            .ok_or_else(|| OpsError::new(format!("the template has no table {logical}")))?;
        scan_all(
            target,
            table,
            &[
                ("#k", key.as_str()),
                ("#v", read_model::VERSION),
                ("#s", read_model::SOURCE_STREAM),
            ],
            |item| {
                let version = number(item, read_model::VERSION);
                let row_key = item.get(&key).and_then(|v| v.as_s().ok());
                let stream = match (item.get(read_model::SOURCE_STREAM), row_key) {
                    (Some(source), _) => source.as_s().ok().cloned(),
                    (None, Some(key)) => key.strip_prefix(CHECKPOINT_PREFIX).map(str::to_owned),
                    (None, None) => None,
                };
                if let (Some(stream), Some(version)) = (stream, version) {
                    let at = progress.entry(stream).or_insert(0);
                    *at = version.max(*at);
                }
            },
        )
        .await?;
    }
    Ok(progress)
}

/// Scans a whole table, page by page, for the attributes named (`#alias`, name), handing each
/// item to `visit`.
async fn scan_all(
    target: &Target,
    table: &str,
    names: &[(&str, &str)],
    mut visit: impl FnMut(&std::collections::HashMap<String, AttributeValue>),
) -> Result<(), OpsError> {
    let projection = names
        .iter()
        .map(|(alias, _)| *alias)
        .collect::<Vec<_>>()
        .join(", ");
    let mut start = None;
    loop {
        let mut scan = target
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .projection_expression(&projection);
        for (alias, name) in names {
            scan = scan.expression_attribute_names(*alias, *name);
        }
        let output = scan
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| from_sdk("Scan", table, e))?;
        output.items().iter().for_each(&mut visit);
        start = output.last_evaluated_key;
        if start.is_none() {
            return Ok(());
        }
    }
}

/// A numeric attribute as a whole number.
fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
}
