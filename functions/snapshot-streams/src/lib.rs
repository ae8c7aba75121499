//! Snapshots long streams on request: load (previous snapshot + tail), store the state if
//! newer than the stored snapshot. Duplicate and out-of-order requests are harmless: the
//! conditional write keeps the newest. A request that cannot be served is reported as a
//! batch item failure, and after the queue's receive limit it moves to the dead-letter queue.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_lambda_events::streams::{SqsBatchItemFailure, SqsEventResponse};
use eventfold::StreamId;
use eventfold::aggregate::Aggregate;
use eventfold::command::CommandService;
use eventfold::config::Config;
use eventfold::domain::account::Account;
use eventfold::domain::user::User;
use eventfold::error::StoreError;
use eventfold::names::env;
use eventfold::snapshot::{DynamoSnapshots, Snapshot, SnapshotRequest, SnapshotStore};
use eventfold::store::EventStore;
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};

/// Messages handled at once.
const CONCURRENCY: usize = 4;

/// What one request did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A snapshot at this version was written.
    Written(u64),
    /// The stored snapshot is already as new.
    UpToDate,
    /// Not a category with snapshots.
    Skipped(String),
}

/// Snapshots by category: the aggregates this service knows.
pub async fn snapshot_stream(
    commands: &CommandService,
    stream_id: &StreamId,
) -> Result<Outcome, StoreError> {
    let written: Option<Snapshot> = match stream_id.category() {
        Account::CATEGORY => commands.snapshot::<Account>(stream_id).await?,
        User::CATEGORY => commands.snapshot::<User>(stream_id).await?,
        other => {
            return Ok(Outcome::Skipped(format!(
                "no aggregate for category {other}"
            )));
        }
    };
    Ok(written.map_or(Outcome::UpToDate, |s| Outcome::Written(s.version)))
}

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE];

/// The snapshotter, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    commands: CommandService,
}

impl App {
    /// An app over a store and a snapshot store.
    pub fn new(store: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore>) -> Self {
        Self {
            commands: CommandService::new(store).with_snapshots(snapshots),
        }
    }

    /// The app over DynamoDB, configured from the environment.
    pub async fn from_env() -> Result<Self, Error> {
        let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
        Ok(Self::from_config(
            &config,
            aws_sdk_dynamodb::Client::new(&sdk),
        ))
    }

    /// The app over DynamoDB with a client built by the caller.
    pub fn from_config(config: &Config, client: aws_sdk_dynamodb::Client) -> Self {
        let store = Arc::new(config.event_store(client.clone()));
        Self::new(
            store,
            Arc::new(DynamoSnapshots::new(client, &config.snapshots_table)),
        )
    }

    /// The command service used to load and snapshot.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// Handles one message.
    pub async fn process_message(&self, message: &SqsMessage) -> Result<Outcome, StoreError> {
        let body = message.body.as_deref().unwrap_or_default();
        let request: SnapshotRequest = serde_json::from_str(body)
            .map_err(|e| StoreError::invalid(format!("not a snapshot request: {e}")))?;
        let stream_id = StreamId::parse(&request.stream_id)?;
        let outcome = snapshot_stream(&self.commands, &stream_id).await?;
        tracing::info!(stream_id = %stream_id, requested = request.version, ?outcome, "snapshot request");
        Ok(outcome)
    }

    async fn tagged<'a>(
        &self,
        message: &'a SqsMessage,
    ) -> (&'a SqsMessage, Result<Outcome, StoreError>) {
        (message, self.process_message(message).await)
    }

    /// Handles a batch; the response names every message that failed.
    pub async fn process(&self, messages: &[SqsMessage]) -> SqsEventResponse {
        // Futures built up front: a closure over borrowed messages would not be `Send` here.
        let pending: Vec<_> = messages
            .iter()
            .map(|message| self.tagged(message))
            .collect();
        let results: Vec<_> = futures::stream::iter(pending)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut response = SqsEventResponse::default();
        for (message, result) in results {
            if let Err(error) = result {
                tracing::error!(message_id = ?message.message_id, %error, "snapshot request failed");
                let mut failure = SqsBatchItemFailure::default();
                failure.item_identifier.clone_from(&message.message_id);
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// The Lambda entry point.
pub async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsEventResponse, Error> {
    Ok(app.process(&event.payload.records).await)
}
