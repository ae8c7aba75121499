//! Events stream reader 2, the seeds' "subscribe": every event to the subscribers' FIFO
//! queue, every snapshot-due event to the snapshot queue. The library's publisher, wired to
//! the queues of the environment; it names no domain.

use eventfold::aws::Config;
use eventfold::aws::aws_sdk_sqs::Client;
use eventfold::lambda::consumers::PublisherFunction;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::lambda::publish::Publisher;

/// What this function needs from the template (checked against it).
pub const CONTRACT: Contract = Contract::new(Runtime::Publisher);

/// The publisher over the configured queues.
pub fn from_config(config: &Config, sqs: Client) -> PublisherFunction {
    PublisherFunction::new(Publisher::new(
        sqs,
        &config.events_queue_url,
        &config.snapshot_queue_url,
    ))
}
