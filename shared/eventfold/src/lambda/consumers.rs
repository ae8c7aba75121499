//! The consumer functions, generic over the application: the projector (one or more
//! projections on the events table's stream), the publisher (the stream's other reader), and
//! the snapshot function (the snapshot queue). Each processes a batch, writes its metrics
//! record and answers with the records to retry.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::{DynamoDbEventResponse, SqsEventResponse};
use lambda_runtime::{Error, LambdaEvent};

use super::metrics::{Metric, Metrics};
use super::projector::process_stream_batch;
use super::publish::Publisher;
use super::snapshots::process_batch;
use super::stream::{ages_millis, batch_response};
use crate::feed::FeedStore;
use crate::projection::{BatchReport, StreamProjector};
use crate::snapshot::Snapshotter;

/// The metrics of the projector's record per batch.
pub const PROJECTOR_METRICS: &[&str] = &[
    "EventsProjected",
    "DuplicatesIgnored",
    "GapsRepaired",
    "ProjectionLag",
    "BatchItemFailures",
    "StreamsParked",
    "EventsHeld",
];
/// The metrics of the publisher's record per batch.
pub const PUBLISHER_METRICS: &[&str] = &[
    "EventsPublished",
    "SnapshotRequests",
    "PublishLag",
    "BatchItemFailures",
    "EventsRewritten",
    "EventsIndexed",
    "FeedGapsRepaired",
    "FeedWrites",
];
/// The metrics of the snapshot function's record per batch.
pub const SNAPSHOT_METRICS: &[&str] = &[
    "SnapshotsWritten",
    "SnapshotsCurrent",
    "SnapshotRequestsFailed",
];

/// Stream reader 1: keeps read models, one or more projections over the same batch.
#[derive(Debug)]
pub struct ProjectorFunction {
    projectors: Vec<Arc<dyn StreamProjector>>,
    parking: Option<Arc<dyn FeedStore>>,
    metrics: Metrics,
}

impl ProjectorFunction {
    /// A function running each of `projectors` over every batch.
    pub fn new(projectors: Vec<Arc<dyn StreamProjector>>) -> Self {
        Self {
            projectors,
            parking: None,
            metrics: Metrics::for_lambda("projector"),
        }
    }

    /// The same function parking streams it cannot apply in `feed` (each projection's under its
    /// name, as a feed consumer's), instead of failing their batches into the dead-letter
    /// queue: a poison event holds only its own stream.
    #[must_use]
    pub fn with_parking(mut self, feed: Arc<dyn FeedStore>) -> Self {
        self.parking = Some(feed);
        self
    }

    /// The same function parking streams in the feed of the environment (`FEED_TABLE`, which
    /// the projector's contract requires); as it was where none is configured.
    #[must_use]
    pub fn parking_in(self, config: &crate::aws::Config, client: aws_sdk_dynamodb::Client) -> Self {
        match config.feed(client) {
            Some(feed) => self.with_parking(Arc::new(feed)),
            None => self,
        }
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The projectors (for rebuilds and redrives).
    pub fn projectors(&self) -> &[Arc<dyn StreamProjector>] {
        &self.projectors
    }

    /// Processes one batch through every projector; the report counts them all and names the
    /// earliest record any of them must retry from (a retry is a duplicate for the others).
    pub async fn process(
        &self,
        records: &[aws_lambda_events::event::dynamodb::EventRecord],
    ) -> BatchReport {
        let mut report = BatchReport::default();
        for projector in &self.projectors {
            let parking = self.parking.as_deref();
            report.merge(&process_stream_batch(projector.as_ref(), records, parking).await);
        }
        // Each projector saw the same records that are not inserts: count them once.
        report.ignored = records.iter().filter(|r| r.event_name != "INSERT").count();
        self.metrics.emit(
            &[],
            &[
                Metric::count("EventsProjected", report.applied + report.repaired),
                Metric::count("DuplicatesIgnored", report.duplicates),
                Metric::count("GapsRepaired", report.repaired),
                Metric::millis("ProjectionLag", ages_millis(records)),
                Metric::count(
                    "BatchItemFailures",
                    usize::from(report.first_failure.is_some()),
                ),
                Metric::count("StreamsParked", report.parked),
                Metric::count("EventsHeld", report.held),
            ],
        );
        report
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<DynamoDbEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        let records = &event.payload.records;
        Ok(batch_response(
            records,
            self.process(records).await.first_failure,
        ))
    }
}

/// Stream reader 2: every event to the subscribers' FIFO queue, every snapshot-due event to
/// the snapshot queue.
#[derive(Debug, Clone)]
pub struct PublisherFunction {
    publisher: Publisher,
    metrics: Metrics,
}

impl PublisherFunction {
    /// A function over a publisher.
    pub fn new(publisher: Publisher) -> Self {
        Self {
            publisher,
            metrics: Metrics::for_lambda("publisher"),
        }
    }

