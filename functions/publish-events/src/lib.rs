//! Events stream reader 2: the seeds' "subscribe". Every event to the subscribers' FIFO
//! queue, every snapshot-due event to the snapshot queue: the library's
//! [`Publisher`](eventfold::publish::Publisher), wired to the queues of the environment.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use eventfold::config::Config;
use eventfold::metrics::{Metric, Metrics};
use eventfold::names::env;
use eventfold::projection::{ages_millis, batch_response};
use eventfold::publish::{PublishReport, Publisher};
use lambda_runtime::{Error, LambdaEvent};

/// The `Function` dimension of this function's metrics outside Lambda (deployed, it is the
/// function's name).
pub const FUNCTION: &str = "publish-events";

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_QUEUE_URL, env::SNAPSHOT_QUEUE_URL];

/// The app configured from the environment.
pub async fn from_env() -> Result<App, Error> {
    let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
    Ok(from_config(&config, aws_sdk_sqs::Client::new(&sdk)))
}

/// The app with a client built by the caller.
pub fn from_config(config: &Config, sqs: aws_sdk_sqs::Client) -> App {
    App::new(Publisher::new(
        sqs,
        &config.events_queue_url,
        &config.snapshot_queue_url,
    ))
}

/// The publisher and its metrics, built once per process.
#[derive(Debug, Clone)]
pub struct App {
    publisher: Publisher,
    metrics: Metrics,
}

impl App {
    /// An app over a publisher, its metrics on standard output.
    pub fn new(publisher: Publisher) -> Self {
        Self {
            publisher,
            metrics: Metrics::for_lambda(FUNCTION),
        }
    }

    /// The same app, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Publishes one batch; its metrics record: events published, snapshot requests, each
    /// event's lag from its own time, and the records to be retried.
    pub async fn process(&self, records: &[EventRecord]) -> PublishReport {
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
            ],
        );
        report
    }
}

/// The Lambda entry point.
pub async fn handle(
    app: &App,
    event: LambdaEvent<DynamoDbEvent>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = &event.payload.records;
    let report = app.process(records).await;
    Ok(batch_response(records, report.first_failure))
}
