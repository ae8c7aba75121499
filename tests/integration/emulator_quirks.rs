//! Emulator behaviour the local environment works around, shown here so it stays visible.
//!
//! A second moto problem is not shown here because it is a race: moto's DynamoDB has no
//! locking, so a cancelled transaction's rollback can restore a table copy taken in the middle
//! of another request, losing committed writes (seen as projection rows torn between two
//! updates). `scripts/moto-server.py` serves DynamoDB requests one at a time to prevent it.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventfold_tests::TestEnv;

/// moto restores a deep copy of the table when a transaction is cancelled, and with it a new
/// stream shard object under the same id: iterators handed out before then stop seeing new
/// records. The local runner re-obtains idle iterators (after the last record it saw), which
/// is what this checks works on every emulator.
#[tokio::test]
async fn cancelled_transactions_may_orphan_stream_iterators() {
    let env = TestEnv::new().await;
    let table = env.resources.table("EventsTable").to_owned();
    let stream_arn = env.resources.stream_arns["EventsTable"].clone();
    let shard = env
        .clients
        .streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .expect("describe")
        .stream_description
        .and_then(|d| d.shards)
        .and_then(|s| s.into_iter().next())
        .and_then(|s| s.shard_id)
        .expect("a shard");
    let iterator = |kind: ShardIteratorType, after: Option<String>| {
        let request = env
            .clients
            .streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(&shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after);
        async move {
            request
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator")
        }
    };
    let put = |version: &str| {
        env.clients
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("stream_id", AttributeValue::S("Quirk-1".into()))
            .item("version", AttributeValue::N(version.into()))
            .send()
    };
    let old = iterator(ShardIteratorType::TrimHorizon, None).await;
    put("1").await.expect("put");
    let first = env
        .clients
        .streams
        .get_records()
        .shard_iterator(old)
        .send()
        .await
        .expect("records");
    let seen = first.records.unwrap_or_default();
    assert_eq!(seen.len(), 1);
    let last_sequence = seen[0]
        .dynamodb
        .as_ref()
        .and_then(|d| d.sequence_number.clone());
    let old = first.next_shard_iterator.expect("open shard");
    let duplicate = Put::builder()
        .table_name(&table)
        .item("stream_id", AttributeValue::S("Quirk-1".into()))
        .item("version", AttributeValue::N("1".into()))
        .condition_expression("attribute_not_exists(stream_id)")
        .build()
        .expect("put");
    let cancelled = env
        .clients
        .dynamodb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(duplicate).build())
        .send()
        .await;
    assert!(cancelled.is_err(), "the condition fails");
    put("2").await.expect("put");
    let stale = env
        .clients
        .streams
        .get_records()
        .shard_iterator(old)
        .send()
        .await
        .expect("records");
    let stale_count = stale.records.unwrap_or_default().len();
    let fresh = iterator(ShardIteratorType::AfterSequenceNumber, last_sequence).await;
    let fresh_count = env
        .clients
        .streams
        .get_records()
        .shard_iterator(fresh)
        .send()
        .await
        .expect("records")
        .records
        .unwrap_or_default()
        .len();
    assert_eq!(
        fresh_count, 1,
        "a fresh iterator after the last record sees the new one"
    );
    if std::env::var("EMULATOR").as_deref() == Ok("moto") {
        assert_eq!(
            stale_count, 0,
            "moto orphans the old iterator (the quirk worked around)"
        );
    } else {
        assert_eq!(stale_count, 1, "MiniStack keeps the old iterator working");
    }
}
