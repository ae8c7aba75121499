//! The event store conformance suite: written once, run against any [`EventStore`].
//!
//! This crate runs it against [`MemoryStore`] and, on an emulator, [`crate::DynamoStore`];
//! an implementation of your own passes it too, or says where it differs. Each case is an
//! `async fn(&dyn Harness)`; [`crate::event_store_conformance!`] turns them all into tests.
//! Build the store under test with [`settings`]: the cases rely on its snapshot interval and
//! upcasters.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::codec::Item;
use crate::error::CurrentVersion;
use crate::store::{
    AppendRequest, AppendResult, AsOf, EventStore, ExpectedVersion, NewCommand, StreamWrite,
};
use crate::{CommandId, MemoryStore, NewEvent, StoreError, StreamId};

/// A raw change to a stored item.
pub type Edit = Box<dyn for<'a> FnOnce(&'a mut Item) + Send>;

/// A store under test plus what an attacker (or an old deployment) could do to its table.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    fn store(&self) -> Arc<dyn EventStore>;
    /// Rewrites a stored event item, bypassing every check.
    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit);
}

/// The memory store.
#[derive(Debug)]
pub struct MemoryHarness(pub Arc<MemoryStore>);

impl MemoryHarness {
    /// A memory store with the suite's [`settings`].
    pub fn new() -> Self {
        Self(Arc::new(MemoryStore::with_settings(settings())))
    }
}

impl Default for MemoryHarness {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn EventStore> {
        self.0.clone()
    }
    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit) {
        assert!(
            self.0.tamper_with(stream_id, version, edit),
            "no such event"
        );
    }
}

/// A DynamoDB event store and direct access to its events table.
#[derive(Debug)]
pub struct DynamoHarness {
    /// The store under test (built with [`settings`]).
    pub store: Arc<dyn EventStore>,
    /// A client for the same table.
    pub client: aws_sdk_dynamodb::Client,
    /// The events table.
    pub table: String,
}

#[async_trait]
impl Harness for DynamoHarness {
    fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }
    async fn tamper(&self, stream_id: &StreamId, version: u64, edit: Edit) {
        let mut item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("stream_id", AttributeValue::S(stream_id.to_string()))
            .key("version", AttributeValue::N(version.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .expect("event exists");
        edit(&mut item);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("raw put");
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("Conformance", id).expect("valid stream id")
}

fn unique_stream() -> StreamId {
    stream(&uuid::Uuid::new_v4().simple().to_string())
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", json!({ "n": n, "label": format!("event {n}") }))
}

fn events(range: std::ops::RangeInclusive<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

/// Appends `events` to `id`, a stream that must not exist yet.
async fn create(store: &dyn EventStore, id: &StreamId, events: Vec<NewEvent>) {
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::NoStream,
            events,
        ))
        .await
        .expect("append");
}

async fn length(store: &dyn EventStore, id: &StreamId) -> usize {
    store.read_all(id, 1).await.expect("read").len()
}

fn written(result: AppendResult) -> crate::store::AppendOutcome {
    match result {
        AppendResult::Written(outcome) => outcome,
        AppendResult::Replayed(record) => panic!("expected a write, got a replay of {record:?}"),
    }
}

/// Appended events read back exactly: ids, types, payloads, metadata, timestamps, versions.
pub async fn append_then_read_back(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let mut batch = events(1..=3);
    batch[1].metadata.correlation_id = Some("corr-1".into());
    batch[1].metadata.actor = Some("ada".into());
    let outcome = written(
        store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::NoStream,
                batch.clone(),
            ))
            .await
            .expect("append"),
    );
    assert_eq!(outcome.streams[0].first_version, 1);
    assert_eq!(outcome.streams[0].last_version, 3);
    let read = store.read_all(&id, 1).await.expect("read");
    assert_eq!(read.len(), 3);
    for (i, (stored, sent)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(stored.version, i as u64 + 1);
        assert_eq!(stored.stream_id, id);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(
            crate::envelope::format_timestamp(&stored.occurred_at),
            crate::envelope::format_timestamp(&sent.occurred_at)
        );
    }
    assert_eq!(outcome.heads[0].chain(), read[2].chain);
    let head = store.read_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.version(), head.chain()), (3, read[2].chain.as_str()));
    assert!(
        store
            .read_head(&unique_stream())
            .await
            .expect("head")
            .is_none()
    );
}

