//! `dlq list | peek | redrive`: the stack's dead-letter queues. A redrive sends each message's
//! work back where it failed: the projector's and the publisher's batches are re-read from the
//! events table and applied or published again; snapshot requests and subscribers' events go
//! back to their queues. A message is deleted only once its work is done.

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use eventfold::aws::error::queue_error;
use eventfold::lambda::publish::Publisher;
use eventfold::projection::StreamProjector;
use serde_json::Value;

use super::redrive::events_of_failed_batch;
use super::{OpsError, Target, confirm, say};

/// A dead-letter queue of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetters {
    /// Batches the accounts projector failed on (on-failure records).
    Projector,
    /// Batches the publisher failed on (on-failure records).
    Publisher,
    /// Snapshot requests that failed every receive.
    Snapshot,
    /// Events a subscriber failed on.
    Events,
}

impl DeadLetters {
    /// Every dead-letter queue.
    pub const ALL: [Self; 4] = [
        Self::Projector,
        Self::Publisher,
        Self::Snapshot,
        Self::Events,
    ];

    /// The queue's logical id in the template.
    pub fn logical_id(self) -> &'static str {
        match self {
            Self::Projector => "ProjectorDeadLetterQueue",
            Self::Publisher => "PublisherDeadLetterQueue",
            Self::Snapshot => "SnapshotDeadLetterQueue",
            Self::Events => "EventsDeadLetterQueue",
        }
    }
}

impl fmt::Display for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Projector => "projector",
            Self::Publisher => "publisher",
            Self::Snapshot => "snapshot",
            Self::Events => "events",
        })
    }
}

/// Messages waiting and in flight in a queue.
pub async fn depth(target: &Target, url: &str) -> Result<(i64, i64), OpsError> {
    let attributes = target
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| {
            OpsError(super::describe_queue(&queue_error(
                "GetQueueAttributes",
                url,
                e,
            )))
        })?
        .attributes
        .unwrap_or_default();
    let number = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        number(QueueAttributeName::ApproximateNumberOfMessages),
        number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// `dlq list`: each dead-letter queue and how many messages it holds.
pub async fn list(target: &Target) -> Result<Vec<(DeadLetters, i64)>, OpsError> {
    let mut listed = Vec::new();
    for queue in DeadLetters::ALL {
        let Ok(url) = target.queue(queue.logical_id()) else {
            continue;
        };
        let (waiting, in_flight) = depth(target, url).await?;
        say(&format!(
            "{:<10} {waiting:>6} waiting {in_flight:>6} in flight  {url}",
            queue.to_string()
        ));
        listed.push((queue, waiting + in_flight));
    }
    Ok(listed)
}

async fn receive(target: &Target, url: &str, visibility: i32) -> Result<Vec<Message>, OpsError> {
    Ok(target
        .clients
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(visibility)
        .send()
        .await
        .map_err(|e| {
            OpsError(super::describe_queue(&queue_error(
                "ReceiveMessage",
                url,
                e,
            )))
        })?
        .messages
        .unwrap_or_default())
}

/// `dlq peek`: up to `max` messages, shown and left in the queue.
pub async fn peek(target: &Target, queue: DeadLetters, max: usize) -> Result<usize, OpsError> {
    let url = target.queue(queue.logical_id())?;
    let mut shown = BTreeSet::new();
    // Received with a visibility timeout of 0: they stay in the queue for everyone else.
    while shown.len() < max {
        let messages = receive(target, url, 0).await?;
        let fresh: Vec<&Message> = messages
            .iter()
            .filter(|m| !shown.contains(m.message_id().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh.into_iter().take(max - shown.len()) {
            let body = message.body().unwrap_or_default();
            let pretty = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| body.to_owned());
            say(&format!(
                "--- {} (received {} times)\n{pretty}",
                message.message_id().unwrap_or_default(),
                message
                    .attributes()
                    .and_then(|a| a.get(
                        &aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount
                    ))
                    .map_or("?", String::as_str)
            ));
            shown.insert(message.message_id().unwrap_or_default().to_owned());
        }
    }
    Ok(shown.len())
}

/// What a redrive did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Messages taken from the queue.
    pub messages: usize,
    /// Messages whose work was done (and so deleted).
    pub redriven: usize,
    /// Events applied or published again.
    pub events: usize,
    /// Messages left in the queue (their work failed again, or cannot be done).
    pub left: usize,
}

