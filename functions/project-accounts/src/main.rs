//! The accounts projector Lambda (DynamoDB Streams event source).

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventfold::telemetry::init();
    let app = project_accounts::App::from_env().await?;
    lambda_runtime::run(service_fn(|event| project_accounts::handle(&app, event))).await
}
