//! The suite's cases about rows shared by many streams: per-source checkpoints, routing by the
//! previous event, concurrent writers, rebuilds.

use super::*;

/// A projection for the suite with shared rows: one row per club, fed by every member's
/// stream. `Joined {club}` goes to the club; `Paid {cents}` and `Left` go where the member's
/// last event went; each join moves a `#clubs` counter.
#[derive(Debug)]
pub struct Clubs;

/// [`Clubs`]' row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClubRow {
    /// The members, sorted.
    pub members: Vec<String>,
    /// Dues paid, in cents.
    pub dues: u64,
}

impl Projection for Clubs {
    type Row = ClubRow;

    fn name(&self) -> &str {
        "clubs"
    }

    fn rows(&self) -> Rows {
        Rows::Shared
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == "Member"
    }

    fn row_key(&self, event: &RecordedEvent, previous: Option<&str>) -> Option<String> {
        match event.event_type.as_str() {
            "Joined" => event.payload["club"].as_str().map(str::to_owned),
            _ => previous.map(str::to_owned),
        }
    }

    fn apply(
        &self,
        row: Option<ClubRow>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<ClubRow>>, StoreError> {
        let member = event.stream_id.entity_id().to_owned();
        let mut row = row.unwrap_or_default();
        let mut counters = Vec::new();
        match event.event_type.as_str() {
            "Joined" => {
                row.members.push(member);
                row.members.sort();
                counters.push(CounterDelta::new("#clubs", "joined", 1));
            }
            "Left" => row.members.retain(|m| *m != member),
            "Paid" => {
                row.dues += event.payload["cents"]
                    .as_u64()
                    .ok_or_else(|| StoreError::corrupt("Paid without cents"))?;
            }
            _ => return Ok(None),
        }
        Ok(Some(Update {
            row: Some(row),
            counters,
        }))
    }
}

/// A member's stream of `(type, payload)` events, appended to `events`.
async fn member_stream(events: &MemoryStore, history: &[(&str, Value)]) -> Vec<RecordedEvent> {
    let stream = StreamId::new("Member", &unique_key()).expect("id");
    let new = history
        .iter()
        .map(|(t, payload)| NewEvent::new(*t, payload.clone()))
        .collect();
    events
        .append(AppendRequest::single(
            stream.clone(),
            ExpectedVersion::NoStream,
            new,
        ))
        .await
        .expect("append");
    events.read_all(&stream, 1).await.expect("read")
}

/// The clubs projection over `store`, fed from a memory event store of its own.
fn clubs_over(store: &Arc<dyn ReadModelStore>) -> (Arc<MemoryStore>, Projector<Clubs>) {
    let events = Arc::new(MemoryStore::new());
    (events.clone(), Projector::new(Clubs, store.clone(), events))
}

fn club_key() -> String {
    format!("club-{}", unique_key())
}

/// A shared row gathers the events of many streams, each checkpointed on its own.
pub async fn shared_rows_gather_events_of_many_streams(store: Arc<dyn ReadModelStore>) {
    let (events, projector) = clubs_over(&store);
    let club = club_key();
    let ada = member_stream(
        &events,
        &[
            ("Joined", json!({"club": club})),
            ("Paid", json!({"cents": 500})),
        ],
    )
    .await;
    let bob = member_stream(&events, &[("Joined", json!({"club": club}))]).await;
    for stream in [&ada, &bob] {
        projector
            .project_stream(stream)
            .await
            .into_result()
            .expect("projects");
    }
    let (revision, row) = projector.row(&club).await.expect("row").expect("a row");
    let mut members = vec![
        ada[0].stream_id.entity_id().to_owned(),
        bob[0].stream_id.entity_id().to_owned(),
    ];
    members.sort();
    assert_eq!(row, ClubRow { members, dues: 500 });
    assert_eq!(revision, 2, "one write per stream's batch");
    let checkpoint = store
        .load_checkpoint(&ada[0].stream_id)
        .await
        .expect("load")
        .expect("kept");
    assert_eq!(
        (checkpoint.version, checkpoint.row_key.as_deref()),
        (2, Some(club.as_str()))
    );
    assert!(
        !store
            .rows()
            .await
            .expect("rows")
            .keys()
            .any(|k| k.starts_with('$')),
        "checkpoints are not rows"
    );
}

/// Per source stream, duplicates change nothing and gaps are repaired from the events table;
/// counters count each event once.
pub async fn shared_rows_ignore_duplicates_and_repair_gaps(store: Arc<dyn ReadModelStore>) {
    let (events, projector) = clubs_over(&store);
    let club = club_key();
    let ada = member_stream(
        &events,
        &[
            ("Joined", json!({"club": club})),
            ("Paid", json!({"cents": 100})),
            ("Paid", json!({"cents": 20})),
        ],
    )
    .await;
    let joined = |c: &BTreeMap<String, i64>| c.get("joined").copied().unwrap_or(0);
    let before = joined(&store.counters("#clubs").await.expect("counters"));
    assert_eq!(
        projector.project(&ada[1]).await.expect("v2"),
        Projected::Repaired { missing: 1 }
    );
    assert_eq!(
        projector.project(&ada[0]).await.expect("v1"),
        Projected::Duplicate
    );
    assert_eq!(
        projector.project(&ada[1]).await.expect("v2"),
        Projected::Duplicate
    );
    assert_eq!(
        projector.project(&ada[2]).await.expect("v3"),
        Projected::Applied
    );
    assert_eq!(
        projector
            .project_stream(&ada)
            .await
            .into_result()
            .expect("again"),
        vec![Projected::Duplicate; 3]
    );
    let (_, row) = projector.row(&club).await.expect("row").expect("a row");
    assert_eq!(row.dues, 120);
    assert_eq!(
        joined(&store.counters("#clubs").await.expect("counters")) - before,
        1
    );
}

/// A stream whose events move to another row leaves the first and joins the second, routed by
/// where its previous event went.
pub async fn a_stream_moves_between_shared_rows(store: Arc<dyn ReadModelStore>) {
    let (events, projector) = clubs_over(&store);
    let (first, second) = (club_key(), club_key());
    let ada = member_stream(
        &events,
        &[
            ("Joined", json!({"club": first})),
            ("Left", json!({})),
            ("Joined", json!({"club": second})),
            ("Paid", json!({"cents": 7})),
        ],
    )
    .await;
    let (head, tail) = ada.split_at(2);
    projector
        .project_stream(head)
        .await
        .into_result()
        .expect("first half");
    projector
        .project_stream(tail)
        .await
        .into_result()
        .expect("second half");
    let member = ada[0].stream_id.entity_id().to_owned();
    let left = projector.row(&first).await.expect("row").expect("a row").1;
    assert!(left.members.is_empty() && left.dues == 0, "{left:?}");
    let joined = projector.row(&second).await.expect("row").expect("a row").1;
    assert_eq!(
        joined,
        ClubRow {
            members: vec![member],
            dues: 7
        }
    );
}

/// Streams written concurrently to one shared row both land: the row's revision makes one of
/// them load again and apply again.
pub async fn concurrent_streams_meet_at_a_shared_row(store: Arc<dyn ReadModelStore>) {
    let (events, projector) = clubs_over(&store);
    let club = club_key();
    let mut streams = Vec::new();
    for _ in 0..6 {
        streams.push(
            member_stream(
                &events,
                &[
                    ("Joined", json!({"club": club})),
                    ("Paid", json!({"cents": 1})),
                ],
            )
            .await,
        );
    }
    let outcomes =
        futures::future::join_all(streams.iter().map(|s| projector.project_stream(s))).await;
    for outcome in outcomes {
        outcome.into_result().expect("each stream lands");
    }
    let (revision, row) = projector.row(&club).await.expect("row").expect("a row");
    assert_eq!((row.members.len(), row.dues, revision), (6, 6, 6));
}

/// A shared projection rebuilt from the events table (cleared, then replayed stream by
/// stream) holds the same rows.
pub async fn shared_rows_rebuild_to_the_same_rows(store: Arc<dyn ReadModelStore>) {
    let (events, projector) = clubs_over(&store);
    let (a, b) = (club_key(), club_key());
    for history in [
        vec![
            ("Joined", json!({"club": a})),
            ("Paid", json!({"cents": 3})),
        ],
        vec![
            ("Joined", json!({"club": b})),
            ("Left", json!({})),
            ("Joined", json!({"club": a})),
        ],
        vec![
            ("Joined", json!({"club": b})),
            ("Paid", json!({"cents": 4})),
        ],
    ] {
        let stream = member_stream(&events, &history).await;
        projector
            .project_stream(&stream)
            .await
            .into_result()
            .expect("projects");
    }
    let documents =
        |rows: BTreeMap<String, StoredRow>| -> BTreeMap<String, Option<Map<String, Value>>> {
            rows.into_iter()
                .filter(|(k, _)| *k == a || *k == b)
                .map(|(k, r)| (k, r.row))
                .collect()
        };
    let before = documents(store.rows().await.expect("rows"));
    assert_eq!(before.len(), 2);
    store.clear().await.expect("clear");
    project_in_order(&projector, events.all_events().expect("events"))
        .await
        .expect("rebuild");
    assert_eq!(documents(store.rows().await.expect("rows")), before);
}
