//! GET routes of the bank's HTTP API: the account row with read-your-writes, the account state
//! folded from its events (with time travel), raw events page by page, integrity verification,
//! and the OpenAPI document, on the library's query runtime.

use std::sync::Arc;

use bank::access;
use bank::api::OPENAPI_JSON;
use bank::domain::account::{Account, AccountStatus};
use bank::domain::user::User;
use bank::names::{accounts, env as bank_env};
use bank::read_model::row_json;
use bank::service::account_stream;
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoReadModel, DynamoSnapshots};
use eventfold::command::{CommandService, Loaded};
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::lambda::query_api::{QueryApi, StreamAccess};
use eventfold::projection::ReadModelStore;
use eventfold::store::EventStore;
use eventfold::{Aggregate, EntityId};
use serde_json::{Value, json};

/// What this function needs from the template (checked against it).
pub const CONTRACT: Contract =
    Contract::new(Runtime::QueryApi).read_models(&[bank_env::ACCOUNTS_TABLE]);

/// The bank's query routes over its stores.
pub fn api(commands: CommandService, read_model: Arc<dyn ReadModelStore>) -> QueryApi {
    let store: Arc<dyn EventStore> = commands.store().clone();
    let projector = Arc::new(bank::accounts_projector(read_model, store.clone()));
    let streams = StreamAccess::operators(access::OPERATOR, &[Account::CATEGORY, User::CATEGORY])
        .readable_by(Account::CATEGORY, access::account_stream)
        .readable_by(User::CATEGORY, access::user_stream);
    QueryApi::new()
        .scope(access::READ)
        .row_for(
            "GET /accounts/{id}",
            projector,
            account_stream,
            access::row,
            row_json,
        )
        .state_for::<Account>(
            "GET /accounts/{id}/state",
            commands,
            access::account,
            account_state,
        )
        .streams(store, streams)
        .document("GET /openapi.json", OPENAPI_JSON)
}

/// The routes over DynamoDB, configured from the environment (reads never touch the commands
/// table).
pub fn from_config(config: &Config, client: Client) -> QueryApi {
    let store = Arc::new(config.event_store(client.clone()));
    let snapshots = Arc::new(DynamoSnapshots::new(
        client.clone(),
        &config.snapshots_table,
    ));
    let table = config.var(bank_env::ACCOUNTS_TABLE).unwrap_or_default();
    let read_model = Arc::new(DynamoReadModel::new(client, table, accounts::ACCOUNT_ID));
    api(
        CommandService::new(store).with_snapshots(snapshots),
        read_model,
    )
}

/// An account's state as the API shows it; `None` for an account never opened.
fn account_state(id: &EntityId, loaded: &Loaded<Account>) -> Option<Value> {
    let state = &loaded.state;
    (state.status != AccountStatus::Unopened).then(|| {
        json!({
            "id": id,
            "owner": state.owner.as_ref().map(ToString::to_string),
            "currency": state.currency.map(|c| c.to_string()),
            "balance": state.balance,
            "status": state.status.as_str(),
            "version": loaded.version,
        })
    })
}