    /// The publisher of a service's environment: the queues `EVENTS_QUEUE_URL` and
    /// `SNAPSHOT_QUEUE_URL` name, indexing every batch into the feed `FEED_TABLE` names (gaps
    /// repaired from `EVENTS_TABLE`) where it is set. Every service's template sets it (the
    /// runtime's contract requires it); a publisher without a feed is for tests.
    pub fn from_config(config: &crate::aws::Config, sdk: &aws_config::SdkConfig) -> Self {
        let publisher = Publisher::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.events_queue_url,
            &config.snapshot_queue_url,
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let publisher = match config.feed(dynamodb.clone()) {
            Some(feed) => publisher.with_indexer(Arc::new(crate::feed::Indexer::new(
                Arc::new(feed),
                Arc::new(config.event_store(dynamodb)),
            ))),
            None => publisher,
        };
        Self::new(publisher)
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Publishes one batch and writes its metrics record.
    pub async fn process(
        &self,
        records: &[aws_lambda_events::event::dynamodb::EventRecord],
    ) -> super::publish::PublishReport {
        let report = self.publisher.process(records).await;
        self.metrics.emit(
            &[],
            &[
                Metric::count("EventsPublished", report.published),
                Metric::count("SnapshotRequests", report.snapshot_requests),
                Metric::millis("PublishLag", ages_millis(records)),
                Metric::count(
                    "BatchItemFailures",
                    usize::from(report.first_failure.is_some()),
                ),
                Metric::count("EventsRewritten", report.rewritten),
                Metric::count("EventsIndexed", report.index.indexed),
                Metric::count("FeedGapsRepaired", report.index.repaired),
                Metric::count("FeedWrites", report.index.writes),
            ],
        );
        report
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<DynamoDbEvent>,
    ) -> Result<DynamoDbEventResponse, Error> {
        let records = &event.payload.records;
        Ok(batch_response(
            records,
            self.process(records).await.first_failure,
        ))
    }
}

/// The snapshot function: snapshot requests from the queue, with the application's
/// aggregates.
#[derive(Debug, Clone)]
pub struct SnapshotFunction {
    snapshotter: Snapshotter,
    metrics: Metrics,
}

impl SnapshotFunction {
    /// A function over a snapshotter.
    pub fn new(snapshotter: Snapshotter) -> Self {
        Self {
            snapshotter,
            metrics: Metrics::for_lambda("snapshotter"),
        }
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The snapshotter (for backfills).
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snapshotter
    }

    /// Serves one batch and writes its metrics record.
    pub async fn process(
        &self,
        messages: &[aws_lambda_events::event::sqs::SqsMessage],
    ) -> SqsEventResponse {
        let (response, report) = process_batch(&self.snapshotter, messages).await;
        self.metrics.emit(
            &[],
            &[
                Metric::count("SnapshotsWritten", report.written),
                Metric::count("SnapshotsCurrent", report.up_to_date),
                Metric::count("SnapshotRequestsFailed", report.failed),
            ],
        );
        response
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsEventResponse, Error> {
        Ok(self.process(&event.payload.records).await)
    }
}
