//! The snapshot Lambda (SQS event source): clients are built once, then reused.

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventfold::telemetry::init();
    let snapshotter = snapshot_streams::from_env().await?;
    lambda_runtime::run(service_fn(|event| {
        snapshot_streams::handle(&snapshotter, event)
    }))
    .await
}
