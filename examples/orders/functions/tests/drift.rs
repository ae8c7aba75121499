//! The template cannot drift from the code: infra/template.yaml checked against what each
//! function declares (its contract and routes), by the checks every eventfold service passes.

use std::path::Path;
use std::sync::Arc;

use eventfold::command::CommandService;
use eventfold::feed::MemoryFeed;
use eventfold::projection::MemoryReadModel;
use eventfold::store::MemoryStore;
use eventfold_cli::drift::{Function, check_file};
use orders::Orders;
use orders::projection::{CUSTOMER_ID, ORDER_ID};
use orders_functions::{command_api, project, publish, query_api, react, snapshots};

#[test]
fn the_template_is_what_the_functions_code_needs() {
    let commands = || CommandService::new(Arc::new(MemoryStore::new()));
    let command_routes = command_api::api(Orders::new(commands()));
    let query_routes = query_api::api(
        commands(),
        Arc::new(MemoryReadModel::new(ORDER_ID)),
        Arc::new(MemoryReadModel::new(CUSTOMER_ID)),
        Arc::new(MemoryFeed::new(1)),
    );
    let functions = [
        Function::new("orders-command-api", command_api::CONTRACT)
            .routes(command_routes.route_keys()),
        Function::new("orders-query-api", query_api::CONTRACT).routes(query_routes.route_keys()),
        Function::new("orders-project-orders", project::CONTRACT),
        Function::new("orders-publish-events", publish::CONTRACT),
        Function::new("orders-snapshot-streams", snapshots::CONTRACT),
        Function::new("orders-react-unpaid", react::CONTRACT),
    ];
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    let drift = check_file(&template, &functions);
    assert!(
        drift.is_empty(),
        "infra/template.yaml drifted from the code:\n{drift}"
    );
}
