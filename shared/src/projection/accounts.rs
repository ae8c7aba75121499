//! The accounts read model: one row per account and global totals.
//!
//! Every row carries the last applied version of its stream; every update is conditional on
//! it, so duplicates and replays change nothing and a gap is detected and repaired from the
//! events table. The totals change in the same transaction as the row, so they stay exact.
//! Totals are spread over a few shard rows (by stream) so concurrent projector invocations
//! rarely contend on one item; readers sum them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, from_recorded};
use crate::codec;
use crate::domain::account::{Account, AccountEvent, AccountStatus};
use crate::envelope::{RecordedEvent, format_timestamp};
use crate::error::{StoreError, from_sdk};
use crate::names::accounts as n;
use crate::store::EventStore;

/// Number of totals rows (`#totals-0` …); a reader sums them.
pub const TOTALS_SHARDS: u32 = 4;

/// One account as the read model holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub account_id: String,
    pub owner: String,
    pub currency: String,
    pub balance: i64,
    pub status: String,
    /// The last applied version of the account's stream.
    pub version: u64,
    pub updated_at: String,
}

/// Accounts open and money held per currency, across all accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub accounts_open: i64,
    pub held: BTreeMap<String, i64>,
    pub events_applied: u64,
}

/// What applying one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The row is already at or past this version.
    Duplicate,
    /// Versions after `last_applied` and before this one are missing.
    Gap {
        last_applied: u64,
    },
}

/// How an event changes its row and the totals.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Open {
        owner: String,
        currency: String,
    },
    Money {
        currency: String,
        delta: i64,
    },
    Close,
    /// Unknown to this projection: only the checkpoint moves.
    Nothing,
}

impl Change {
    fn of(event: &AccountEvent) -> Self {
        use AccountEvent as E;
        match event {
            E::AccountOpened { owner, currency } => Self::Open {
                owner: owner.clone(),
                currency: currency.to_string(),
            },
            E::MoneyDeposited { amount, currency }
            | E::TransferReceived {
                amount, currency, ..
            } => Self::Money {
                currency: currency.to_string(),
                delta: *amount,
            },
            E::MoneyWithdrawn { amount, currency }
            | E::TransferSent {
                amount, currency, ..
            } => Self::Money {
                currency: currency.to_string(),
                delta: -*amount,
            },
            E::AccountClosed {} => Self::Close,
        }
    }
}

/// Where the accounts read model lives.
#[async_trait]
pub trait AccountsReadModel: Send + Sync + fmt::Debug {
    /// Applies one account event, conditional on the row being at the previous version.
    /// `None` is an event this projection does not know (the checkpoint still moves).
    async fn apply(
        &self,
        event: &RecordedEvent,
        change: Option<&AccountEvent>,
    ) -> Result<Applied, StoreError>;

    /// One account's row.
    async fn account(&self, account_id: &str) -> Result<Option<AccountRow>, StoreError>;

    /// The totals, summed over their shards.
    async fn totals(&self) -> Result<Totals, StoreError>;
}

/// What projecting one event did, for logs and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projected {
    Applied,
    Duplicate,
    /// A gap was filled from the events table first.
    Repaired {
        missing: usize,
    },
    /// Not an account event, or a type this projection does not know.
    Skipped(String),
}

/// Applies account events to the read model, repairing gaps from the event store.
#[derive(Clone, Debug)]
pub struct AccountsProjector {
    read_model: Arc<dyn AccountsReadModel>,
    store: Arc<dyn EventStore>,
}

impl AccountsProjector {
    /// A projector writing `read_model` and repairing gaps from `store`.
    pub fn new(read_model: Arc<dyn AccountsReadModel>, store: Arc<dyn EventStore>) -> Self {
        Self { read_model, store }
    }

    /// The read model written.
    pub fn read_model(&self) -> &Arc<dyn AccountsReadModel> {
        &self.read_model
    }

