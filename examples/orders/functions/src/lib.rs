//! The orders service's functions, each a binary in `src/bin` serving one of the library's
//! runtimes: wiring only (routes, stores, contracts). The domain is in the `orders` crate.

use std::sync::Arc;

use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoReadModel, DynamoSnapshots};
use eventfold::command::CommandService;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::projection::{Projector, ReadModelStore};
use eventfold::store::EventStore;
use orders::projection::{CUSTOMER_ID, CustomerOrders, ORDER_ID, OrdersProjection};

/// The environment variable naming the orders table (a row per order, customers' totals).
pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
/// The environment variable naming the customers table (a row per customer, fed by many
/// order streams).
pub const CUSTOMERS_TABLE: &str = "CUSTOMERS_TABLE";

/// The scope of the GET routes (a user holds a scope by membership of the pool's group of that
/// name; an IAM caller holds every scope).
pub const READ: &str = "orders/read";
/// The scope of the POST routes.
pub const WRITE: &str = "orders/write";
/// The scope that reads raw streams and verifies them.
pub const OPERATOR: &str = "orders/operator";

/// The two read models, over their stores, repairing gaps from `store`.
pub fn projectors(
    orders: Arc<dyn ReadModelStore>,
    customers: Arc<dyn ReadModelStore>,
    store: Arc<dyn EventStore>,
) -> (Projector<OrdersProjection>, Projector<CustomerOrders>) {
    (
        Projector::new(OrdersProjection, orders, store.clone()),
        Projector::new(CustomerOrders, customers, store),
    )
}

/// The read-model stores the environment names.
fn read_models(config: &Config, client: &Client) -> (Arc<DynamoReadModel>, Arc<DynamoReadModel>) {
    let table = |variable| config.var(variable).unwrap_or_default().to_owned();
    (
        Arc::new(DynamoReadModel::new(
            client.clone(),
            table(ORDERS_TABLE),
            ORDER_ID,
        )),
        Arc::new(DynamoReadModel::new(
            client.clone(),
            table(CUSTOMERS_TABLE),
            CUSTOMER_ID,
        )),
    )
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
    let snapshots = Arc::new(DynamoSnapshots::new(
        client.clone(),
        &config.snapshots_table,
    ));
    CommandService::new(Arc::new(store)).with_snapshots(snapshots)
}

