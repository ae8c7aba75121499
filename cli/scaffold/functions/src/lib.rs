//! The {{service}} service's functions, each a binary in `src/bin` serving one of the library's
//! runtimes. This crate is wiring only: routes, stores and what each function needs from the
//! template (its [`Contract`], checked by `tests/drift.rs`). The domain is in `{{service}}`.

use std::sync::Arc;

use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoReadModel, DynamoSnapshots};
use eventfold::command::CommandService;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::projection::{Projector, ReadModelStore};
use eventfold::store::EventStore;
use {{service_rs}}::{ {{Aggregate}}, {{Aggregates}}, {{Aggregates}}Projection, ROW_KEY};

/// The environment variable naming the {{aggregates}} read-model table.
pub const {{AGGREGATES}}_TABLE: &str = "{{AGGREGATES}}_TABLE";

/// The scope of the GET routes (a user holds a scope by membership of the pool's group of that
/// name; an IAM caller holds every scope).
pub const READ: &str = "{{service}}/read";
/// The scope of the POST routes.
pub const WRITE: &str = "{{service}}/write";
/// The scope that reads raw streams and verifies them.
pub const OPERATOR: &str = "{{service}}/operator";

/// The {{aggregates}} projector over a read model, repairing gaps from `store`.
pub fn projector(
    read_model: Arc<dyn ReadModelStore>,
    store: Arc<dyn EventStore>,
) -> Projector<{{Aggregates}}Projection> {
    Projector::new({{Aggregates}}Projection, read_model, store)
}

fn read_model(config: &Config, client: Client) -> Arc<DynamoReadModel> {
    let table = config.var({{AGGREGATES}}_TABLE).unwrap_or_default();
    Arc::new(DynamoReadModel::new(client, table, ROW_KEY))
}

/// The command service over DynamoDB: events, snapshots and, with `commands_table`, the
/// idempotency records.
fn command_service(config: &Config, client: &Client, commands_table: bool) -> CommandService {
    let store = config.event_store(client.clone());
    let store = if commands_table {
        store.with_commands_table(&config.commands_table)
    } else {
        store
    };
    let snapshots = Arc::new(DynamoSnapshots::new(client.clone(), &config.snapshots_table));
    CommandService::new(Arc::new(store)).with_snapshots(snapshots)
}

/// `POST` routes: each parses its body, runs one command, and says its receipt.
pub mod command_api {
    use eventfold::{Aggregate, EntityId};
    use eventfold::command::Executed;
    use eventfold::lambda::command_api::{Command, CommandApi, CommandHead, Refused, Reply};
    use eventfold::problem::Problem;
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use {{service_rs}}::{Name, {{Aggregate}}Command, {{Aggregate}}Error};

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::CommandApi);

    /// `POST /{{aggregates_kebab}}` and `POST /{{aggregates_kebab}}/{id}/rename`.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Named {
        /// The name.
        pub name: Name,
    }

    /// `POST /{{aggregates_kebab}}/{id}/archive`: no fields.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Nothing {}

    type Outcome<R> = Result<Executed<R>, Refused<{{Aggregate}}Error>>;

    /// The routes over a {{aggregates}} service.
    pub fn api(service: {{Aggregates}}) -> CommandApi<{{Aggregates}}> {
        CommandApi::new(service)
            .scope(WRITE)
            .route("POST /{{aggregates_kebab}}", register, |_, done| {
                let id = &done.receipt;
                let version = written(done, id)?;
                Ok(Reply::created(json!({ "id": id, "version": version }))
                    .at(format!("/{{aggregates_kebab}}/{id}")))
            })
            .route("POST /{{aggregates_kebab}}/{id}/rename", rename, answer)
            .route("POST /{{aggregates_kebab}}/{id}/archive", archive, answer)
            .body_optional()
    }

    /// The routes over DynamoDB, configured from the environment.
    pub fn from_config(config: &Config, client: Client) -> CommandApi<{{Aggregates}}> {
        api({{Aggregates}}::new(command_service(config, &client, true)))
    }

    async fn register(service: {{Aggregates}}, cmd: Command<Named>) -> Outcome<EntityId> {
        Ok(service.register(&cmd.context, cmd.body.name).await?)
    }

    async fn rename(service: {{Aggregates}}, cmd: Command<Named>) -> Outcome<()> {
        let id = cmd.entity_id("id")?;
        let command = {{Aggregate}}Command::Rename { name: cmd.body.name };
        Ok(service.handle(&cmd.context, &id, cmd.if_match, &command).await?)
    }

    async fn archive(service: {{Aggregates}}, cmd: Command<Nothing>) -> Outcome<()> {
        let id = cmd.entity_id("id")?;
        let command = {{Aggregate}}Command::Archive;
        Ok(service.handle(&cmd.context, &id, cmd.if_match, &command).await?)
    }

    /// 200 with the {{aggregate}}'s id and version.
    fn answer(head: &CommandHead, done: &Executed<()>) -> Result<Reply, Problem> {
        let id = head.entity_id("id")?;
        let version = written(done, &id)?;
        Ok(Reply::ok(json!({ "id": id, "version": version })))
    }

    /// The {{aggregate}}'s version after the command (the version it had, if nothing changed).
    fn written<R>(done: &Executed<R>, id: &EntityId) -> Result<u64, Problem> {
        let stream = {{Aggregate}}::stream_id(id);
        done.version_of(&stream)
            .ok_or_else(|| Problem::internal(format!("the command wrote nothing to {stream}")))
    }
}

