//! The global feed on the local runner, for the tests that use it (the consumers' workload and
//! the operator's CLI): a projection made after the fact, which the events stream never feeds,
//! and the feed checked whole against the events table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfold::StreamId;
use eventfold::aws::DynamoReadModel;
use eventfold::feed::{FeedConsumer, Projecting, check_feed};
use eventfold::store::StoreSettings;
use eventfold::testing::{TableShape, create_table};
use eventfold_tests::{TestEnv, events_by_stream, patience};

/// Waits until the feed holds every event of the events table (the publisher indexes each
/// batch as the runner delivers it).
pub(crate) async fn feed_is_whole(env: &TestEnv, within: Duration) {
    let deadline = Instant::now() + within * patience();
    loop {
        let heads: BTreeMap<StreamId, u64> = events_by_stream(env)
            .await
            .into_iter()
            .map(|(stream, events)| (StreamId::parse(&stream).expect("id"), events.len() as u64))
            .collect();
        let check = check_feed(&env.feed(), &heads).await.expect("checked");
        assert!(check.broken.is_empty(), "{check:?}");
        if check.missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the feed lags: {check:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A projection made later: the bank's accounts projection into a table of its own that no
/// stream reader writes (as if the stream's records had expired before it existed), fed by a
/// feed consumer.
pub(crate) async fn late_projection(env: &TestEnv) -> (DynamoReadModel, FeedConsumer) {
    let table = format!("{}-late", env.resources.table("AccountsTable"));
    create_table(
        &env.clients.dynamodb,
        &table,
        TableShape {
            hash_key: bank::names::accounts::ACCOUNT_ID,
            range_key: None,
            stream: false,
            text_range: false,
        },
    )
    .await
    .expect("table");
    let late = DynamoReadModel::new(
        env.clients.dynamodb.clone(),
        &table,
        bank::names::accounts::ACCOUNT_ID,
    );
    let store = env.store(StoreSettings {
        upcasters: Arc::new(bank::upcasters()),
        ..StoreSettings::default()
    });
    let projector = Arc::new(bank::accounts_projector(
        Arc::new(late.clone()),
        store.clone(),
    ));
    let consumer = FeedConsumer::new(
        "late-accounts",
        Arc::new(env.feed()),
        store,
        Arc::new(Projecting(projector)),
    )
    .expect("a consumer");
    (late, consumer)
}
