//! The feed conformance suite: written once, run against any [`FeedStore`].
//!
//! The store cases pin what the indexer relies on (a page is written once, a mark moves only
//! from where it is, both in one write); the indexer cases run it over the store with
//! duplicated, reordered and missing records and with writers racing, and check the whole feed
//! against the events each time. [`crate::feed_conformance!`] makes them tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::error::StoreError;
use crate::feed::{
    Cursor, FeedStore, Indexer, MarkMove, PAGE_EVENTS, Page, PageWrite, Parked, Span, Written,
    check_feed, partition_of, read_feed,
};
use crate::store::{AppendRequest, EventStore, ExpectedVersion, MemoryStore, ReadRange};
use crate::{NewEvent, RecordedEvent, StreamId};

/// The cases of the suite, for [`crate::feed_conformance!`]: `$callback!($args case…)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __feed_suite_cases {
    ([$($callback:tt)*] ($($args:tt)*)) => {
        $($callback)*! { $($args)*
            a_page_is_written_once_with_its_marks misuse_is_refused_before_writing
            duplicates_reordering_and_gaps_index_every_event_once racing_indexers_share_partitions
            a_reader_resumes_from_its_cursor long_streams_span_pages_and_writes
            a_feed_missing_events_is_found_and_caught_up leases_are_exclusive_until_they_end
            parked_streams_keep_their_first_failure_until_unparked }
    };
}

fn stream(id: &str) -> StreamId {
    StreamId::parse(id).expect("a stream id")
}

fn page(partition: u32, first: u64, stream_id: &str, first_version: u64, count: usize) -> Page {
    Page {
        partition,
        first,
        spans: vec![Span {
            stream_id: stream(stream_id),
            first_version,
            types: vec!["Happened".to_owned(); count],
        }],
        indexed_at: Utc::now(),
    }
}

fn mark(stream_id: &str, from: u64, to: u64) -> MarkMove {
    MarkMove {
        stream_id: stream(stream_id),
        from,
        to,
    }
}

/// Appends `count` events to each of `streams` streams named `<category>-<n>`, in rounds (a
/// few events of every stream at a time, as traffic interleaves them); returns them all in
/// append order.
async fn traffic(
    store: &MemoryStore,
    category: &str,
    streams: usize,
    count: usize,
) -> Vec<RecordedEvent> {
    let mut appended = Vec::new();
    let mut versions = vec![0u64; streams];
    while versions.iter().any(|v| (*v as usize) < count) {
        for (n, version) in versions.iter_mut().enumerate() {
            let take = (count - *version as usize).min(1 + n % 3);
            if take == 0 {
                continue;
            }
            let events = (0..take)
                .map(|i| NewEvent::new(if i % 2 == 0 { "Credited" } else { "Debited" }, json!({})))
                .collect();
            let id = stream(&format!("{category}-{n}"));
            appended.extend(append(store, &id, *version, events).await);
            *version += take as u64;
        }
    }
    appended
}

/// Appends `events` to `id` at `version`; the events as stored.
async fn append(
    store: &MemoryStore,
    id: &StreamId,
    version: u64,
    events: Vec<NewEvent>,
) -> Vec<RecordedEvent> {
    let count = events.len() as u64;
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(version),
            events,
        ))
        .await
        .expect("append");
    store
        .read_raw(id, ReadRange::from(version + 1).to(version + count))
        .await
        .expect("read back")
        .events
}

/// Every stream's head among `events`.
fn heads(events: &[RecordedEvent]) -> BTreeMap<StreamId, u64> {
    let mut heads = BTreeMap::new();
    for event in events {
        let head = heads.entry(event.stream_id.clone()).or_insert(0);
        *head = (*head).max(event.version);
    }
    heads
}

/// Asserts the feed holds exactly `events`, once each, in order, without gaps.
async fn assert_holds(feed: &dyn FeedStore, events: &[RecordedEvent]) {
    let check = check_feed(feed, &heads(events)).await.expect("checked");
    assert!(check.is_sound(), "{check:?}");
    assert_eq!(check.events, events.len() as u64, "every event once");
}

