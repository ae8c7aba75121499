//! The example order service on DynamoDB: its own tables, the library's DynamoDB event store
//! and read-model store, the same scenario its crate runs on the memory stores.

use std::sync::Arc;

use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{DynamoReadModel, DynamoStore};
use eventfold::testing::{TableShape, create_table};
use eventfold_cli::local::service::{emulator_endpoint, emulator_sdk_config};
use orders::projection::{CUSTOMER_ID, ORDER_ID};

#[tokio::test]
async fn orders_per_customer_on_dynamodb() {
    let sdk = emulator_sdk_config(&emulator_endpoint()).await;
    let client = Client::new(&sdk);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!("orders{}x{nanos}", std::process::id());
    let (events, commands, rows, customers) = (
        format!("{prefix}-events"),
        format!("{prefix}-commands"),
        format!("{prefix}-orders"),
        format!("{prefix}-customers"),
    );
    for (name, shape) in [
        (&events, TableShape::EVENTS),
        (&commands, TableShape::COMMANDS),
        (&rows, TableShape::read_model(ORDER_ID)),
        (&customers, TableShape::read_model(CUSTOMER_ID)),
    ] {
        create_table(&client, name, shape).await.expect("table");
    }
    let store = Arc::new(
        DynamoStore::new(
            client.clone(),
            &events,
            eventfold::store::StoreSettings::default(),
        )
        .with_commands_table(&commands),
    );
    let read_model = Arc::new(DynamoReadModel::new(client.clone(), &rows, ORDER_ID));
    let per_customer = Arc::new(DynamoReadModel::new(client, &customers, CUSTOMER_ID));
    let seen = orders::scenario::run(store, read_model, per_customer)
        .await
        .expect("the scenario runs");
    seen.assert_as_expected();
}