    /// Projects one event (already upcast). Errors leave the row as it was.
    pub async fn project(&self, event: &RecordedEvent) -> Result<Projected, StoreError> {
        if event.stream_id.category() != Account::CATEGORY {
            return Ok(Projected::Skipped(format!(
                "category {}",
                event.stream_id.category()
            )));
        }
        let decoded = self.decode(event)?;
        match self.read_model.apply(event, decoded.as_ref()).await? {
            Applied::Applied => Ok(skipped_or(decoded.as_ref(), event, Projected::Applied)),
            Applied::Duplicate => Ok(Projected::Duplicate),
            Applied::Gap { last_applied } => {
                let missing = self
                    .store
                    .read_all(&event.stream_id, last_applied + 1)
                    .await?
                    .into_iter()
                    .take_while(|e| e.version < event.version)
                    .collect::<Vec<_>>();
                let expected = event.version - last_applied - 1;
                if missing.len() as u64 != expected {
                    return Err(StoreError::corrupt(format!(
                        "{} is missing versions {}..{} in the events table too",
                        event.stream_id,
                        last_applied + 1,
                        event.version - 1
                    )));
                }
                for earlier in &missing {
                    let decoded = self.decode(earlier)?;
                    if self.read_model.apply(earlier, decoded.as_ref()).await?
                        == (Applied::Gap { last_applied })
                    {
                        return Err(StoreError::corrupt("gap repair made no progress"));
                    }
                }
                match self.read_model.apply(event, decoded.as_ref()).await? {
                    Applied::Gap { .. } => Err(StoreError::corrupt(format!(
                        "{} version {} still has a gap after repair",
                        event.stream_id, event.version
                    ))),
                    _ => Ok(Projected::Repaired {
                        missing: missing.len(),
                    }),
                }
            }
        }
    }

    /// Decodes an account event; an unknown type is `None`, a known type that does not decode
    /// is an error (the record is poison).
    fn decode(&self, event: &RecordedEvent) -> Result<Option<AccountEvent>, StoreError> {
        const KNOWN: [&str; 6] = [
            "AccountOpened",
            "MoneyDeposited",
            "MoneyWithdrawn",
            "TransferSent",
            "TransferReceived",
            "AccountClosed",
        ];
        if !KNOWN.contains(&event.event_type.as_str()) {
            return Ok(None);
        }
        from_recorded::<AccountEvent>(event).map(Some)
    }
}

fn skipped_or(
    decoded: Option<&AccountEvent>,
    event: &RecordedEvent,
    projected: Projected,
) -> Projected {
    match decoded {
        Some(_) => projected,
        None => Projected::Skipped(format!("unknown event type {}", event.event_type)),
    }
}

/// The totals shard a stream's events count in.
pub fn totals_shard(stream_id: &str) -> String {
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let hash = stream_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}-{}", n::TOTALS_ID, hash % TOTALS_SHARDS)
}

// ---------------------------------------------------------------------------- memory

#[derive(Debug, Default)]
struct MemoryState {
    rows: HashMap<String, AccountRow>,
    totals: Totals,
}

/// The read model in process memory, with the same conditional semantics.
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    state: Mutex<MemoryState>,
}

impl MemoryAccounts {
    /// An empty read model.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every row (for comparisons in tests).
    pub fn rows(&self) -> Vec<AccountRow> {
        let mut rows: Vec<_> = self.lock().rows.values().cloned().collect();
        rows.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        rows
    }
}

