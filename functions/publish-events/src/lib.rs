//! Events stream reader 2, the seeds' "subscribe": every event to the subscribers' FIFO
//! queue, every snapshot-due event to the snapshot queue. The library's publisher, wired to
//! the queues of the environment; it names no domain.

use std::sync::Arc;

use eventfold::aws::Config;
use eventfold::aws::aws_sdk_sqs::Client;
use eventfold::feed::Indexer;
use eventfold::lambda::consumers::PublisherFunction;
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::lambda::publish::Publisher;

/// What this function needs from the template (checked against it).
/// The bank keeps a global feed: its table, and the events table its gaps are repaired from.
pub const CONTRACT: Contract = Contract::new(Runtime::Publisher).requires(&[
    eventfold::names::env::FEED_TABLE,
    eventfold::names::env::EVENTS_TABLE,
]);

/// The publisher over the configured queues, indexing into the feed where `FEED_TABLE` is set
/// (its gaps repaired from `EVENTS_TABLE`).
pub fn from_config(
    config: &Config,
    sqs: Client,
    dynamodb: eventfold::aws::aws_sdk_dynamodb::Client,
) -> PublisherFunction {
    let publisher = Publisher::new(sqs, &config.events_queue_url, &config.snapshot_queue_url);
    let publisher = match config.feed(dynamodb.clone()) {
        Some(feed) => publisher.with_indexer(Arc::new(Indexer::new(
            Arc::new(feed),
            Arc::new(config.event_store(dynamodb)),
        ))),
        None => publisher,
    };
    PublisherFunction::new(publisher)
}