/// `GET` routes: the read-model row (with `min_version`), the state folded as of a version or
/// instant, each stream's events page by page and its verification, and the global feed
/// (operators).
pub mod query_api {
    use eventfold::command::Loaded;
    use eventfold::feed::FeedStore;
    use eventfold::lambda::query_api::{QueryApi, StreamAccess};
    use eventfold::names::env;
    use eventfold::{Aggregate, EntityId};
    use serde_json::{Value, json};
    use {{service_rs}}::{Status, {{Aggregate}}Row};

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::QueryApi)
        .read_models(&[{{AGGREGATES}}_TABLE])
        .requires(&[env::FEED_TABLE]);

    /// The routes over the stores; the feed is for operators.
    pub fn api(
        commands: CommandService,
        read_model: Arc<dyn ReadModelStore>,
        feed: Arc<dyn FeedStore>,
    ) -> QueryApi {
        let store: Arc<dyn EventStore> = commands.store().clone();
        QueryApi::new()
            .scope(READ)
            .row(
                "GET /{{aggregates_kebab}}/{id}",
                Arc::new(projector(read_model, store.clone())),
                {{Aggregate}}::stream_id,
                row,
            )
            .state::<{{Aggregate}}>("GET /{{aggregates_kebab}}/{id}/state", commands, state)
            .streams(
                store,
                StreamAccess::operators(OPERATOR, &[{{Aggregate}}::CATEGORY]),
            )
            .scope(OPERATOR)
            .feed(feed)
    }

    /// The routes over DynamoDB, configured from the environment (reads never touch the
    /// commands table).
    pub fn from_config(config: &Config, client: Client) -> QueryApi {
        let feed = config
            .feed(client.clone())
            .expect("the contract requires the feed table, checked before this runs");
        api(
            command_service(config, &client, false),
            read_model(config, client),
            Arc::new(feed),
        )
    }

    fn row(id: &EntityId, version: u64, row: &{{Aggregate}}Row) -> Value {
        json!({
            "id": id,
            "name": row.name,
            "status": row.status,
            "updated_at": row.updated_at,
            "version": version,
        })
    }

    fn state(id: &EntityId, loaded: &Loaded<{{Aggregate}}>) -> Option<Value> {
        let state = &loaded.state;
        (state.status != Status::Unregistered).then(|| {
            json!({
                "id": id,
                "name": state.name,
                "status": state.status,
                "version": loaded.version,
            })
        })
    }
}

/// Events stream reader 1: keeps the {{aggregates}} read model.
pub mod project {
    use eventfold::lambda::consumers::ProjectorFunction;

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract =
        Contract::new(Runtime::Projector).read_models(&[{{AGGREGATES}}_TABLE]);

    /// The projector over DynamoDB, configured from the environment.
    pub fn from_config(config: &Config, client: Client) -> ProjectorFunction {
        let store = Arc::new(config.event_store(client.clone()));
        let projector = projector(read_model(config, client.clone()), store);
        ProjectorFunction::new(vec![Arc::new(projector)]).parking_in(config, client)
    }
}

/// Events stream reader 2: every event indexed into the global feed, then to the subscribers'
/// FIFO queue, snapshot requests to the snapshot queue (the library's publisher; its contract
/// names the queues, the feed's table and the events table its gaps are repaired from).
pub mod publish {
    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::Publisher);
}

/// Snapshots long streams on request (the snapshot queue).
pub mod snapshots {
    use eventfold::StoreError;
    use eventfold::lambda::consumers::SnapshotFunction;
    use eventfold::snapshot::Snapshotter;

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::Snapshot);

    /// The snapshot function over DynamoDB, configured from the environment; every aggregate
    /// whose streams are snapshotted is registered here.
    pub fn from_config(config: &Config, client: Client) -> Result<SnapshotFunction, StoreError> {
        let snapshotter =
            Snapshotter::new(command_service(config, &client, false))?.register::<{{Aggregate}}>();
        Ok(SnapshotFunction::new(snapshotter))
    }
}
