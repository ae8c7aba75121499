//! GET routes of the bank's HTTP API: the account row with read-your-writes, the account state
//! folded from its events (with time travel), raw events page by page, integrity verification,
//! the global feed (operators), and the OpenAPI document, on the library's query runtime.

use std::sync::Arc;

use bank::access;
use bank::api::OPENAPI_JSON;
use bank::domain::account::{Account, AccountStatus};
use bank::domain::user::User;
use bank::names::{accounts, env as bank_env};
use bank::read_model::row_json;
use bank::service::account_stream;
use eventfold::aws::aws_config::SdkConfig;
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoReadModel, DynamoSnapshots};
use eventfold::command::{CommandService, Loaded};
use eventfold::feed::FeedStore;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::lambda::query_api::{QueryApi, StreamAccess};
use eventfold::names::env;
use eventfold::personal::SubjectKeys;
use eventfold::projection::ReadModelStore;
use eventfold::store::EventStore;
use eventfold::{Aggregate, EntityId};
use serde_json::{Value, json};

/// What this function needs from the template (checked against it): the query runtime, the
/// accounts table, and the keys that open personal data for its owner.
pub const CONTRACT: Contract = Contract::new(Runtime::QueryApi)
    .read_models(&[bank_env::ACCOUNTS_TABLE])
    .requires(&[
        env::SUBJECT_KEYS_TABLE,
        env::SUBJECT_KEY_ID,
        env::SNAPSHOT_KEY_ID,
        env::FEED_TABLE,
    ]);

/// The bank's query routes over its stores, opening personal data with `keys`; the feed is
/// for operators.
pub fn api(
    commands: CommandService,
    read_model: Arc<dyn ReadModelStore>,
    keys: Arc<dyn SubjectKeys>,
    feed: Arc<dyn FeedStore>,
) -> QueryApi {
    let store: Arc<dyn EventStore> = commands.store().clone();
    let projector = Arc::new(bank::accounts_projector(read_model, store.clone()));
    let streams = StreamAccess::operators(access::OPERATOR, &[Account::CATEGORY, User::CATEGORY])
        .readable_by(Account::CATEGORY, access::account_stream)
        .readable_by(User::CATEGORY, access::user_stream);
    QueryApi::new()
        .scope(access::READ)
        .with_subject_keys(keys)
        .row_for(
            "GET /accounts/{id}",
            projector,
            account_stream,
            access::row,
            row_json,
        )
        .state_for::<Account>(
            "GET /accounts/{id}/state",
            commands.clone(),
            |principal, loaded| access::account(principal, &loaded.state),
            account_state,
        )
        .state_for::<User>(
            "GET /users/{id}",
            commands,
            |principal, loaded| access::user(principal, loaded.stream_id.entity_id()),
            user_view,
        )
        .streams(store, streams)
        .scope(access::OPERATOR)
        .feed(feed)
        .scope(access::READ)
        .document("GET /openapi.json", OPENAPI_JSON)
}

/// The routes over DynamoDB, configured from the environment (reads never touch the commands
/// table; the contract has checked the subject keys' variables).
pub fn from_config(config: &Config, sdk: &SdkConfig) -> QueryApi {
    let client = Client::new(sdk);
    let config = &config.clone().with_upcasters(bank::upcasters());
    let store = Arc::new(config.event_store(client.clone()));
    let snapshots = Arc::new(DynamoSnapshots::new(
        client.clone(),
        &config.snapshots_table,
    ));
    let table = config.var(bank_env::ACCOUNTS_TABLE).unwrap_or_default();
    let read_model = Arc::new(DynamoReadModel::new(
        client.clone(),
        table,
        accounts::ACCOUNT_ID,
    ));
    let feed = config
        .feed(client)
        .expect("the contract requires the feed table, checked before this runs");
    let keys = config
        .subject_keys(sdk)
        .expect("the contract requires the subject keys, checked before this runs");
    let snapshot_key = config
        .snapshot_key(sdk)
        .expect("the contract requires the snapshot key, checked before this runs");
    api(
        CommandService::new(store)
            .with_snapshots(snapshots)
            .with_snapshot_key(Arc::new(snapshot_key)),
        read_model,
        Arc::new(keys),
        Arc::new(feed),
    )
}

/// An account's state as the API shows it; `None` for an account never opened.
fn account_state(id: &EntityId, loaded: &Loaded<Account>) -> Option<Value> {
    let state = &loaded.state;
    (state.status != AccountStatus::Unopened).then(|| {
        json!({
            "id": id,
            "owner": state.owner,
            "currency": state.currency.map(|c| c.to_string()),
            "balance": state.balance,
            "status": state.status.as_str(),
            "standing_orders": state.standing_orders,
            "version": loaded.version,
        })
    })
}

/// A user as the API shows them to themself or an operator: their address and name opened
/// (`null` once forgotten); `None` for an id nobody registered.
fn user_view(id: &EntityId, loaded: &Loaded<User>) -> Option<Value> {
    let user = &loaded.state;
    user.registered.then(|| {
        json!({
            "id": id,
            "email": user.email,
            "name": user.name,
            "status": if user.forgotten { "forgotten" } else { "registered" },
            "version": loaded.version,
        })
    })
}
