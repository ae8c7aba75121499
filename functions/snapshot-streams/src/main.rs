//! The snapshot Lambda (SQS event source on the snapshot queue).

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventfold::telemetry::init();
    let app = snapshot_streams::App::from_env().await?;
    lambda_runtime::run(service_fn(|event| snapshot_streams::handle(&app, event))).await
}
