//! `feed read|tail|lag|parked|redrive|verify`: the global feed from a cursor, followed live, a
//! consumer's lag and parked streams (and a redrive asked of it, which projector functions do at
//! once), and the feed checked against the events table (and caught up where it lacks events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eventfold::StreamId;
use eventfold::aws::DynamoFeed;
use eventfold::feed::{
    Cursor, DEFAULT_PARTITIONS, FeedCheck, FeedEntry, FeedStore, Indexer, Lag, check_feed,
    read_feed,
};
use eventfold::lambda::stream::stream_event;
use eventfold::names::env;
use eventfold::store::EventStore;

use super::streams::Format;
use super::{OpsError, Target, say};
use crate::local::template::Reference;

/// Entries a tail reads at once.
const TAIL_PAGE: usize = 500;
/// How long a tail waits when the feed has nothing new.
const TAIL_IDLE: Duration = Duration::from_secs(1);

/// The service's feed: the table a function names in `FEED_TABLE`, partitioned as its
/// `FEED_PARTITIONS` says (a template parameter, at the value the template was read with).
pub fn feed_of(target: &Target) -> Result<DynamoFeed, OpsError> {
    let template = &target.template;
    let function = template
        .functions
        .iter()
        .find(|f| f.environment.contains_key(env::FEED_TABLE))
        .ok_or_else(|| {
            OpsError::new(format!(
                "this service keeps no feed: no function of its template names one in {}",
                env::FEED_TABLE
            ))
        })?;
    let table = match &function.environment[env::FEED_TABLE] {
        Reference::Ref(logical) => target.tables.get(logical).cloned(),
        _ => None,
    }
    .ok_or_else(|| OpsError::new(format!("{}'s feed table was not found", target.label)))?;
    let partitions = match function.environment.get(env::FEED_PARTITIONS) {
        Some(Reference::Ref(parameter)) => template.parameters.get(parameter).cloned(),
        Some(Reference::Literal(text)) => Some(text.clone()),
        _ => None,
    }
    .map(|text| {
        text.parse::<u32>()
            .map_err(|_| OpsError::new(format!("{} is {text:?}", env::FEED_PARTITIONS)))
    })
    .transpose()?
    .unwrap_or(DEFAULT_PARTITIONS);
    Ok(DynamoFeed::new(
        target.clients.dynamodb.clone(),
        table,
        partitions,
    ))
}

fn cursor(feed: &DynamoFeed, after: Option<&str>) -> Result<Cursor, OpsError> {
    match after {
        Some(text) => Cursor::parse(text, feed.partitions()).map_err(|e| OpsError(e.to_string())),
        None => Ok(Cursor::start(feed.partitions())),
    }
}

fn show(entry: &FeedEntry, format: Format) {
    match format {
        Format::Json => say(&serde_json::to_string(entry).unwrap_or_default()),
        Format::Pretty => say(&format!(
            "{:>3}:{:<9} {:<40} v{:<6} {:<24} {}",
            entry.partition,
            entry.position,
            entry.stream_id.as_str(),
            entry.version,
            entry.event_type,
            eventfold::envelope::format_timestamp(&entry.indexed_at)
        )),
    }
}

/// Prints up to `limit` entries after `after` (from the start without one), then the cursor
/// to go on from.
pub async fn read(
    target: &Target,
    after: Option<&str>,
    limit: usize,
    format: Format,
) -> Result<Cursor, OpsError> {
    let feed = feed_of(target)?;
    let read = read_feed(&feed, &cursor(&feed, after)?, limit.max(1)).await?;
    for entry in &read.entries {
        show(entry, format);
    }
    eprintln!(
        "{} entries; next: --after {} ({} events before it)",
        read.entries.len(),
        read.next,
        read.next.passed()
    );
    Ok(read.next)
}

/// Follows the feed from `after` (from the start without one), printing each entry, until
/// `max` entries (or Ctrl-C).
pub async fn tail(
    target: &Target,
    after: Option<&str>,
    format: Format,
    max: Option<usize>,
) -> Result<(), OpsError> {
    let feed = feed_of(target)?;
    let mut at = cursor(&feed, after)?;
    let mut shown = 0;
    loop {
        let read = read_feed(&feed, &at, TAIL_PAGE).await?;
        for entry in &read.entries {
            show(entry, format);
            shown += 1;
            if max.is_some_and(|max| shown >= max) {
                return Ok(());
            }
        }
        if read.entries.is_empty() {
            tokio::time::sleep(TAIL_IDLE).await;
        }
        at = read.next;
    }
}