/// `POST` routes: each parses its body into the order's values, runs one command, and says
/// the order's new version.
pub mod command_api {
    use eventfold::command::Executed;
    use eventfold::lambda::command_api::{Command, CommandApi, CommandHead, Refused, Reply};
    use eventfold::problem::Problem;
    use eventfold::{Aggregate, EntityId};
    use orders::Orders;
    use orders::order::{Order, OrderCommand, OrderError};
    use orders::values::{Cents, Quantity, Sku};
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::CommandApi);

    /// `POST /orders`.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Start {
        /// Whose order.
        pub customer: EntityId,
    }

    /// `POST /orders/{id}/items`.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AddItem {
        /// What.
        pub sku: Sku,
        /// How many more.
        pub quantity: Quantity,
        /// The price of one, in cents.
        pub unit_price: Cents,
    }

    /// `POST /orders/{id}/remove-item`.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoveItem {
        /// What.
        pub sku: Sku,
    }

    /// `POST /orders/{id}/pay`.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Pay {
        /// The amount, in cents: the total.
        pub amount: Cents,
    }

    /// A command without fields (place, ship, cancel).
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Nothing {}

    type Outcome<R> = Result<Executed<R>, Refused<OrderError>>;

    /// The routes over an orders service.
    pub fn api(orders: Orders) -> CommandApi<Orders> {
        CommandApi::new(orders)
            .scope(WRITE)
            .route("POST /orders", start, |_, done| {
                let id = &done.receipt;
                let version = written(done, id)?;
                Ok(Reply::created(json!({ "id": id, "version": version }))
                    .at(format!("/orders/{id}")))
            })
            .route("POST /orders/{id}/items", add_item, answer)
            .route("POST /orders/{id}/remove-item", remove_item, answer)
            .route("POST /orders/{id}/place", place, answer)
            .body_optional()
            .route("POST /orders/{id}/pay", pay, answer)
            .route("POST /orders/{id}/ship", ship, answer)
            .body_optional()
            .route("POST /orders/{id}/cancel", cancel, answer)
            .body_optional()
    }

    /// The routes over DynamoDB, configured from the environment.
    pub fn from_config(config: &Config, client: Client) -> CommandApi<Orders> {
        api(Orders::new(command_service(config, &client, true)))
    }

    async fn start(orders: Orders, cmd: Command<Start>) -> Outcome<EntityId> {
        Ok(orders.start(&cmd.context, cmd.body.customer).await?)
    }

    async fn run<B>(orders: &Orders, cmd: &Command<B>, command: OrderCommand) -> Outcome<()> {
        let id = cmd.entity_id("id")?;
        Ok(orders
            .handle_pinned(&cmd.context, &id, cmd.if_match, &command)
            .await?)
    }

    async fn add_item(orders: Orders, cmd: Command<AddItem>) -> Outcome<()> {
        let AddItem {
            sku,
            quantity,
            unit_price,
        } = &cmd.body;
        let command = OrderCommand::AddItem {
            sku: sku.clone(),
            quantity: *quantity,
            unit_price: *unit_price,
        };
        run(&orders, &cmd, command).await
    }

    async fn remove_item(orders: Orders, cmd: Command<RemoveItem>) -> Outcome<()> {
        let command = OrderCommand::RemoveItem {
            sku: cmd.body.sku.clone(),
        };
        run(&orders, &cmd, command).await
    }

    async fn place(orders: Orders, cmd: Command<Nothing>) -> Outcome<()> {
        run(&orders, &cmd, OrderCommand::Place).await
    }

    async fn pay(orders: Orders, cmd: Command<Pay>) -> Outcome<()> {
        let amount = cmd.body.amount;
        run(&orders, &cmd, OrderCommand::Pay { amount }).await
    }

    async fn ship(orders: Orders, cmd: Command<Nothing>) -> Outcome<()> {
        run(&orders, &cmd, OrderCommand::Ship).await
    }

    async fn cancel(orders: Orders, cmd: Command<Nothing>) -> Outcome<()> {
        run(&orders, &cmd, OrderCommand::Cancel).await
    }

    /// 200 with the order's id and version.
    fn answer(head: &CommandHead, done: &Executed<()>) -> Result<Reply, Problem> {
        let id = head.entity_id("id")?;
        let version = written(done, &id)?;
        Ok(Reply::ok(json!({ "id": id, "version": version })))
    }

    /// The order's version after the command (the version it had, if nothing changed).
    fn written<R>(done: &Executed<R>, id: &EntityId) -> Result<u64, Problem> {
        let stream = Order::stream_id(id);
        done.version_of(&stream)
            .ok_or_else(|| Problem::internal(format!("the command wrote nothing to {stream}")))
    }
}

/// `GET` routes: an order's row (with `min_version`) and its state as of a version or
/// instant; a customer's orders and totals; each stream's events and verification.
pub mod query_api {
    use eventfold::command::Loaded;
    use eventfold::feed::FeedStore;
    use eventfold::lambda::query_api::{Answer, QueryApi, StreamAccess};
    use eventfold::names::env;
    use eventfold::problem::{IntoProblem, Problem, kinds};
    use eventfold::{Aggregate, EntityId};
    use orders::order::{Order, OrderStatus};
    use orders::projection::{OrderRow, customer_totals};
    use serde_json::{Value, json};

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::QueryApi)
        .read_models(&[ORDERS_TABLE, CUSTOMERS_TABLE])
        .requires(&[env::FEED_TABLE]);

    /// The routes over the stores; the feed is for operators.
    pub fn api(
        commands: CommandService,
        orders: Arc<dyn ReadModelStore>,
        customers: Arc<dyn ReadModelStore>,
        feed: Arc<dyn FeedStore>,
    ) -> QueryApi {
        let store: Arc<dyn EventStore> = commands.store().clone();
        let (per_order, per_customer) = projectors(orders.clone(), customers, store.clone());
        let per_customer = Arc::new(per_customer);
        QueryApi::new()
            .scope(READ)
            .row(
                "GET /orders/{id}",
                Arc::new(per_order),
                Order::stream_id,
                row,
            )
            .state::<Order>("GET /orders/{id}/state", commands, state)
            .route("GET /customers/{id}/orders", move |request| {
                let (per_customer, orders) = (per_customer.clone(), orders.clone());
                Box::pin(async move {
                    let id = request.entity_id("id")?;
                    let listed = per_customer
                        .row(id.as_str())
                        .await
                        .map_err(|e| e.to_problem())?;
                    let totals = customer_totals(orders.as_ref(), &id)
                        .await
                        .map_err(|e| e.to_problem())?;
                    let (version, listed) = listed.ok_or_else(|| {
                        Problem::new(kinds::NOT_FOUND, format!("no orders of {id} (yet)"))
                    })?;
                    let body = json!({
                        "customer": id,
                        "orders": listed.orders,
                        "placed": totals.placed,
                        "cancelled": totals.cancelled,
                        "spent": totals.spent,
                    });
                    Ok(Answer::json(&body, "read-model").versioned(version))
                })
            })
            .streams(store, StreamAccess::operators(OPERATOR, &[Order::CATEGORY]))
            .scope(OPERATOR)
            .feed(feed)
    }

    /// The routes over DynamoDB, configured from the environment (reads never touch the
    /// commands table).
    pub fn from_config(config: &Config, client: Client) -> QueryApi {
        let (orders, customers) = read_models(config, &client);
        let feed = config
            .feed(client.clone())
            .expect("the contract requires the feed table, checked before this runs");
        api(
            command_service(config, &client, false),
            orders,
            customers,
            Arc::new(feed),
        )
    }

    fn row(id: &EntityId, version: u64, row: &OrderRow) -> Value {
        json!({
            "id": id,
            "customer": row.customer,
            "status": row.status,
            "items": row.items,
            "total": row.total,
            "updated_at": row.updated_at,
            "version": version,
        })
    }

    fn state(id: &EntityId, loaded: &Loaded<Order>) -> Option<Value> {
        let order = &loaded.state;
        (order.status != OrderStatus::None).then(|| {
            json!({
                "id": id,
                "customer": order.customer,
                "status": order.status,
                "lines": order.lines,
                "total": order.total(),
                "paid": order.paid,
                "version": loaded.version,
            })
        })
    }
}

