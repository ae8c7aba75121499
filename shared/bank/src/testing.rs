//! Fixtures (feature `testing`): account streams written straight through a store, for tests
//! and benchmarks of long streams.

use std::sync::Arc;

use eventfold::encoding::to_new_event;
use eventfold::error::StoreError;
use eventfold::store::EventStore;
use eventfold::{EntityId, NewEvent, StreamId};

use crate::domain::Name;
use crate::domain::account::AccountEvent;
use crate::domain::money::{Amount, Currency};
use crate::service::account_stream;

/// Subjects' keys for tests, in memory (a deployed bank's are wrapped by KMS).
pub fn subject_keys() -> Arc<eventfold::personal::MemoryKeys> {
    Arc::new(eventfold::personal::MemoryKeys::new())
}

/// The claim key of tests: a fixed in-process HMAC key (a deployed bank's is a KMS key).
pub fn claim_key() -> Arc<dyn eventfold::keyed::KeyedHash> {
    Arc::new(eventfold::keyed::LocalKey::new(
        *b"the bank's test claim key (32 B)",
    ))
}

/// The subject that owns the accounts these fixtures write.
pub const OWNER: &str = "seed-owner";

/// The owner of the fixtures' accounts as a caller: a customer with the read and write scopes.
pub fn owner() -> eventfold::identity::Principal {
    eventfold::identity::Principal::jwt(
        "https://fixtures.invalid",
        OWNER,
        [crate::access::READ, crate::access::WRITE],
    )
}

/// The events of an account opened in EUR by [`OWNER`] and then given `events - 1` deposits
/// of 1.
pub fn account_history(events: usize) -> Vec<AccountEvent> {
    let eur = Currency::parse("EUR").expect("EUR is a currency");
    let one = Amount::new(1).expect("1 is an amount");
    let opened = AccountEvent::AccountOpened {
        owner: eventfold::personal::Personal::new(
            OWNER,
            Name::parse("Seed").expect("a valid name"),
        ),
        currency: eur,
        owner_id: Some(OWNER.to_owned()),
    };
    std::iter::once(opened)
        .chain(std::iter::repeat_n(
            AccountEvent::MoneyDeposited {
                amount: one,
                currency: eur,
            },
            events.saturating_sub(1),
        ))
        .take(events)
        .collect()
}

/// [`account_history`] as events to append (or to bulk-load into a table).
pub fn history_to_append(events: usize) -> Result<Vec<NewEvent>, StoreError> {
    account_history(events).iter().map(to_new_event).collect()
}

/// Writes an account stream of `events` events ([`account_history`]), 99 per transaction.
pub async fn seed_account(
    store: &dyn EventStore,
    id: &EntityId,
    events: usize,
) -> Result<StreamId, StoreError> {
    let stream = account_stream(id);
    eventfold::testing::append_in_chunks(store, &stream, history_to_append(events)?).await?;
    Ok(stream)
}

/// Writes an account stream of `events` events ([`account_history`]) straight into a DynamoDB
/// events table with BatchWriteItem ([`eventfold::testing::bulk_load`]): long streams in
/// seconds, for benchmarks and tests (feature `aws`).
#[cfg(feature = "aws")]
pub async fn bulk_load_account(
    client: &eventfold::aws::aws_sdk_dynamodb::Client,
    table: &str,
    id: &EntityId,
    events: usize,
) -> Result<StreamId, StoreError> {
    let stream = account_stream(id);
    eventfold::testing::bulk_load(
        client,
        table,
        &stream,
        history_to_append(events)?,
        &eventfold::store::StoreSettings::default(),
    )
    .await?;
    Ok(stream)
}