/// A page is written only where none starts, a mark moves only from where it is, and both go
/// together or not at all.
pub async fn a_page_is_written_once_with_its_marks(feed: Arc<dyn FeedStore>) {
    let p = partition_of(&stream("Account-a"), feed.partitions());
    assert_eq!(feed.end(p).await.expect("end"), 0);
    let first = PageWrite {
        partition: p,
        pages: vec![page(p, 0, "Account-a", 1, 2)],
        marks: vec![mark("Account-a", 0, 2)],
    };
    assert_eq!(feed.write(&first).await.expect("write"), Written::Written);
    assert_eq!(feed.write(&first).await.expect("again"), Written::Stale);
    // The positions are free but the mark is not where this write expects it.
    let wrong_mark = PageWrite {
        partition: p,
        pages: vec![page(p, 2, "Account-a", 3, 1)],
        marks: vec![mark("Account-a", 0, 3)],
    };
    assert_eq!(feed.write(&wrong_mark).await.expect("w"), Written::Stale);
    assert_eq!(
        feed.end(p).await.expect("end"),
        2,
        "the page went with the mark"
    );
    let next = PageWrite {
        marks: vec![mark("Account-a", 2, 3)],
        ..wrong_mark
    };
    assert_eq!(feed.write(&next).await.expect("next"), Written::Written);
    assert_eq!(feed.end(p).await.expect("end"), 3);
    let marks = feed
        .marks(&[stream("Account-a"), stream("Account-none")])
        .await
        .expect("marks");
    assert_eq!(marks, [(stream("Account-a"), 3)].into_iter().collect());
    let read = feed.read_pages(p, 1, 10).await.expect("pages");
    let firsts: Vec<u64> = read.iter().map(|page| page.first).collect();
    assert_eq!(
        firsts,
        vec![0, 2],
        "the page holding position 1, then the next"
    );
    assert_eq!(
        feed.all_marks().await.expect("all"),
        [(stream("Account-a"), 3)].into_iter().collect()
    );
}

/// Writes no store accepts: a partition it does not have, pages that leave a gap or hold
/// nothing, a mark moving back.
pub async fn misuse_is_refused_before_writing(feed: Arc<dyn FeedStore>) {
    let beyond = feed.partitions();
    let cases = [
        PageWrite {
            partition: beyond,
            pages: vec![page(beyond, 0, "Account-a", 1, 1)],
            marks: vec![mark("Account-a", 0, 1)],
        },
        PageWrite {
            partition: 0,
            pages: vec![page(0, 0, "Account-a", 1, 1), page(0, 5, "Account-a", 2, 1)],
            marks: vec![mark("Account-a", 0, 2)],
        },
        PageWrite {
            partition: 0,
            pages: vec![page(0, 0, "Account-a", 1, 0)],
            marks: vec![mark("Account-a", 0, 1)],
        },
        PageWrite {
            partition: 0,
            pages: vec![page(0, 0, "Account-a", 1, 1)],
            marks: vec![mark("Account-a", 3, 2)],
        },
    ];
    for case in cases {
        let refused = feed.write(&case).await;
        assert!(matches!(refused, Err(StoreError::Misuse(_))), "{refused:?}");
    }
    assert_eq!(feed.end(0).await.expect("end"), 0, "nothing written");
    assert!(feed.all_marks().await.expect("marks").is_empty());
}

/// Batches as a stream delivers them at its worst: every record twice, batches out of order,
/// a stream's later events before its earlier ones, some records never delivered. The feed
/// ends up holding every event once, each stream in version order, with no gap.
pub async fn duplicates_reordering_and_gaps_index_every_event_once(feed: Arc<dyn FeedStore>) {
    let store = Arc::new(MemoryStore::new());
    let events = traffic(&store, "Account", 12, 9).await;
    let indexer = Indexer::new(feed.clone(), store.clone());
    let batches: Vec<&[RecordedEvent]> = events.chunks(10).collect();
    let mut reports = Vec::new();
    // Every third batch lost; the rest delivered newest first, then all of them again.
    for (n, batch) in batches.iter().enumerate().rev() {
        if n % 3 != 1 {
            reports.push(indexer.index(*batch).await.expect("indexed"));
        }
    }
    for batch in &batches {
        let mut reversed = batch.to_vec();
        reversed.reverse();
        reports.push(indexer.index(&reversed).await.expect("indexed again"));
    }
    assert_holds(feed.as_ref(), &events).await;
    let indexed: usize = reports.iter().map(|r| r.indexed).sum();
    let repaired: usize = reports.iter().map(|r| r.repaired).sum();
    let duplicates: usize = reports.iter().map(|r| r.duplicates).sum();
    assert_eq!(indexed, events.len(), "each event indexed once");
    assert!(repaired > 0, "newest first leaves gaps to repair");
    assert!(
        duplicates >= events.len(),
        "the second delivery changes nothing"
    );
}