/// Events stream reader 1: keeps both read models from one batch.
pub mod project {
    use eventfold::lambda::consumers::ProjectorFunction;

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract =
        Contract::new(Runtime::Projector).read_models(&[ORDERS_TABLE, CUSTOMERS_TABLE]);

    /// The projector over DynamoDB, configured from the environment.
    pub fn from_config(config: &Config, client: Client) -> ProjectorFunction {
        let store = Arc::new(config.event_store(client.clone()));
        let (orders, customers) = read_models(config, &client);
        let (per_order, per_customer) = projectors(orders, customers, store);
        ProjectorFunction::new(vec![Arc::new(per_order), Arc::new(per_customer)])
            .parking_in(config, client)
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

/// The unpaid-orders workflow: a reactor on the global feed whose timers cancel orders left
/// unpaid for `UNPAID_AFTER_SECONDS`.
pub mod react {
    use std::time::Duration;

    use eventfold::StoreError;
    use eventfold::lambda::feed_consumer::FeedConsumerFunction;
    use orders::unpaid::UnpaidOrders;

    use super::*;

    /// The environment variable saying how long a placed order waits for its payment.
    pub const UNPAID_AFTER_SECONDS: &str = "UNPAID_AFTER_SECONDS";

    /// What this function needs from the template.
    pub const CONTRACT: Contract =
        Contract::new(Runtime::Reactor).requires(&[UNPAID_AFTER_SECONDS]);

    /// The reactor's function over DynamoDB, configured from the environment.
    pub fn from_config(
        config: &Config,
        client: Client,
    ) -> Result<FeedConsumerFunction, StoreError> {
        let after = config
            .var(UNPAID_AFTER_SECONDS)
            .and_then(|seconds| seconds.parse().ok())
            .map_or(orders::unpaid::DEFAULT_AFTER, Duration::from_secs);
        FeedConsumerFunction::reactor_from_config(
            config,
            client.clone(),
            Arc::new(UnpaidOrders::new(after)),
            command_service(config, &client, true),
        )
    }
}

/// Snapshots long streams on request (the snapshot queue).
pub mod snapshots {
    use eventfold::StoreError;
    use eventfold::lambda::consumers::SnapshotFunction;
    use eventfold::snapshot::Snapshotter;
    use orders::order::Order;

    use super::*;

    /// What this function needs from the template.
    pub const CONTRACT: Contract = Contract::new(Runtime::Snapshot);

    /// The snapshot function over DynamoDB, configured from the environment.
    pub fn from_config(config: &Config, client: Client) -> Result<SnapshotFunction, StoreError> {
        let snapshotter =
            Snapshotter::new(command_service(config, &client, false))?.register::<Order>();
        Ok(SnapshotFunction::new(snapshotter))
    }
}
