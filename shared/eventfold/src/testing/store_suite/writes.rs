//! The suite's cases about writing: expected versions, atomicity, limits, idempotency,
//! snapshot marks.

use serde_json::json;

use super::*;

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
