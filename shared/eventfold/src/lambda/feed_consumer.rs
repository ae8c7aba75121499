//! A feed consumer as a Lambda function: invoked on a schedule (every minute), it polls the
//! feed until shortly before its deadline, so that one invocation follows on from the last and
//! the consumer is never more than about a second behind; then it gives its partitions up, so
//! the next invocation (in this container or another) takes them at once, and writes its
//! metrics record: what it applied, what it parked, and how far behind it is.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use super::metrics::{Metric, Metrics, Unit};
use crate::command::CommandService;
use crate::error::StoreError;
use crate::feed::{ConsumerReport, FeedConsumer};
use crate::reactor::{Reacting, ReactionReport, Reactor};

/// The metrics of a feed consumer's record per invocation.
pub const FEED_CONSUMER_METRICS: &[&str] = &[
    "FeedEventsApplied",
    "StreamsParked",
    "EventsHeld",
    "FeedLagEvents",
    "FeedLagSeconds",
];

/// The metrics of a reactor's record per invocation: a feed consumer's, and what its reactions
/// came to.
pub const REACTOR_METRICS: &[&str] = &[
    "FeedEventsApplied",
    "StreamsParked",
    "EventsHeld",
    "FeedLagEvents",
    "FeedLagSeconds",
    "CommandsWritten",
    "CommandsReplayed",
    "CommandsRefused",
    "TimersFired",
];

/// How long before its deadline an invocation stops polling: time to release its partitions
/// and write its record.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5);
/// How long it waits after a poll that found nothing new.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(1);

/// A feed consumer's function: polls until its deadline, then reports.
#[derive(Debug)]
pub struct FeedConsumerFunction {
    consumer: FeedConsumer,
    reacting: Option<Arc<Reacting>>,
    idle: Duration,
    margin: Duration,
    metrics: Metrics,
}

impl FeedConsumerFunction {
    /// A function running `consumer` (one instance per container: its leases are this
    /// container's across invocations).
    pub fn new(consumer: FeedConsumer) -> Self {
        Self {
            consumer,
            reacting: None,
            idle: DEFAULT_IDLE,
            margin: DEFAULT_MARGIN,
            metrics: Metrics::for_lambda("feed-consumer"),
        }
    }

    /// A reactor's function: `consumer` feeds `reacting` (its handler) from the feed, and each
    /// round also fires the reactor's timers that are due, so a timer fires within about a
    /// second of its time.
    pub fn reactor(consumer: FeedConsumer, reacting: Arc<Reacting>) -> Self {
        Self {
            reacting: Some(reacting),
            metrics: Metrics::for_lambda("reactor"),
            ..Self::new(consumer)
        }
    }

    /// A reactor's function over the environment: the feed `FEED_TABLE` names, the timers
    /// `TIMERS_TABLE` names, commands sent through `commands` (whose store the events are read
    /// from). The consumer is named after the reactor.
    pub fn reactor_from_config(
        config: &crate::aws::Config,
        client: aws_sdk_dynamodb::Client,
        reactor: Arc<dyn Reactor>,
        commands: CommandService,
    ) -> Result<Self, StoreError> {
        let missing = |name: &str| StoreError::misuse(format!("{name} is not set"));
        let feed = config
            .feed(client.clone())
            .ok_or_else(|| missing(crate::names::env::FEED_TABLE))?;
        let timers = config
            .var(crate::names::env::TIMERS_TABLE)
            .ok_or_else(|| missing(crate::names::env::TIMERS_TABLE))?;
        let timers = Arc::new(crate::aws::DynamoTimers::new(client, timers));
        let events = commands.store().clone();
        let name = reactor.name().to_owned();
        let reacting = Arc::new(Reacting::new(reactor, commands, timers));
        let consumer = FeedConsumer::new(&name, Arc::new(feed), events, reacting.clone())?;
        Ok(Self::reactor(consumer, reacting))
    }

    /// The same function waiting `idle` after a poll that found nothing, and stopping `margin`
    /// before its deadline.
    #[must_use]
    pub fn with_pace(mut self, idle: Duration, margin: Duration) -> Self {
        self.idle = idle;
        self.margin = margin;
        self
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The consumer it runs.
    pub fn consumer(&self) -> &FeedConsumer {
        &self.consumer
    }

    /// Polls until `margin` before `deadline` (at least once), gives the partitions up, and
    /// writes the record. A failed poll (the store unavailable) is logged and retried after the
    /// idle wait; the checkpoints make that safe.
    pub async fn run_until(&self, deadline: tokio::time::Instant) -> ConsumerReport {
        let stop = deadline.checked_sub(self.margin).unwrap_or(deadline);
        let mut total = ConsumerReport::default();
        loop {
            let fired = match &self.reacting {
                Some(reacting) => match reacting.fire_due(chrono::Utc::now()).await {
                    Ok(fired) => fired.fired,
                    Err(error) => {
                        tracing::error!(error = %crate::error::error_chain(&error),
                            "timers not fired");
                        0
                    }
                },
                None => 0,
            };
            match self.consumer.poll().await {
                Ok(round) => {
                    let idle = round.applied == 0 && round.redriven == 0 && fired == 0;
                    total.add(&round);
                    if !idle && tokio::time::Instant::now() < stop {
                        continue;
                    }
                }
                Err(error) => {
                    tracing::error!(error = %crate::error::error_chain(&error), "feed poll failed");
                }
            }
            if tokio::time::Instant::now() + self.idle >= stop {
                break;
            }
            tokio::time::sleep(self.idle).await;
        }
        if let Err(error) = self.consumer.release().await {
            tracing::warn!(error = %crate::error::error_chain(&error),
                "partitions not given up; others wait for their leases to end");
        }
        let lag = self.consumer.lag().await;
        let (positions, seconds) = match &lag {
            Ok(lag) => (lag.positions as f64, lag.seconds),
            Err(error) => {
                tracing::warn!(error = %crate::error::error_chain(error), "lag not read");
                (0.0, 0.0)
            }
        };
        tracing::info!(
            applied = total.applied,
            parked = total.parked,
            held = total.held,
            redriven = total.redriven,
            lag_events = positions,
            lag_seconds = seconds,
            "feed consumer ran"
        );
        let mut metrics = vec![
            Metric::count("FeedEventsApplied", total.applied),
            Metric::count("StreamsParked", total.parked),
            Metric::count("EventsHeld", total.held),
        ];
        if let Some(reacting) = &self.reacting {
            let ReactionReport {
                written,
                replayed,
                refused,
                fired,
                ..
            } = reacting.take_report();
            metrics.push(Metric::count("CommandsWritten", written));
            metrics.push(Metric::count("CommandsReplayed", replayed));
            metrics.push(Metric::count("CommandsRefused", refused));
            metrics.push(Metric::count("TimersFired", fired));
        }
        if lag.is_ok() {
            metrics.push(Metric {
                name: "FeedLagEvents",
                unit: Unit::Count,
                values: vec![positions],
            });
            metrics.push(Metric {
                name: "FeedLagSeconds",
                unit: Unit::Seconds,
                values: vec![seconds],
            });
        }
        self.metrics.emit(&[], &metrics);
        total
    }

    /// The Lambda entry point: whatever the schedule sends, it runs until the invocation's
    /// deadline.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
        let left = deadline_ms.saturating_sub(chrono::Utc::now().timestamp_millis());
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
        let report = self.run_until(tokio::time::Instant::now() + left).await;
        Ok(serde_json::json!({
            "applied": report.applied,
            "parked": report.parked,
            "held": report.held,
            "redriven": report.redriven,
        }))
    }
}