/// `Any`, `NoStream` and `Exact` behave as documented, and conflicts say what they saw.
pub async fn expected_versions(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(0),
            events(1..=2),
        ))
        .await
        .expect("Exact(0) creates");
    let conflict = store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::NoStream,
            events(3..=3),
        ))
        .await
        .expect_err("stream exists");
    assert!(
        matches!(&conflict, StoreError::Conflict { stream_id, expected: ExpectedVersion::NoStream, actual: CurrentVersion::At(2), .. } if *stream_id == id),
        "{conflict:?}"
    );
    for stale in [1, 3, 7] {
        let conflict = store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(stale),
                events(3..=3),
            ))
            .await
            .expect_err("stale");
        assert!(
            matches!(conflict, StoreError::Conflict { expected: ExpectedVersion::Exact(e), actual: CurrentVersion::At(2), .. } if e == stale),
            "{conflict:?}"
        );
    }
    store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(2),
            events(3..=3),
        ))
        .await
        .expect("exact");
    let any = written(
        store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Any,
                events(4..=5),
            ))
            .await
            .expect("any"),
    );
    assert_eq!(
        (any.streams[0].first_version, any.streams[0].last_version),
        (4, 5)
    );
    let fresh = unique_stream();
    let conflict = store
        .append(AppendRequest::single(
            fresh.clone(),
            ExpectedVersion::Exact(3),
            events(1..=1),
        ))
        .await
        .expect_err("no such stream");
    assert!(
        matches!(
            conflict,
            StoreError::Conflict {
                actual: CurrentVersion::NoStream,
                ..
            }
        ),
        "{conflict:?}"
    );
    assert_eq!(length(store.as_ref(), &id).await, 5);
    assert_eq!(length(store.as_ref(), &fresh).await, 0);
    let text = conflict.to_string();
    assert!(
        text.contains(fresh.as_str()) && text.contains("version 3") && text.contains("no stream"),
        "{text}"
    );
}

/// Appending after a head read earlier needs no expected version and still detects races.
pub async fn append_after_head(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let first = written(
        store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::NoStream,
                events(1..=1),
            ))
            .await
            .expect("append"),
    );
    let head = first.heads[0].clone();
    store
        .append(
            AppendRequest::default().with_write(StreamWrite::after(head.clone(), events(2..=2))),
        )
        .await
        .expect("continues from the head");
    let stale = store
        .append(AppendRequest::default().with_write(StreamWrite::after(head, events(3..=3))))
        .await
        .expect_err("head is stale");
    assert!(
        matches!(
            stale,
            StoreError::Conflict {
                actual: CurrentVersion::Beyond(1),
                ..
            }
        ),
        "{stale:?}"
    );
    // The refusal carries the event in the way, exactly as a read returns it.
    let StoreError::Conflict {
        next: Some(next), ..
    } = stale
    else {
        panic!("the conflict carries the next event: {stale:?}");
    };
    let stored = store.read_all(&id, 2).await.expect("read");
    assert_eq!(*next, stored[0], "the event at version 2");
    assert!(store.verify_stream(&id).await.expect("verify").is_intact());
}

/// Several streams in one append: all written, or none when one expectation is stale.
pub async fn multi_stream_atomicity(h: &dyn Harness) {
    let store = h.store();
    let (a, b) = (unique_stream(), unique_stream());
    let both =
        AppendRequest::single(a.clone(), ExpectedVersion::NoStream, events(1..=2)).with_write(
            StreamWrite::new(b.clone(), ExpectedVersion::NoStream, events(1..=1)),
        );
    let outcome = written(store.append(both).await.expect("both"));
    assert_eq!(outcome.streams.len(), 2);
    let stale =
        AppendRequest::single(a.clone(), ExpectedVersion::Exact(2), events(3..=3)).with_write(
            StreamWrite::new(b.clone(), ExpectedVersion::Exact(5), events(2..=2)),
        );
    let conflict = store.append(stale).await.expect_err("b is stale");
    assert!(
        matches!(&conflict, StoreError::Conflict { stream_id, .. } if *stream_id == b),
        "{conflict:?}"
    );
    assert_eq!(length(store.as_ref(), &a).await, 2, "a must not be written");
    assert_eq!(length(store.as_ref(), &b).await, 1, "b must not be written");
}