#[async_trait]
impl AccountsReadModel for MemoryAccounts {
    async fn apply(
        &self,
        event: &RecordedEvent,
        change: Option<&AccountEvent>,
    ) -> Result<Applied, StoreError> {
        let mut state = self.lock();
        let id = event.stream_id.entity_id().to_owned();
        let current = state.rows.get(&id).map_or(0, |r| r.version);
        if current >= event.version {
            return Ok(Applied::Duplicate);
        }
        if current + 1 < event.version {
            return Ok(Applied::Gap {
                last_applied: current,
            });
        }
        let change = change.map_or(Change::Nothing, Change::of);
        let updated_at = format_timestamp(&event.occurred_at);
        let state = &mut *state;
        match (&change, state.rows.get_mut(&id)) {
            (Change::Open { owner, currency }, _) => {
                state.rows.insert(
                    id.clone(),
                    AccountRow {
                        account_id: id.clone(),
                        owner: owner.clone(),
                        currency: currency.clone(),
                        balance: 0,
                        status: AccountStatus::Open.as_str().into(),
                        version: event.version,
                        updated_at,
                    },
                );
                state.totals.accounts_open += 1;
            }
            (_, None) => return Ok(Applied::Gap { last_applied: 0 }),
            (other, Some(row)) => {
                row.version = event.version;
                row.updated_at = updated_at;
                match other {
                    Change::Money { currency, delta } => {
                        row.balance += delta;
                        *state.totals.held.entry(currency.clone()).or_default() += delta;
                    }
                    Change::Close => {
                        row.status = AccountStatus::Closed.as_str().into();
                        state.totals.accounts_open -= 1;
                    }
                    Change::Open { .. } | Change::Nothing => {}
                }
            }
        }
        if change != Change::Nothing {
            state.totals.events_applied += 1;
        }
        Ok(Applied::Applied)
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountRow>, StoreError> {
        Ok(self.lock().rows.get(account_id).cloned())
    }

    async fn totals(&self) -> Result<Totals, StoreError> {
        Ok(self.lock().totals.clone())
    }
}

// ---------------------------------------------------------------------------- DynamoDB

/// The read model in a DynamoDB table keyed by `account_id`.
#[derive(Clone, Debug)]
pub struct DynamoAccounts {
    client: Client,
    table: String,
}

impl DynamoAccounts {
    /// A read model over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn row_write(
        &self,
        event: &RecordedEvent,
        change: &Change,
    ) -> Result<TransactWriteItem, StoreError> {
        let id = event.stream_id.entity_id();
        let version = AttributeValue::N(event.version.to_string());
        let updated_at = AttributeValue::S(format_timestamp(&event.occurred_at));
        if let Change::Open { owner, currency } = change {
            let row = AccountRow {
                account_id: id.to_owned(),
                owner: owner.clone(),
                currency: currency.clone(),
                balance: 0,
                status: AccountStatus::Open.as_str().into(),
                version: event.version,
                updated_at: format_timestamp(&event.occurred_at),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(codec::to_item(&row)?))
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", n::ACCOUNT_ID)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| StoreError::invalid(e.to_string()))?;
            return Ok(TransactWriteItem::builder().put(put).build());
        }
        let mut expression = String::from("SET #v = :v, #u = :u");
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(n::ACCOUNT_ID, AttributeValue::S(id.to_owned()))
            .condition_expression("#v = :prev")
            .expression_attribute_names("#v", n::VERSION)
            .expression_attribute_names("#u", n::UPDATED_AT)
            .expression_attribute_values(":v", version)
            .expression_attribute_values(":u", updated_at)
            .expression_attribute_values(
                ":prev",
                AttributeValue::N((event.version - 1).to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match change {
            Change::Money { delta, .. } => {
                expression.push_str(", #b = #b + :d");
                update = update
                    .expression_attribute_names("#b", n::BALANCE)
                    .expression_attribute_values(":d", AttributeValue::N(delta.to_string()));
            }
            Change::Close => {
                expression.push_str(", #s = :s");
                update = update
                    .expression_attribute_names("#s", n::STATUS)
                    .expression_attribute_values(
                        ":s",
                        AttributeValue::S(AccountStatus::Closed.as_str().into()),
                    );
            }
            Change::Open { .. } | Change::Nothing => {}
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn totals_write(
        &self,
        event: &RecordedEvent,
        change: &Change,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        let (open_delta, held) = match change {
            Change::Open { .. } => (1, None),
            Change::Close => (-1, None),
            Change::Money { currency, delta } => (0, Some((currency, *delta))),
            Change::Nothing => return Ok(None),
        };
        let mut expression = String::from("ADD #e :one, #o :o");
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(
                n::ACCOUNT_ID,
                AttributeValue::S(totals_shard(event.stream_id.as_str())),
            )
            .expression_attribute_names("#e", n::EVENTS_APPLIED)
            .expression_attribute_names("#o", n::ACCOUNTS_OPEN)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":o", AttributeValue::N(open_delta.to_string()));
        if let Some((currency, delta)) = held {
            expression.push_str(", #h :h");
            update = update
                .expression_attribute_names("#h", format!("{}{currency}", n::HELD_PREFIX))
                .expression_attribute_values(":h", AttributeValue::N(delta.to_string()));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }

    async fn row_version(&self, account_id: &str) -> Result<u64, StoreError> {
        Ok(self.account(account_id).await?.map_or(0, |row| row.version))
    }
}

fn version_of(item: Option<&HashMap<String, AttributeValue>>) -> Option<u64> {
    match item?.get(n::VERSION)? {
        AttributeValue::N(v) => v.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl AccountsReadModel for DynamoAccounts {
    async fn apply(
        &self,
        event: &RecordedEvent,
        change: Option<&AccountEvent>,
    ) -> Result<Applied, StoreError> {
        let change = change.map_or(Change::Nothing, Change::of);
        let account_id = event.stream_id.entity_id();
        if change == Change::Nothing && event.version == 1 {
            // Nothing to create a row from; the next event reports the gap if it matters.
            return Ok(Applied::Applied);
        }
        let mut actions = vec![self.row_write(event, &change)?];
        actions.extend(self.totals_write(event, &change)?);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let reasons = match result {
            Ok(_) => return Ok(Applied::Applied),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons().to_vec()
                }
                _ => return Err(from_sdk("TransactWriteItems", err)),
            },
        };
        let row = reasons.first();
        if row.and_then(|r| r.code()) != Some("ConditionalCheckFailed") {
            let codes: Vec<_> = reasons.iter().filter_map(|r| r.code()).collect();
            return Err(StoreError::Unavailable {
                message: format!("projection transaction cancelled: {}", codes.join(", ")),
                retryable: true,
            });
        }
        let current = match version_of(row.and_then(|r| r.item())) {
            Some(version) => version,
            None => self.row_version(account_id).await?,
        };
        Ok(if current >= event.version {
            Applied::Duplicate
        } else {
            Applied::Gap {
                last_applied: current,
            }
        })
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountRow>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(n::ACCOUNT_ID, AttributeValue::S(account_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        output
            .item
            .map(|item| codec::from_item(item, "account row"))
            .transpose()
    }

    async fn totals(&self) -> Result<Totals, StoreError> {
        let mut totals = Totals::default();
        for shard in 0..TOTALS_SHARDS {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(
                    n::ACCOUNT_ID,
                    AttributeValue::S(format!("{}-{shard}", n::TOTALS_ID)),
                )
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| from_sdk("GetItem", e))?;
            for (name, value) in output.item.unwrap_or_default() {
                let AttributeValue::N(number) = value else {
                    continue;
                };
                let number: i64 = number
                    .parse()
                    .map_err(|_| StoreError::corrupt("totals are not numbers"))?;
                if name == n::ACCOUNTS_OPEN {
                    totals.accounts_open += number;
                } else if name == n::EVENTS_APPLIED {
                    totals.events_applied += u64::try_from(number).unwrap_or(0);
                } else if let Some(currency) = name.strip_prefix(n::HELD_PREFIX) {
                    *totals.held.entry(currency.to_owned()).or_default() += number;
                }
            }
        }
        Ok(totals)
    }
}

/// Folds every account stream's events the way the read model should show them: the
/// reference a test compares the table with.
pub fn expected_row(events: &[RecordedEvent]) -> Option<AccountRow> {
    let last = events.last()?;
    let state = crate::aggregate::fold(Account::default(), events).ok()?;
    Some(AccountRow {
        account_id: last.stream_id.entity_id().to_owned(),
        owner: state.owner,
        currency: state.currency.map(|c| c.to_string()).unwrap_or_default(),
        balance: state.balance,
        status: state.status.as_str().into(),
        version: last.version,
        updated_at: format_timestamp(&last.occurred_at),
    })
}
