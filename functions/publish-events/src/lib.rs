//! Events stream reader 2: the seeds' "subscribe". Every event to the subscribers' FIFO
//! queue, every snapshot-due event to the snapshot queue: the library's
//! [`Publisher`](eventfold::publish::Publisher), wired to the queues of the environment.

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use eventfold::config::Config;
use eventfold::names::env;
use eventfold::projection::batch_response;
use eventfold::publish::Publisher;
use lambda_runtime::{Error, LambdaEvent};

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_QUEUE_URL, env::SNAPSHOT_QUEUE_URL];

/// The publisher configured from the environment.
pub async fn from_env() -> Result<Publisher, Error> {
    let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
    Ok(from_config(&config, aws_sdk_sqs::Client::new(&sdk)))
}

/// The publisher with a client built by the caller.
pub fn from_config(config: &Config, sqs: aws_sdk_sqs::Client) -> Publisher {
    Publisher::new(sqs, &config.events_queue_url, &config.snapshot_queue_url)
}

/// The Lambda entry point.
pub async fn handle(
    publisher: &Publisher,
    event: LambdaEvent<DynamoDbEvent>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = &event.payload.records;
    let report = publisher.process(records).await;
    Ok(batch_response(records, report.first_failure))
}