/// 99 events and a command record (100 items) fit one transaction; 101 items do not.
pub async fn transaction_item_limits(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let command = NewCommand {
        command_id: CommandId::new(uuid::Uuid::new_v4().to_string()).expect("id"),
        request_hash: "h".into(),
        receipt: None,
    };
    let outcome = written(
        store
            .append(
                AppendRequest::single(id.clone(), ExpectedVersion::NoStream, events(1..=99))
                    .with_command(command),
            )
            .await
            .expect("99 events + command"),
    );
    assert_eq!(outcome.streams[0].last_version, 99);
    assert_eq!(length(store.as_ref(), &id).await, 99);
    let other = unique_stream();
    let too_many = store
        .append(AppendRequest::single(
            other.clone(),
            ExpectedVersion::NoStream,
            events(1..=101),
        ))
        .await
        .expect_err("101 items");
    assert!(
        matches!(
            too_many,
            StoreError::TooLarge {
                actual: 101,
                limit: 100,
                ..
            }
        ),
        "{too_many:?}"
    );
    let with_command =
        AppendRequest::single(other.clone(), ExpectedVersion::NoStream, events(1..=100))
            .with_command(NewCommand {
                command_id: CommandId::new("c-100").expect("id"),
                request_hash: "h".into(),
                receipt: None,
            });
    assert!(matches!(
        store.append(with_command).await,
        Err(StoreError::TooLarge { actual: 101, .. })
    ));
    assert_eq!(length(store.as_ref(), &other).await, 0, "nothing written");
}

/// Oversized events, bad event types and empty appends are refused before any write.
pub async fn invalid_appends_write_nothing(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let huge = NewEvent::new("Huge", json!({ "blob": "x".repeat(300 * 1024) }));
    let error = store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Any,
            vec![event(1), huge],
        ))
        .await
        .expect_err("too large");
    assert!(matches!(error, StoreError::TooLarge { .. }), "{error:?}");
    for bad in ["", "9lives", "has space", "semi;colon"] {
        let error = store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Any,
                vec![NewEvent::new(bad, json!({}))],
            ))
            .await
            .expect_err("bad type");
        assert!(matches!(error, StoreError::Misuse(_)), "{bad:?}: {error:?}");
    }
    let empty = store
        .append(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Any,
            vec![],
        ))
        .await
        .expect_err("no events");
    assert!(matches!(empty, StoreError::Misuse(_)));
    assert!(matches!(
        store.append(AppendRequest::default()).await,
        Err(StoreError::Misuse(_))
    ));
    let twice = AppendRequest::single(id.clone(), ExpectedVersion::Any, events(1..=1)).with_write(
        StreamWrite::new(id.clone(), ExpectedVersion::Any, events(2..=2)),
    );
    assert!(matches!(
        store.append(twice).await,
        Err(StoreError::Misuse(_))
    ));
    assert_eq!(length(store.as_ref(), &id).await, 0);
}

/// A stream far beyond one 1 MB page reads back completely, in order.
pub async fn large_stream_reads_every_page(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let blob = "y".repeat(30 * 1024);
    let mut version = 0u64;
    // 110 events of ~30 KB: about 3.3 MB, in appends of 40 (~1.2 MB each, under 4 MB).
    while version < 110 {
        let batch: Vec<NewEvent> = (version + 1..=(version + 40).min(110))
            .map(|n| NewEvent::new("Bulky", json!({ "n": n, "blob": blob })))
            .collect();
        let count = batch.len() as u64;
        store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(version),
                batch,
            ))
            .await
            .expect("append");
        version += count;
    }
    let all = store.read_all(&id, 1).await.expect("read all");
    assert_eq!(all.len(), 110);
    let total: usize = all.iter().map(|e| e.payload.to_string().len()).sum();
    assert!(total > 3 * 1024 * 1024, "the stream holds {total} bytes");
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1 && e.payload["n"] == json!(i + 1))
    );
    assert!(store.verify_stream(&id).await.expect("verify").is_intact());
}

