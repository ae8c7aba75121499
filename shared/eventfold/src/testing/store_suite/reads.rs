//! The suite's cases about reading: pages, time travel, upcasting, the integrity chain.

use serde_json::{Value, json};

use super::*;

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

/// A stream's tail: the newest events of a range in version order, and whether older ones
/// exist; an empty or inverted range reads nothing.
pub async fn tail_reads(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    create(store.as_ref(), &id, events(1..=25)).await;
    let versions = |read: &crate::store::RawRead| -> Vec<u64> {
        read.events.iter().map(|e| e.version).collect()
    };
    let tail = store
        .read_raw(&id, ReadRange::from(1).newest(10))
        .await
        .expect("tail");
    assert_eq!(versions(&tail), (16..=25).collect::<Vec<_>>());
    assert!(tail.more, "versions 1 to 15 are older");
    let whole = store
        .read_raw(&id, ReadRange::from(1).newest(25))
        .await
        .expect("whole stream as its tail");
    assert_eq!(versions(&whole), (1..=25).collect::<Vec<_>>());
    assert!(
        !whole.more,
        "a tail as long as the stream has nothing older"
    );
    let bounded = store
        .read_raw(&id, ReadRange::from(5).to(12).newest(3))
        .await
        .expect("bounded tail");
    assert_eq!(versions(&bounded), vec![10, 11, 12]);
    assert!(bounded.more);
    let inverted = store
        .read_raw(&id, ReadRange::from(12).to(11))
        .await
        .expect("inverted range");
    assert!(inverted.events.is_empty() && !inverted.more);
    let missing = store
        .read_raw(&unique_stream(), ReadRange::from(1).newest(10))
        .await
        .expect("tail of no stream");
    assert!(missing.events.is_empty() && !missing.more);
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
        Box::new(|document: &mut Document| {
            if let Some(Value::Object(payload)) = document.get_mut("payload") {
                payload.insert("n".into(), json!(333));
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
        Box::new(|document: &mut Document| {
            document.insert("occurred_at".into(), json!("2001-01-01T00:00:00Z"));
        }),
    )
    .await;
    assert_eq!(
        serde_json::to_value(store.verify_stream(&other).await.expect("verify")).expect("json"),
        json!({ "ok": false, "first_bad_version": 2 }),
        "an undecodable item is reported, not an error"
    );
}

/// A long stream is verified a range at a time, each from the stored chain of the version
/// before it, to the same head as a whole verification; tampering in a range is found there,
/// and a range after it cannot tell (it starts from what is stored).
pub async fn integrity_chain_verifies_by_ranges(h: &dyn Harness) {
    let store = h.store();
    let id = unique_stream();
    create(store.as_ref(), &id, events(1..=25)).await;
    let whole = store.verify_stream(&id).await.expect("verify");
    let mut ranges = Vec::new();
    let mut from = Some(1);
    while let Some(start) = from {
        let (verification, next) = store.verify_range(&id, start, 10).await.expect("verify");
        ranges.push((start, serde_json::to_value(&verification).expect("json")));
        from = next;
    }
    let head = store.read_all(&id, 1).await.expect("read")[24]
        .chain
        .clone();
    let counted: Vec<(u64, u64)> = ranges
        .iter()
        .map(|(start, v)| (*start, v["events"].as_u64().expect("intact")))
        .collect();
    assert_eq!(counted, [(1, 10), (11, 10), (21, 5)]);
    assert_eq!(ranges[2].1["head"], json!(head));
    assert_eq!(
        serde_json::to_value(&whole).expect("json")["head"],
        json!(head)
    );
    let (past_the_end, next) = store.verify_range(&id, 26, 10).await.expect("verify");
    assert_eq!(
        (
            serde_json::to_value(&past_the_end).expect("json")["events"].clone(),
            next
        ),
        (json!(0), None)
    );
    h.tamper(
        &id,
        14,
        Box::new(|document: &mut Document| {
            if let Some(Value::Object(payload)) = document.get_mut("payload") {
                payload.insert("n".into(), json!(1_400));
            }
        }),
    )
    .await;
    let (broken, next) = store.verify_range(&id, 11, 10).await.expect("verify");
    assert_eq!(
        (serde_json::to_value(&broken).expect("json"), next),
        (json!({ "ok": false, "first_bad_version": 14 }), None)
    );
    let (after, _) = store.verify_range(&id, 21, 10).await.expect("verify");
    assert!(after.is_intact(), "a range starts from the chain as stored");
}
