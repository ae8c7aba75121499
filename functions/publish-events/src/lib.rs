//! Events stream reader 2, the seeds' "subscribe": every event to the subscribers' FIFO
//! queue, every snapshot-due event to the snapshot queue. The library's publisher, wired to
//! the queues of the environment; it names no domain.

use eventfold::aws::Config;
use eventfold::aws::aws_sdk_sqs::Client;
use eventfold::lambda::consumers::PublisherFunction;
use eventfold::lambda::publish::Publisher;
use eventfold::names::env;

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_QUEUE_URL, env::SNAPSHOT_QUEUE_URL];

/// The publisher over the configured queues.
pub fn from_config(config: &Config, sqs: Client) -> PublisherFunction {
    PublisherFunction::new(Publisher::new(
        sqs,
        &config.events_queue_url,
        &config.snapshot_queue_url,
    ))
}