/// Paged reads: `from` inclusive, `next` until the end, pages add up to the stream.
pub async fn paged_reads(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    create(store.as_ref(), &id, events(1..=25)).await;
    let mut from = 1;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.read_stream(&id, from, 10).await.expect("page");
        pages += 1;
        seen.extend(page.events.iter().map(|e| e.version));
        match page.next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    let exact = store.read_stream(&id, 16, 10).await.expect("last page");
    assert_eq!(exact.events.len(), 10);
    assert_eq!(exact.next, None, "no page after the last event");
    let past = store.read_stream(&id, 40, 10).await.expect("past the end");
    assert!(past.events.is_empty() && past.next.is_none());
}

/// Time travel by version and by instant.
pub async fn as_of_reads(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let mut early = events(1..=3);
    let base = chrono::Utc::now() - chrono::Duration::hours(3);
    for (hours, e) in (0..).zip(early.iter_mut()) {
        e.occurred_at = base + chrono::Duration::hours(hours);
    }
    create(store.as_ref(), &id, early).await;
    let by_version = store
        .read_as_of(&id, AsOf::Version(2))
        .await
        .expect("as of version");
    assert_eq!(
        by_version.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let by_time = store
        .read_as_of(&id, AsOf::Time(base + chrono::Duration::minutes(90)))
        .await
        .expect("as of time");
    assert_eq!(
        by_time.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let before = store
        .read_as_of(&id, AsOf::Time(base - chrono::Duration::minutes(1)))
        .await
        .expect("before");
    assert!(before.is_empty());
}

/// A repeated command returns the first outcome and writes nothing; a reused id with another
/// request is refused.
pub async fn idempotent_commands(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    let command = |hash: &str| NewCommand {
        command_id: CommandId::new(format!("cmd-{id}")).expect("id"),
        request_hash: hash.into(),
        receipt: Some(json!({ "id": "generated", "hash": hash })),
    };
    let first = written(
        store
            .append(
                AppendRequest::single(id.clone(), ExpectedVersion::NoStream, events(1..=2))
                    .with_command(command("A")),
            )
            .await
            .expect("first"),
    );
    let again = store
        .append(
            AppendRequest::single(id.clone(), ExpectedVersion::NoStream, events(1..=2))
                .with_command(command("A")),
        )
        .await
        .expect("replay");
    let AppendResult::Replayed(record) = again else {
        panic!("expected a replay, got {again:?}");
    };
    assert_eq!(record.streams, first.streams);
    assert_eq!(
        record.receipt,
        Some(json!({ "id": "generated", "hash": "A" }))
    );
    // The same command with an expectation that now holds is still a replay, not a new write.
    let still = store
        .append(
            AppendRequest::single(id.clone(), ExpectedVersion::Exact(2), events(3..=3))
                .with_command(command("A")),
        )
        .await
        .expect("replay");
    assert!(matches!(still, AppendResult::Replayed(_)));
    let mismatch = store
        .append(
            AppendRequest::single(id.clone(), ExpectedVersion::Exact(2), events(3..=3))
                .with_command(command("B")),
        )
        .await
        .expect_err("different request");
    assert!(
        matches!(mismatch, StoreError::IdempotencyMismatch { .. }),
        "{mismatch:?}"
    );
    assert_eq!(length(store.as_ref(), &id).await, 2, "nothing more written");
    let stored = store
        .read_command(&CommandId::new(format!("cmd-{id}")).expect("id"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.request_hash, "A");
    assert!(stored.expires_at > chrono::Utc::now().timestamp());
}

/// Events stored at an old schema are upcast on every read.
pub async fn upcasting_on_read(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    create(
        store.as_ref(),
        &id,
        vec![
            NewEvent::new("Renamed", json!({ "fullname": "Ada Lovelace" })),
            NewEvent::new("Renamed", json!({ "first": "Grace", "last": "Hopper" }))
                .with_schema_version(2),
        ],
    )
    .await;
    let read = store.read_all(&id, 1).await.expect("read");
    assert!(
        read.iter().all(|e| e.schema_version == 2),
        "upcasters registered by the harness"
    );
    assert_eq!(
        read[0].payload,
        json!({ "first": "Ada", "last": "Lovelace" })
    );
    assert_eq!(
        read[1].payload,
        json!({ "first": "Grace", "last": "Hopper" })
    );
    // The chain covers what was stored, not the upcast view.
    assert!(store.verify_stream(&id).await.expect("verify").is_intact());
}

/// The registry the upcasting case expects: `Renamed` v1 `{fullname}` → v2 `{first, last}`.
pub fn upcasters() -> crate::Upcasters {
    crate::Upcasters::new().register("Renamed", 1, |mut payload| {
        let full = payload
            .get("fullname")
            .and_then(|v| v.as_str())
            .ok_or("v1 Renamed has no fullname")?
            .to_owned();
        let (first, last) = full.split_once(' ').unwrap_or((full.as_str(), ""));
        payload = json!({ "first": first, "last": last });
        Ok(payload)
    })
}

/// Tampering with any stored event is detected at that version.
pub async fn integrity_chain_detects_tampering(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    create(store.as_ref(), &id, events(1..=5)).await;
    let intact = store.verify_stream(&id).await.expect("verify");
    let head = store.read_all(&id, 1).await.expect("read")[4].chain.clone();
    assert_eq!(
        serde_json::to_value(&intact).expect("json"),
        json!({ "ok": true, "head": head, "events": 5 })
    );
    h.tamper(
        &id,
        3,
        Box::new(|item: &mut Item| {
            if let Some(AttributeValue::M(payload)) = item.get_mut("payload") {
                payload.insert("n".into(), AttributeValue::N("333".into()));
            }
        }),
    )
    .await;
    let broken = store.verify_stream(&id).await.expect("verify");
    assert_eq!(
        serde_json::to_value(&broken).expect("json"),
        json!({ "ok": false, "first_bad_version": 3 })
    );
    let other = unique_stream();
    create(store.as_ref(), &other, events(1..=3)).await;
    h.tamper(
        &other,
        2,
        Box::new(|item: &mut Item| {
            item.insert(
                "occurred_at".into(),
                AttributeValue::S("2001-01-01T00:00:00Z".into()),
            );
        }),
    )
    .await;
    assert_eq!(
        serde_json::to_value(store.verify_stream(&other).await.expect("verify")).expect("json"),
        json!({ "ok": false, "first_bad_version": 2 }),
        "an undecodable item is reported, not an error"
    );
}

/// The writer flags the event at which a stream crosses its snapshot interval.
pub async fn snapshot_due_marking(h: &dyn Harness) {
    let store = h.store();
    let id = StreamId::new("Snappy", &uuid::Uuid::new_v4().simple().to_string()).expect("id");
    for (expected, batch) in [
        (0, 1..=3),
        (3, 4..=6),
        (6, 7..=9),
        (9, 10..=10),
        (10, 11..=11),
    ] {
        store
            .append(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(expected),
                events(batch),
            ))
            .await
            .expect("append");
    }
    let due: Vec<u64> = store
        .read_all(&id, 1)
        .await
        .expect("read")
        .iter()
        .filter(|e| e.snapshot_due)
        .map(|e| e.version)
        .collect();
    assert_eq!(due, vec![6, 10], "interval of 5 for category Snappy");
}

/// Store settings every harness uses: small snapshot interval for `Snappy`, test upcasters.
pub fn settings() -> crate::StoreSettings {
    let mut settings = crate::StoreSettings::default();
    settings
        .snapshot_policy
        .per_category
        .insert("Snappy".into(), 5);
    settings.upcasters = Arc::new(upcasters());
    settings
}
