//! `dlq list | peek | redrive`: the service's dead-letter queues, as its template wires them.
//! A redrive sends each message's work back where it failed: a stream reader's on-failure
//! record is turned back into the events it covered, re-read from the events table, and the
//! function that failed is invoked with them again; a queue's dead letters go back to that
//! queue. A message is deleted only once its work is done.

use std::collections::BTreeSet;

use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use eventfold::aws::error::queue_error;
use eventfold::feed::FeedStore;
use eventfold::lambda::stream::{insert_record, stream_event};
use serde_json::Value;

use super::redrive::events_of_failed_batch;
use super::service::{DeadLetterSource, DeadLetterSpec};
use super::{OpsError, Target, confirm, say};

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

/// `dlq list`: each dead-letter queue and how many messages it holds, then each consumer's
/// parked streams (`parked:<consumer>`, how many).
pub async fn list(target: &Target) -> Result<Vec<(String, i64)>, OpsError> {
    let mut listed = Vec::new();
    for (name, spec) in &target.service.dead_letters {
        let Ok(url) = target.queue(&spec.queue) else {
            continue;
        };
        let (waiting, in_flight) = depth(target, url).await?;
        say(&format!(
            "{name:<10} {waiting:>6} waiting {in_flight:>6} in flight  {url}"
        ));
        listed.push((name.clone(), waiting + in_flight));
    }
    // A stream a consumer could not apply is parked rather than dead-lettered: every consumer
    // that has parked one, and its streams now.
    if let Ok(feed) = super::feed::feed_of(target) {
        for consumer in feed.parking_consumers().await? {
            let parked = super::feed::parked(target, &consumer).await?;
            listed.push((
                format!("parked:{consumer}"),
                i64::try_from(parked).unwrap_or(i64::MAX),
            ));
        }
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
        .message_system_attribute_names(MessageSystemAttributeName::All)
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
pub async fn peek(target: &Target, queue: &str, max: usize) -> Result<usize, OpsError> {
    let url = target.queue(&target.service.dead_letter(queue)?.queue)?;
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
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
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
pub async fn redrive(target: &Target, queue: &str, yes: bool) -> Result<RedriveReport, OpsError> {
    let spec = target.service.dead_letter(queue)?.clone();
    let url = target.queue(&spec.queue)?.to_owned();
    let (waiting, _) = depth(target, &url).await?;
    confirm(
        &format!(
            "redrive consumes {} of {} ({waiting} messages)",
            spec.queue, target.label
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
            match redo(target, &spec, &message).await {
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
async fn redo(target: &Target, spec: &DeadLetterSpec, message: &Message) -> Result<usize, String> {
    let body = message.body().unwrap_or_default();
    match &spec.source {
        DeadLetterSource::OnFailure(functions) => {
            let function = failed_function(functions, body)?;
            let events =
                events_of_failed_batch(&target.clients, target.store.as_ref(), body).await?;
            let records = events
                .iter()
                .enumerate()
                .map(|(i, event)| insert_record(event, i as u64 + 1))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let response: DynamoDbEventResponse = target
                .invoker
                .invoke(function, &stream_event(records).map_err(|e| e.to_string())?)
                .await?;
            match response.batch_item_failures.first() {
                None => Ok(events.len()),
                Some(failure) => Err(format!(
                    "{function} failed again, at the record {}",
                    failure.item_identifier.as_deref().unwrap_or("?")
                )),
            }
        }
        DeadLetterSource::Queue(source) => {
            let url = target.queue(source).map_err(|e| e.to_string())?;
            let attribute = |name: MessageSystemAttributeName| {
                message.attributes().and_then(|a| a.get(&name)).cloned()
            };
            let fifo = target.template.queue(source).is_some_and(|q| q.fifo);
            let mut send = target
                .clients
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body);
            if fifo {
                // The group and deduplication id the message was sent with; for an event
                // whose emulator dropped them, its stream and event id, as the publisher sets.
                let event = serde_json::from_str::<eventfold::RecordedEvent>(body).ok();
                let group = attribute(MessageSystemAttributeName::MessageGroupId)
                    .or_else(|| event.as_ref().map(|e| e.stream_id.to_string()))
                    .ok_or("a FIFO message without a group id")?;
                let deduplication = attribute(MessageSystemAttributeName::MessageDeduplicationId)
                    .or_else(|| event.as_ref().map(|e| e.event_id.to_string()))
                    .or_else(|| message.message_id().map(str::to_owned))
                    .unwrap_or_default();
                send = send
                    .message_group_id(group)
                    .message_deduplication_id(deduplication);
            }
            send.send()
                .await
                .map_err(|e| queue_error("SendMessage", url, e).to_string())?;
            Ok(1)
        }
    }
}

/// Which function an on-failure record came from: the only one writing to this queue, or the
/// one its request context names.
fn failed_function<'a>(functions: &'a [String], body: &str) -> Result<&'a str, String> {
    if let [only] = functions {
        return Ok(only);
    }
    let record: Value =
        serde_json::from_str(body).map_err(|e| format!("not an on-failure record: {e}"))?;
    let arn = record["requestContext"]["functionArn"]
        .as_str()
        .unwrap_or_default();
    functions
        .iter()
        .find(|f| arn.ends_with(&format!(":{f}")) || arn.contains(f.as_str()))
        .map(String::as_str)
        .ok_or_else(|| format!("no function of the template sent this record ({arn})"))
}