/// Four indexers (four shards' invocations) index overlapping batches at once: every event
/// once, every partition without gaps.
pub async fn racing_indexers_share_partitions(feed: Arc<dyn FeedStore>) {
    let store = Arc::new(MemoryStore::new());
    let events = traffic(&store, "Order", 24, 6).await;
    let mut tasks = Vec::new();
    for writer in 0..4usize {
        let indexer = Indexer::new(feed.clone(), store.clone());
        let batches: Vec<Vec<RecordedEvent>> = events
            .chunks(7)
            .enumerate()
            .filter(|(n, _)| n % 4 == writer || n % 3 == writer)
            .map(|(_, batch)| batch.to_vec())
            .collect();
        tasks.push(tokio::spawn(async move {
            let (mut indexed, mut retries) = (0, 0);
            for batch in batches {
                let report = indexer.index(&batch).await.expect("indexed");
                indexed += report.indexed;
                retries += report.retries;
            }
            (indexed, retries)
        }));
    }
    let (mut indexed, mut retries) = (0, 0);
    for task in tasks {
        let (by_one, retried) = task.await.expect("joined");
        indexed += by_one;
        retries += retried;
    }
    assert!(retries > 0, "the writers raced for positions");
    // Batches no writer was given are caught up from the events table.
    let caught_up = Indexer::new(feed.clone(), store.clone())
        .catch_up(&heads(&events))
        .await
        .expect("caught up");
    assert_eq!(indexed + caught_up.indexed, events.len(), "each once");
    assert_holds(feed.as_ref(), &events).await;
}

/// Reading 7 at a time from the start, then on from each read's cursor, returns every entry
/// once; a read at the end returns nothing and the same cursor.
pub async fn a_reader_resumes_from_its_cursor(feed: Arc<dyn FeedStore>) {
    let store = Arc::new(MemoryStore::new());
    let events = traffic(&store, "Account", 9, 5).await;
    let indexer = Indexer::new(feed.clone(), store.clone());
    for batch in events.chunks(8) {
        indexer.index(batch).await.expect("indexed");
    }
    let mut cursor = Cursor::start(feed.partitions());
    let mut read = Vec::new();
    loop {
        let page = read_feed(feed.as_ref(), &cursor, 7).await.expect("read");
        assert!(page.entries.len() <= 7);
        if page.entries.is_empty() {
            assert_eq!(page.next, cursor, "nothing new: the same place");
            break;
        }
        cursor = Cursor::parse(&page.next.to_string(), feed.partitions()).expect("round trip");
        read.extend(page.entries);
    }
    assert_eq!(read.len(), events.len());
    assert_eq!(cursor.passed(), events.len() as u64);
    let mut places: Vec<(StreamId, u64)> = read
        .iter()
        .map(|e| (e.stream_id.clone(), e.version))
        .collect();
    let in_feed_order = places.clone();
    places.sort();
    places.dedup();
    assert_eq!(places.len(), events.len(), "no entry twice");
    for stream_id in heads(&events).keys() {
        let versions: Vec<u64> = in_feed_order
            .iter()
            .filter(|(s, _)| s == stream_id)
            .map(|(_, v)| *v)
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] + 1 == w[1]),
            "{stream_id} in order"
        );
    }
}

/// One stream's 1,250 events in one batch: pages of at most [`PAGE_EVENTS`], several atomic
/// writes, and a read from the middle of a page.
pub async fn long_streams_span_pages_and_writes(feed: Arc<dyn FeedStore>) {
    let store = Arc::new(MemoryStore::new());
    let id = stream("Ledger-long");
    let mut events = Vec::new();
    for _ in 0..13 {
        let version = events.len() as u64;
        let chunk = (0..(1_250 - version).min(99))
            .map(|_| NewEvent::new("Posted", json!({})))
            .collect();
        events.extend(append(&store, &id, version, chunk).await);
    }
    assert_eq!(events.len(), 1_250);
    let report = Indexer::new(feed.clone(), store.clone())
        .index(&events)
        .await
        .expect("indexed");
    assert_eq!((report.indexed, report.writes), (1_250, 2));
    assert_holds(feed.as_ref(), &events).await;
    let p = partition_of(&id, feed.partitions());
    let pages = feed.read_pages(p, 1_234, 5).await.expect("pages");
    assert_eq!(pages.len(), 1);
    assert!(pages[0].len() <= PAGE_EVENTS && pages[0].first <= 1_234 && pages[0].end() > 1_234);
    let text: Vec<String> = (0..feed.partitions())
        .map(|q| {
            if q == p {
                "1234".to_owned()
            } else {
                "0".to_owned()
            }
        })
        .collect();
    let after = Cursor::parse(&text.join("."), feed.partitions()).expect("a cursor");
    let read = read_feed(feed.as_ref(), &after, 3).await.expect("read");
    let versions: Vec<u64> = read.entries.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1_235, 1_236, 1_237]);
}

