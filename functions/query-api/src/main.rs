//! The query API Lambda: clients are built once, then every invocation reuses them.

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventfold::telemetry::init();
    let app = query_api::App::from_env().await?;
    lambda_runtime::run(service_fn(|event| query_api::handle(&app, event))).await
}
