//! Snapshots in a DynamoDB table keyed by stream id.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::error::from_sdk;
use super::item::{from_item, to_item};
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::names::snapshots;
use crate::store::{Snapshot, SnapshotStore};

/// Snapshots in a DynamoDB table keyed by stream id.
#[derive(Clone, Debug)]
pub struct DynamoSnapshots {
    client: Client,
    table: String,
}

impl DynamoSnapshots {
    /// A snapshot store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl SnapshotStore for DynamoSnapshots {
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        // Eventually consistent: half the cost, and a snapshot is allowed to be behind.
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                snapshots::STREAM_ID,
                AttributeValue::S(stream_id.to_string()),
            )
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", &self.table, e))?;
        output
            .item
            .map(|item| from_item(item, "snapshot"))
            .transpose()
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        self.put(snapshot, true).await
    }

    async fn replace_snapshot(&self, snapshot: &Snapshot) -> Result<bool, StoreError> {
        self.put(snapshot, false).await
    }
}

impl DynamoSnapshots {
    /// Puts `snapshot`: if `only_newer`, unless one at the same or a later version is stored;
    /// whether it was written.
    async fn put(&self, snapshot: &Snapshot, only_newer: bool) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(snapshot)?));
        if only_newer {
            put = put
                .condition_expression("attribute_not_exists(#s) OR #v < :v")
                .expression_attribute_names("#s", snapshots::STREAM_ID)
                .expression_attribute_names("#v", snapshots::VERSION)
                .expression_attribute_values(":v", AttributeValue::N(snapshot.version.to_string()));
        }
        let result = put.send().await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(from_sdk("PutItem", &self.table, err)),
            },
        }
    }
}