/// A feed that lacks some streams' newest events (records that never reached the indexer) is
/// found so by the check, and catching up from the heads makes it whole.
pub async fn a_feed_missing_events_is_found_and_caught_up(feed: Arc<dyn FeedStore>) {
    let store = Arc::new(MemoryStore::new());
    let events = traffic(&store, "Account", 6, 4).await;
    let indexer = Indexer::new(feed.clone(), store.clone());
    indexer.index(&events[..10]).await.expect("indexed");
    let check = check_feed(feed.as_ref(), &heads(&events))
        .await
        .expect("check");
    assert!(check.broken.is_empty(), "{check:?}");
    assert_eq!(
        check.missing.len(),
        6,
        "every stream lacks events: {check:?}"
    );
    let report = indexer.catch_up(&heads(&events)).await.expect("caught up");
    assert_eq!(report.indexed, events.len() - 10);
    assert_holds(feed.as_ref(), &events).await;
}

/// A consumer's partition is one instance's until its lease ends; the checkpoint moves only
/// for the holder, and only from where it is.
pub async fn leases_are_exclusive_until_they_end(feed: Arc<dyn FeedStore>) {
    let (now, until) = (1_000_000, 1_030_000);
    assert_eq!(
        feed.acquire("reader", 1, "a", now, until).await.expect("a"),
        Some(0),
        "a new consumer starts at 0"
    );
    assert_eq!(
        feed.acquire("reader", 1, "b", now + 10, now + 30_010)
            .await
            .expect("b"),
        None,
        "a's lease holds"
    );
    assert_eq!(
        feed.acquire("other", 1, "b", now, until)
            .await
            .expect("other"),
        Some(0),
        "another consumer's checkpoints are its own"
    );
    assert!(
        feed.advance("reader", 1, "a", 0, 5, until)
            .await
            .expect("a moves")
    );
    assert!(
        !feed
            .advance("reader", 1, "b", 5, 9, until)
            .await
            .expect("b may not")
    );
    assert!(
        !feed
            .advance("reader", 1, "a", 0, 7, until)
            .await
            .expect("not from 0 again")
    );
    assert_eq!(
        feed.acquire("reader", 1, "a", now + 20, until + 20)
            .await
            .expect("renewed"),
        Some(5)
    );
    let later = until + 21;
    assert_eq!(
        feed.acquire("reader", 1, "b", later, later + 30_000)
            .await
            .expect("expired"),
        Some(5),
        "b takes the partition where a left it"
    );
    assert!(
        !feed
            .advance("reader", 1, "a", 5, 8, later)
            .await
            .expect("a lost it")
    );
    let checkpoints = feed.checkpoints("reader").await.expect("checkpoints");
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        (
            checkpoints[0].partition,
            checkpoints[0].position,
            checkpoints[0].owner.as_str()
        ),
        (1, 5, "b")
    );
}

/// A consumer's parked streams: parking keeps the first failure, a redrive is asked only of a
/// parked stream, unparking takes it off; other consumers' lists are their own; every consumer
/// that parked is listed.
pub async fn parked_streams_keep_their_first_failure_until_unparked(feed: Arc<dyn FeedStore>) {
    let sick = stream("Account-sick");
    assert!(feed.parked("reader").await.expect("none").is_empty());
    assert!(feed.parking_consumers().await.expect("none").is_empty());
    assert!(
        !feed
            .request_redrive("reader", &sick)
            .await
            .expect("not parked")
    );
    let parked = |version: u64, error: &str| Parked {
        stream_id: sick.clone(),
        version,
        error: error.to_owned(),
        parked_at: Utc::now(),
        redrive: false,
    };
    feed.park("reader", &parked(4, "first"), false)
        .await
        .expect("parked");
    feed.park("reader", &parked(6, "later"), false)
        .await
        .expect("again");
    feed.park("other", &parked(9, "its own"), false)
        .await
        .expect("other");
    let listed = feed.parked("reader").await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[&sick].version,
            listed[&sick].error.as_str(),
            listed[&sick].redrive
        ),
        (4, "first", false)
    );
    assert!(feed.request_redrive("reader", &sick).await.expect("asked"));
    assert!(feed.parked("reader").await.expect("listed")[&sick].redrive);
    feed.park("reader", &parked(7, "failed again"), true)
        .await
        .expect("replaced");
    let listed = feed.parked("reader").await.expect("listed");
    assert_eq!(
        (listed[&sick].version, listed[&sick].redrive),
        (7, false),
        "a redrive that failed again replaces the failure"
    );
    feed.unpark("reader", &sick).await.expect("unparked");
    assert!(feed.parked("reader").await.expect("empty").is_empty());
    feed.unpark("reader", &sick).await.expect("twice is fine");
    assert_eq!(feed.parked("other").await.expect("other")[&sick].version, 9);
    // Both are where an operator looks, the one with nothing parked now too.
    assert_eq!(
        feed.parking_consumers().await.expect("listed"),
        ["other", "reader"]
    );
}
