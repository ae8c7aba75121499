//! The DynamoDB store's write: one conditional call per attempt, and the reading of a refusal
//! into what it means (another writer, a repeated command, our own earlier attempt).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::DynamoStore;
use crate::aws::error::from_sdk_write;
use crate::aws::item::{self, Item};
use crate::error::{StoreError, Unavailable};
use crate::names::{commands, events};
use crate::store::plan::{Plan, PreparedAppend};
use crate::store::{AppendResult, CommandRecord, EventStore};

/// Why a write was refused, from the conditions that failed.
pub(super) enum WriteRefusal {
    /// The command id exists; the item is the stored record if DynamoDB returned it.
    DuplicateCommand(Option<Item>),
    /// A version item already existed in this write's stream.
    StreamConflict(usize, Option<Item>),
    /// Our own items are already there: an earlier attempt of this very write committed.
    AlreadyCommitted,
    Failed(StoreError),
}

impl DynamoStore {
    fn put_event(&self, item: Item) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.events_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", events::STREAM_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::misuse(format!("cannot build put: {e}")))
    }

    /// Writes a plan with one conditional call.
    pub(super) async fn write(&self, plan: &Plan) -> Result<(), WriteRefusal> {
        if plan.command.is_none() && plan.item_count() == 1 {
            return self.put_single(plan).await;
        }
        let mut actions = Vec::with_capacity(plan.item_count());
        // Which write each action belongs to; `None` marks the command record.
        let mut owners = Vec::with_capacity(plan.item_count());
        for (index, write) in plan.writes.iter().enumerate() {
            for document in &write.documents {
                let item = item::from_document(document).map_err(WriteRefusal::Failed)?;
                let put = self.put_event(item).map_err(WriteRefusal::Failed)?;
                actions.push(TransactWriteItem::builder().put(put).build());
                owners.push(Some(index));
            }
        }
        if let Some((_, document)) = &plan.command {
            let table = self.commands_table().map_err(WriteRefusal::Failed)?;
            let record = item::from_document(document).map_err(WriteRefusal::Failed)?;
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(#c)")
                .expression_attribute_names("#c", commands::COMMAND_ID)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| {
                    WriteRefusal::Failed(StoreError::misuse(format!("cannot build put: {e}")))
                })?;
            actions.push(TransactWriteItem::builder().put(put).build());
            owners.push(None);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            // Makes the SDK's own retry of a transaction whose answer was lost a no-op success.
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Err(
                    self.interpret_cancellation(plan, &owners, cancelled.cancellation_reasons())
                ),
                _ => Err(WriteRefusal::Failed(from_sdk_write(
                    "TransactWriteItems",
                    &self.events_table,
                    err,
                ))),
            },
        }
    }

    async fn put_single(&self, plan: &Plan) -> Result<(), WriteRefusal> {
        let write = &plan.writes[0];
        let item = item::from_document(&write.documents[0]).map_err(WriteRefusal::Failed)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.events_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#s)")
            .expression_attribute_names("#s", events::STREAM_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    if is_our_event(failed.item(), plan, 0) {
                        Err(WriteRefusal::AlreadyCommitted)
                    } else {
                        Err(WriteRefusal::StreamConflict(0, failed.item().cloned()))
                    }
                }
                _ => Err(WriteRefusal::Failed(from_sdk_write(
                    "PutItem",
                    &self.events_table,
                    err,
                ))),
            },
        }
    }

    fn interpret_cancellation(
        &self,
        plan: &Plan,
        owners: &[Option<usize>],
        reasons: &[CancellationReason],
    ) -> WriteRefusal {
        let failed = |reason: &CancellationReason| reason.code() == Some("ConditionalCheckFailed");
        // A repeated command wins over everything else: its first execution is the answer.
        for (owner, reason) in owners.iter().zip(reasons) {
            if owner.is_none() && failed(reason) {
                return WriteRefusal::DuplicateCommand(reason.item().cloned());
            }
        }
        for (owner, reason) in owners.iter().zip(reasons) {
            if let Some(index) = owner
                && failed(reason)
            {
                // A transaction is all or nothing: if one of our items is there, all are,
                // and this is an earlier attempt of ours that committed.
                if is_our_event(reason.item(), plan, *index) {
                    return WriteRefusal::AlreadyCommitted;
                }
                return WriteRefusal::StreamConflict(*index, reason.item().cloned());
            }
        }
        let codes: Vec<&str> = reasons
            .iter()
            .filter_map(CancellationReason::code)
            .collect();
        let retryable = codes.iter().any(|code| {
            matches!(
                *code,
                "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        });
        WriteRefusal::Failed(StoreError::Unavailable(Box::new(Unavailable {
            operation: "TransactWriteItems",
            resource: self.events_table.clone(),
            code: Some("TransactionCanceledException".into()),
            retryable,
            // A cancelled transaction wrote nothing.
            outcome_unknown: false,
            source: format!("transaction cancelled: {}", codes.join(", ")).into(),
        })))
    }

    /// A repeated command: the stored record (returned with the refusal, or read) answers.
    pub(super) async fn resolve_duplicate(
        &self,
        prepared: &PreparedAppend,
        returned: Option<Item>,
    ) -> Result<AppendResult, StoreError> {
        let Some(command) = prepared.command() else {
            return Err(StoreError::corrupt("duplicate command without a command"));
        };
        let record = match returned {
            Some(item) => Some(item::from_item::<CommandRecord>(item, "command record")?),
            None => self.read_command(&command.command_id).await?,
        };
        match record {
            Some(record) => Ok(AppendResult::Replayed(
                record.replay_for(&command.request_hash)?,
            )),
            // Expired between the failed condition and this read: the command is long done.
            None => Err(StoreError::IdempotencyMismatch {
                command_id: command.command_id.clone(),
            }),
        }
    }

    /// A conflict found before writing (from a head read): a command that was already
    /// executed answers instead. After a write, the transaction's own cancellation reasons
    /// say whether the command existed, so no read is needed there.
    pub(super) async fn conflict_or_replay(
        &self,
        prepared: &PreparedAppend,
        conflict: StoreError,
    ) -> Result<AppendResult, StoreError> {
        if let Some(command) = prepared.command()
            && let Some(record) = self.read_command(&command.command_id).await?
        {
            return Ok(AppendResult::Replayed(
                record.replay_for(&command.request_hash)?,
            ));
        }
        Err(conflict)
    }
}

/// Whether the item a failed condition returned is the event this plan meant to write.
fn is_our_event(
    existing: Option<&HashMap<String, AttributeValue>>,
    plan: &Plan,
    write: usize,
) -> bool {
    let Some(AttributeValue::S(existing_id)) = existing.and_then(|item| item.get(events::EVENT_ID))
    else {
        return false;
    };
    plan.writes[write]
        .events
        .iter()
        .any(|event| event.event_id.to_string() == *existing_id)
}