/// Prints how far the consumer `name` is behind, and each partition's checkpoint.
pub async fn lag(target: &Target, name: &str) -> Result<Lag, OpsError> {
    let feed = feed_of(target)?;
    let checkpoints = feed.checkpoints(name).await?;
    if checkpoints.is_empty() {
        return Err(OpsError::new(format!(
            "no feed consumer {name} in {} (it has no checkpoint yet)",
            target.label
        )));
    }
    let now = chrono::Utc::now().timestamp_millis();
    for checkpoint in &checkpoints {
        let end = feed.end(checkpoint.partition).await?;
        let holder = if checkpoint.lease_until >= now {
            format!("held by {}", checkpoint.owner)
        } else {
            "free".to_owned()
        };
        say(&format!(
            "partition {:>2}: at {:>9} of {:>9}  {holder}",
            checkpoint.partition, checkpoint.position, end
        ));
    }
    let lag = eventfold::feed::lag(&feed, name).await?;
    say(&format!(
        "{name}: {} events behind, the oldest indexed {:.1} s ago",
        lag.positions, lag.seconds
    ));
    Ok(lag)
}

/// Prints the streams the consumer `name` parked; how many.
pub async fn parked(target: &Target, name: &str) -> Result<usize, OpsError> {
    let parked = feed_of(target)?.parked(name).await?;
    for stream in parked.values() {
        say(&format!(
            "{:<48} from v{:<6} {}  {}{}",
            stream.stream_id.as_str(),
            stream.version,
            eventfold::envelope::format_timestamp(&stream.parked_at),
            stream.error,
            if stream.redrive {
                "  (redrive asked)"
            } else {
                ""
            }
        ));
    }
    say(&format!("{name}: {} parked streams", parked.len()));
    Ok(parked.len())
}

/// Asks the consumer `name` to apply the parked `stream` again.
pub async fn redrive(target: &Target, name: &str, stream: &str) -> Result<(), OpsError> {
    let stream_id = StreamId::parse(stream).map_err(|e| OpsError(e.to_string()))?;
    if !feed_of(target)?.request_redrive(name, &stream_id).await? {
        return Err(OpsError::new(format!(
            "{name} has not parked {stream} in {}",
            target.label
        )));
    }
    // A projector function applies its projections' redrives on its next batch; an empty one,
    // now, will do (a feed consumer's instances do on their next poll).
    let mut nudged = 0;
    for projector in target.service.projectors.values() {
        let answer: Result<aws_lambda_events::streams::DynamoDbEventResponse, String> = target
            .invoker
            .invoke(
                &projector.function,
                &stream_event(Vec::new()).map_err(|e| OpsError(e.to_string()))?,
            )
            .await;
        match answer {
            Ok(response) if response.batch_item_failures.is_empty() => nudged += 1,
            Ok(_) => say(&format!(
                "{}: the parked streams could not be read",
                projector.function
            )),
            Err(error) => say(&format!("{}: {error}", projector.function)),
        }
    }
    let parked = feed_of(target)?.parked(name).await?;
    match parked.get(&stream_id) {
        None => say(&format!(
            "{stream} applied again and taken off {name}'s parked streams"
        )),
        Some(still) if !still.redrive => {
            return Err(OpsError::new(format!(
                "{stream} failed again at v{}: {}",
                still.version, still.error
            )));
        }
        Some(_) => say(&format!(
            "asked {name} to apply {stream} again: its instances do on their next poll ({nudged} \
             projector functions asked now)"
        )),
    }
    Ok(())
}

/// Checks the feed against the events table and prints what is wrong; with `repair`, indexes
/// what it lacks (reading the events table, as the indexer repairs a gap) and checks again.
pub async fn verify(target: &Target, repair: bool) -> Result<FeedCheck, OpsError> {
    let feed = Arc::new(feed_of(target)?);
    let heads = target.store.stream_heads().await?;
    let mut check = check_feed(feed.as_ref(), &heads).await?;
    report(target, &check);
    if repair && !check.missing.is_empty() {
        let lacking: BTreeMap<StreamId, u64> = check
            .missing
            .iter()
            .map(|(stream, _, head)| (stream.clone(), *head))
            .collect();
        let events: Arc<dyn EventStore> = target.store.clone();
        let indexed = Indexer::new(feed.clone(), events)
            .catch_up(&lacking)
            .await?;
        say(&format!(
            "repaired: {} events indexed in {} writes",
            indexed.indexed, indexed.writes
        ));
        check = check_feed(feed.as_ref(), &heads).await?;
        report(target, &check);
    }
    Ok(check)
}

fn report(target: &Target, check: &FeedCheck) {
    for (stream, from, head) in &check.missing {
        say(&format!("MISSING  {stream} versions {from} to {head}"));
    }
    for finding in &check.broken {
        say(&format!("BROKEN   {finding}"));
    }
    say(&format!(
        "{}: {} events of {} streams in the feed; {} streams missing events, {} broken",
        target.label,
        check.events,
        check.streams,
        check.missing.len(),
        check.broken.len()
    ));
}
