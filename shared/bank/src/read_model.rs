//! The accounts read model: one row per account, and totals, as a projection the library's
//! runtime keeps (checkpoints, duplicates, gaps and batches are its business).
//!
//! Totals are counters spread over a few rows (by stream), so that concurrent projector
//! invocations rarely contend on one item; readers sum them.

use std::collections::BTreeMap;

use eventfold::encoding::decode_known;
use eventfold::envelope::format_timestamp;
use eventfold::error::StoreError;
use eventfold::personal::Personal;
use eventfold::projection::{CounterDelta, Projection, ReadModelStore, Update};
use eventfold::{Aggregate, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};

use crate::domain::Name;
use crate::domain::account::{Account, AccountEvent, AccountStatus};
use crate::names::accounts as n;

/// Number of totals rows (`#totals-0` …); a reader sums them.
pub const TOTALS_SHARDS: u32 = 4;

/// One account as the read model holds it (the key and checkpoint are the store's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The owner's name: personal data, kept sealed as the event holds it (the query function
    /// opens it for its reader; once the owner is forgotten it reads as erased).
    pub owner: Personal<Name>,
    /// The owning principal's subject (see `Account::owner_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The currency.
    pub currency: String,
    /// Minor units.
    pub balance: i64,
    /// `open` or `closed`.
    pub status: String,
    /// When the last applied event occurred.
    pub updated_at: String,
}

/// One account row with its id and checkpoint: what `GET /accounts/{id}` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    /// The account id.
    pub id: String,
    /// The row.
    #[serde(flatten)]
    pub view: AccountView,
    /// The last applied version of the account's stream.
    pub version: u64,
}

/// Accounts open and money held per currency, across all accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Accounts open.
    pub accounts_open: i64,
    /// Minor units held, per currency.
    pub held: BTreeMap<String, i64>,
    /// Account events applied.
    pub events_applied: i64,
}

/// The accounts projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccountsProjection;

/// The totals row a stream's events count in.
pub fn totals_shard(stream_id: &StreamId) -> String {
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let hash = stream_id.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}-{}", n::TOTALS_PREFIX, hash % TOTALS_SHARDS)
}

impl Projection for AccountsProjection {
    type Row = AccountView;

    fn name(&self) -> &str {
        "accounts"
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Account::CATEGORY
    }

    fn row_key(&self, event: &RecordedEvent, _previous: Option<&str>) -> Option<String> {
        Some(event.stream_id.entity_id().to_owned())
    }

    fn apply(
        &self,
        row: Option<AccountView>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<AccountView>>, StoreError> {
        let Some(decoded) = decode_known::<AccountEvent>(event)? else {
            return Ok(None);
        };
        let shard = totals_shard(&event.stream_id);
        let counter = |name: &str, delta: i64| CounterDelta::new(&shard, name, delta);
        let mut counters = vec![counter(n::EVENTS_APPLIED, 1)];
        let updated_at = format_timestamp(&event.occurred_at);
        if let AccountEvent::AccountOpened {
            owner,
            currency,
            owner_id,
        } = &decoded
        {
            counters.push(counter(n::ACCOUNTS_OPEN, 1));
            let view = AccountView {
                owner: owner.clone(),
                owner_id: owner_id.clone(),
                currency: currency.to_string(),
                balance: 0,
                status: AccountStatus::Open.as_str().into(),
                updated_at,
            };
            return Ok(Some(Update {
                row: Some(view),
                counters,
            }));
        }
        let mut view = row.ok_or_else(|| {
            StoreError::corrupt(format!(
                "{} version {} ({}) comes before the account was opened",
                event.stream_id, event.version, event.event_type
            ))
        })?;
        view.updated_at = updated_at;
        use AccountEvent as E;
        match &decoded {
            E::MoneyDeposited { amount, currency }
            | E::TransferReceived {
                amount, currency, ..
            } => {
                view.balance += amount.minor_units();
                counters.push(counter(
                    &format!("{}{currency}", n::HELD_PREFIX),
                    amount.minor_units(),
                ));
            }
            E::MoneyWithdrawn { amount, currency }
            | E::TransferSent {
                amount, currency, ..
            } => {
                view.balance -= amount.minor_units();
                counters.push(counter(
                    &format!("{}{currency}", n::HELD_PREFIX),
                    -amount.minor_units(),
                ));
            }
            E::AccountClosed {} => {
                view.status = AccountStatus::Closed.as_str().into();
                counters.push(counter(n::ACCOUNTS_OPEN, -1));
            }
            E::AccountOpened { .. }
            | E::StandingOrderSet { .. }
            | E::StandingOrderCancelled { .. }
            | E::StandingOrderRunFailed { .. } => {}
        }
        Ok(Some(Update {
            row: Some(view),
            counters,
        }))
    }
}

/// One account's row, read from the read model.
pub async fn account_row(
    read_model: &dyn ReadModelStore,
    id: &str,
) -> Result<Option<AccountRow>, StoreError> {
    let Some(stored) = read_model.load(id).await? else {
        return Ok(None);
    };
    let Some(document) = stored.row else {
        return Ok(None);
    };
    let view: AccountView = serde_json::from_value(serde_json::Value::Object(document))
        .map_err(|e| StoreError::corrupt(format!("account row {id} does not decode: {e}")))?;
    Ok(Some(AccountRow {
        id: id.to_owned(),
        view,
        version: stored.version,
    }))
}

/// The totals, summed over their shards.
pub async fn totals(read_model: &dyn ReadModelStore) -> Result<Totals, StoreError> {
    let mut totals = Totals::default();
    for shard in 0..TOTALS_SHARDS {
        let key = format!("{}-{shard}", n::TOTALS_PREFIX);
        for (name, value) in read_model.counters(&key).await? {
            if name == n::ACCOUNTS_OPEN {
                totals.accounts_open += value;
            } else if name == n::EVENTS_APPLIED {
                totals.events_applied += value;
            } else if let Some(currency) = name.strip_prefix(n::HELD_PREFIX) {
                *totals.held.entry(currency.to_owned()).or_default() += value;
            }
        }
    }
    Ok(totals)
}

/// The row an account stream's events should produce: the projection applied to each in
/// order, in memory, with none of the runtime's checkpoints, gaps or retries. What a test
/// holds the read model against.
pub fn expected_row(events: &[RecordedEvent]) -> Option<AccountRow> {
    let last = events.last()?;
    let mut row = None;
    for event in events {
        if let Ok(Some(update)) = AccountsProjection.apply(row.clone(), event) {
            row = update.row;
        }
    }
    Some(AccountRow {
        id: last.stream_id.entity_id().to_owned(),
        view: row?,
        version: last.version,
    })
}

/// One account as the API shows its row: the id, the row's fields and its version.
pub fn row_json(id: &eventfold::EntityId, version: u64, view: &AccountView) -> serde_json::Value {
    let mut row = serde_json::to_value(AccountRow {
        id: id.to_string(),
        view: view.clone(),
        version,
    })
    .expect("an account row is strings and numbers: it serializes");
    // Who owns it decides who may read it; the answer is the API's fields, the same as the
    // state's plus `updated_at`.
    if let Some(fields) = row.as_object_mut() {
        fields.remove("owner_id");
    }
    row
}