/// `dlq redrive`: asks, then does each message's work again and deletes it once done.
pub async fn redrive(
    target: &Target,
    queue: DeadLetters,
    yes: bool,
) -> Result<RedriveReport, OpsError> {
    let url = target.queue(queue.logical_id())?.to_owned();
    let (waiting, _) = depth(target, &url).await?;
    confirm(
        &format!(
            "redrive consumes the {queue} dead-letter queue of {} ({waiting} messages)",
            target.label
        ),
        yes,
    )?;
    let mut report = RedriveReport::default();
    let mut seen = BTreeSet::new();
    loop {
        let messages = receive(target, &url, 60).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            if !seen.insert(message.message_id().unwrap_or_default().to_owned()) {
                // Came back after failing in this run: it stays for the next.
                return Ok(report);
            }
            report.messages += 1;
            match redo(target, queue, message.body().unwrap_or_default()).await {
                Ok(events) => {
                    target
                        .clients
                        .sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .send()
                        .await
                        .map_err(|e| {
                            OpsError(super::describe_queue(&queue_error(
                                "DeleteMessage",
                                &url,
                                e,
                            )))
                        })?;
                    report.redriven += 1;
                    report.events += events;
                }
                Err(error) => {
                    say(&format!(
                        "{} stays in the queue: {error}",
                        message.message_id().unwrap_or_default()
                    ));
                    report.left += 1;
                }
            }
        }
    }
    say(&format!(
        "{} messages: {} redriven ({} events), {} left in the queue",
        report.messages, report.redriven, report.events, report.left
    ));
    Ok(report)
}

/// One message's work, done again; the number of events it covered.
async fn redo(target: &Target, queue: DeadLetters, body: &str) -> Result<usize, String> {
    match queue {
        DeadLetters::Projector => {
            let events =
                events_of_failed_batch(&target.clients, target.store.as_ref(), body).await?;
            let projectors = target.projectors().map_err(|e| e.to_string())?;
            for projector in projectors.values() {
                project_by_stream(projector.as_ref(), &events).await?;
            }
            Ok(events.len())
        }
        DeadLetters::Publisher => {
            let events =
                events_of_failed_batch(&target.clients, target.store.as_ref(), body).await?;
            let publisher = Publisher::new(
                target.clients.sqs.clone(),
                target.queue("EventsQueue").map_err(|e| e.to_string())?,
                target.queue("SnapshotQueue").map_err(|e| e.to_string())?,
            );
            let count = events.len();
            let report = publisher.publish_events(events).await;
            match report.first_failure {
                None => Ok(count),
                Some(position) => Err(format!("event {position} of the batch was not accepted")),
            }
        }
        DeadLetters::Snapshot => {
            let url = target.queue("SnapshotQueue").map_err(|e| e.to_string())?;
            target
                .clients
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| queue_error("SendMessage", url, e).to_string())?;
            Ok(1)
        }
        DeadLetters::Events => {
            let event: eventfold::RecordedEvent =
                serde_json::from_str(body).map_err(|e| format!("not an event: {e}"))?;
            let url = target.queue("EventsQueue").map_err(|e| e.to_string())?;
            target
                .clients
                .sqs
                .send_message()
                .queue_url(url)
                .message_group_id(event.stream_id.as_str())
                .message_deduplication_id(event.event_id.to_string())
                .message_body(body)
                .send()
                .await
                .map_err(|e| queue_error("SendMessage", url, e).to_string())?;
            Ok(1)
        }
    }
}

/// Projects events of possibly several streams, a stream's events at once.
async fn project_by_stream(
    projector: &dyn StreamProjector,
    events: &[eventfold::RecordedEvent],
) -> Result<(), String> {
    let mut start = 0;
    while start < events.len() {
        let stream = &events[start].stream_id;
        let end = events[start..]
            .iter()
            .position(|e| &e.stream_id != stream)
            .map_or(events.len(), |n| start + n);
        projector
            .project_stream(&events[start..end])
            .await
            .into_result()
            .map_err(|e| e.to_string())?;
        start = end;
    }
    Ok(())
}
