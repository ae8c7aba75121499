//! Eventfold as its command function runs it: the DynamoDB store with its commands table (every
//! command leaves an idempotency record, with an id generated as for a request without
//! `Idempotency-Key`), snapshots, the built-in conflict retry within the function's deadline,
//! and no per-stream queue (separate Lambda instances race; they do not queue).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bank::domain::account::{Account, AccountCommand, AccountError};
use eventfold::aggregate::Aggregate as _;
use eventfold::command::{
    CommandContext, CommandError, CommandService, Target, request_fingerprint,
};
use eventfold::aws::{DynamoSnapshots, DynamoStore};
use eventfold::store::StoreSettings;
use eventfold::testing::{TableShape, create_table};
use eventfold::{CommandId, StreamId};

use crate::anchor::{DEADLINE, Failure, short};

/// The three tables of one Eventfold store, named after `prefix`.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Events.
    pub events: String,
    /// Idempotency records.
    pub commands: String,
    /// Snapshots.
    pub snapshots: String,
}

impl Tables {
    /// Creates them.
    pub async fn create(client: &aws_sdk_dynamodb::Client, prefix: &str) -> Result<Self, String> {
        let tables = Self {
            events: format!("{prefix}-events"),
            commands: format!("{prefix}-commands"),
            snapshots: format!("{prefix}-snapshots"),
        };
        for (name, shape) in [
            (&tables.events, TableShape::EVENTS),
            (&tables.commands, TableShape::COMMANDS),
            (&tables.snapshots, TableShape::SNAPSHOTS),
        ] {
            create_table(client, name, shape)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(tables)
    }

    /// The command service over them, as the command function builds it.
    pub fn service(&self, client: aws_sdk_dynamodb::Client) -> CommandService {
        self.variant(client, true)
            .keep_states(eventfold::command::DEFAULT_KEPT_STATES)
    }

    /// A service that reads the stores on every load (a process that has not seen the
    /// stream), with or without the snapshot store.
    pub fn variant(&self, client: aws_sdk_dynamodb::Client, snapshots: bool) -> CommandService {
        let store = Arc::new(
            DynamoStore::new(client.clone(), &self.events, StoreSettings::default())
                .with_commands_table(&self.commands),
        );
        let service = CommandService::new(store)
            .without_stream_queues()
            .keep_states(0);
        if snapshots {
            service.with_snapshots(Arc::new(DynamoSnapshots::new(client, &self.snapshots)))
        } else {
            service
        }
    }
}

/// The stream of account `id`.
pub fn stream(id: &str) -> Result<StreamId, String> {
    StreamId::new("Account", id).map_err(|e| e.to_string())
}

/// Runs one account command as the command function does (with `record`, an idempotency
/// record in the same transaction), within `deadline`; the attempts it took and the events its
/// load folded.
pub async fn execute(
    service: &CommandService,
    id: &str,
    command: &AccountCommand,
    record: bool,
    deadline: Duration,
) -> Result<(u32, usize), (Failure, String)> {
    let context = if record {
        context(command)?
    } else {
        CommandContext::default()
    }
    .with_deadline(Instant::now() + deadline);
    match service
        .execute_one::<Account, ()>(
            &context,
            Target::new(stream(id).map_err(other)?),
            command,
            (),
        )
        .await
    {
        Ok(executed) => Ok((executed.stats.attempts, executed.stats.events_folded)),
        Err(error) => Err(classify(&error)),
    }
}

/// Runs one command that makes `n` deposits.
pub async fn deposit_many(service: &CommandService, id: &str, n: usize) -> Result<(), String> {
    let one = crate::amount(1);
    let context = context(&AccountCommand::Deposit { amount: one }).map_err(|e| e.1)?;
    service
        .execute::<Account, ()>(
            &context,
            &[Target::new(stream(id)?)],
            &[],
            |loaded| {
                let mut state = loaded[0].state.clone();
                let mut events = Vec::with_capacity(n);
                for _ in 0..n {
                    let decided = state.decide(&AccountCommand::Deposit { amount: one })?;
                    state = decided
                        .iter()
                        .fold(state, eventfold::aggregate::Aggregate::evolve);
                    events.extend(decided);
                }
                Ok(vec![events])
            },
            (),
        )
        .await
        .map(drop)
        .map_err(|e| short(&e.to_string()))
}

/// The context the HTTP layer builds for a request without `Idempotency-Key`.
fn context(command: &AccountCommand) -> Result<CommandContext, (Failure, String)> {
    let fingerprint = request_fingerprint("account", &format!("{command:?}"))
        .map_err(|e| other(e.to_string()))?;
    let mut context = CommandContext::new(CommandId::generate(), fingerprint)
        .with_deadline(Instant::now() + DEADLINE);
    context.fresh_id = true;
    Ok(context)
}

fn classify(error: &CommandError<AccountError>) -> (Failure, String) {
    let kind = match error {
        CommandError::Conflict { .. } => Failure::Conflict,
        _ => Failure::Other,
    };
    (kind, short(&error.to_string()))
}

fn other(message: impl ToString) -> (Failure, String) {
    (Failure::Other, message.to_string())
}
