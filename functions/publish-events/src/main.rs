//! The publisher Lambda (DynamoDB Streams event source).

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventfold::telemetry::init();
    let publisher = publish_events::from_env().await?;
    lambda_runtime::run(service_fn(|event| {
        publish_events::handle(&publisher, event)
    }))
    .await
}
