//! Operator commands against a deployed stack (names from its outputs) or a local environment
//! (the template's logical ids under a prefix), through the SDK's usual configuration:
//! reading and tailing streams, verifying chains, rebuilding projections, backfilling
//! snapshots, dead-letter queues, and statistics.

pub mod dlq;
pub mod progress;
pub mod rebuild;
pub mod redrive;
pub mod snapshots;
pub mod stats;
pub mod streams;
pub mod verify;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use eventfold::aws::DynamoStore;
use eventfold::error::{StoreError, Unavailable, error_chain};
use eventfold::projection::StreamProjector;

use crate::local::provision::{Clients, Resources, physical_name};
use crate::local::template::Template;

/// What went wrong, said for an operator: which resource, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpsError(pub String);

impl OpsError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<StoreError> for OpsError {
    fn from(error: StoreError) -> Self {
        Self(describe(&error))
    }
}

/// A store error as an operator needs it: a missing table or an unreachable endpoint named.
pub fn describe(error: &StoreError) -> String {
    match error {
        StoreError::Unavailable(unavailable) => describe_unavailable(unavailable),
        other => other.to_string(),
    }
}

/// A queue error as an operator needs it.
pub fn describe_queue(error: &eventfold::aws::error::QueueError) -> String {
    describe_unavailable(&error.0)
}

fn describe_unavailable(unavailable: &Unavailable) -> String {
    let chain = error_chain(unavailable.source.as_ref());
    let missing = [
        "ResourceNotFoundException",
        "ValidationError",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    ];
    match unavailable.code.as_deref() {
        Some(code) if missing.contains(&code) => format!(
            "{} does not exist: is the stack deployed, and are --stack / --prefix right? ({})",
            unavailable.resource,
            first_line(&chain)
        ),
        Some(code) => format!(
            "{} on {} failed ({code}): {}",
            unavailable.operation,
            unavailable.resource,
            first_line(&chain)
        ),
        None => {
            let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into());
            format!(
                "cannot reach {endpoint} ({} on {}): {}",
                unavailable.operation,
                unavailable.resource,
                first_line(&chain)
            )
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Which environment to operate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// A deployed CloudFormation stack, by name.
    Stack(String),
    /// A local environment: the template's logical ids under this prefix.
    Prefix(String),
}

/// The tables and queues of one environment, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    /// What the operator selected, for messages ("stack prod", "local prefix eventfold").
    pub label: String,
    /// SDK clients, built once.
    pub clients: Clients,
    /// The events table's store (no commands table: operators never append commands).
    pub store: Arc<DynamoStore>,
    /// Table names by logical id.
    pub tables: BTreeMap<String, String>,
    /// Queue URLs by logical id.
    pub queues: BTreeMap<String, String>,
}

/// The template's tables and queues, with the stack output that names each.
const TABLES: [&str; 4] = [
    "EventsTable",
    "CommandsTable",
    "SnapshotsTable",
    "AccountsTable",
];
const QUEUES: [&str; 6] = [
    "EventsQueue",
    "SnapshotQueue",
    "EventsDeadLetterQueue",
    "ProjectorDeadLetterQueue",
    "PublisherDeadLetterQueue",
    "SnapshotDeadLetterQueue",
];

impl Target {
    /// Resolves names: from the stack's outputs, or from the template under a prefix.
    pub async fn resolve(selection: &Selection) -> Result<Self, OpsError> {
        let sdk = eventfold::aws::load_sdk_config().await;
        let clients = Clients::new(&sdk);
        match selection {
            Selection::Stack(name) => Self::from_stack(clients, name, &sdk).await,
            Selection::Prefix(prefix) => Self::from_prefix(clients, prefix).await,
        }
    }

    async fn from_stack(
        clients: Clients,
        name: &str,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, OpsError> {
        let cloudformation = aws_sdk_cloudformation::Client::new(sdk);
        let described = cloudformation
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                OpsError(describe(&eventfold::aws::error::from_sdk(
                    "DescribeStacks",
                    &format!("stack {name}"),
                    e,
                )))
            })?;
        let stack = described
            .stacks()
            .first()
            .ok_or_else(|| OpsError(format!("no stack {name}")))?;
        let outputs: BTreeMap<&str, &str> = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
            .collect();
        let mut tables = BTreeMap::new();
        for logical in TABLES {
            if let Some(value) = outputs.get(format!("{logical}Name").as_str()) {
                tables.insert(logical.to_owned(), (*value).to_owned());
            }
        }
        let mut queues = BTreeMap::new();
        for logical in QUEUES {
            if let Some(value) = outputs.get(format!("{logical}Url").as_str()) {
                queues.insert(logical.to_owned(), (*value).to_owned());
            }
        }
        Self::new(format!("stack {name}"), clients, tables, queues)
    }

    async fn from_prefix(clients: Clients, prefix: &str) -> Result<Self, OpsError> {
        let template = Template::load_default().map_err(|e| OpsError(e.to_string()))?;
        let tables = TABLES
            .iter()
            .map(|logical| ((*logical).to_owned(), physical_name(prefix, logical, false)))
            .collect();
        let mut queues = BTreeMap::new();
        for logical in QUEUES {
            let fifo = template.queue(logical).is_some_and(|q| q.fifo);
            let name = physical_name(prefix, logical, fifo);
            // A queue that does not exist is simply not part of this environment.
            if let Ok(found) = clients.sqs.get_queue_url().queue_name(&name).send().await
                && let Some(url) = found.queue_url
            {
                queues.insert(logical.to_owned(), url);
            }
        }
        Self::new(format!("local prefix {prefix}"), clients, tables, queues)
    }

    /// The environment a test provisioned.
    pub fn for_resources(resources: &Resources, clients: &Clients) -> Result<Self, OpsError> {
        let queues = resources
            .queues
            .iter()
            .map(|(logical, queue)| (logical.clone(), queue.url.clone()))
            .collect();
        Self::new(
            format!("local prefix {}", resources.prefix),
            clients.clone(),
            resources.tables.clone(),
            queues,
        )
    }

    fn new(
        label: String,
        clients: Clients,
        tables: BTreeMap<String, String>,
        queues: BTreeMap<String, String>,
    ) -> Result<Self, OpsError> {
        let events = tables
            .get("EventsTable")
            .ok_or_else(|| OpsError(format!("{label} names no events table")))?;
        let store = Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            events,
            eventfold::store::StoreSettings::default(),
        ));
        Ok(Self {
            label,
            clients,
            store,
            tables,
            queues,
        })
    }

    /// A table's name.
    pub fn table(&self, logical_id: &str) -> Result<&str, OpsError> {
        self.tables
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| OpsError(format!("{} has no {logical_id}", self.label)))
    }

    /// A queue's URL.
    pub fn queue(&self, logical_id: &str) -> Result<&str, OpsError> {
        self.queues
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| OpsError(format!("{} has no {logical_id}", self.label)))
    }

    /// The projections of this service, by name.
    pub fn projectors(&self) -> Result<BTreeMap<String, Arc<dyn StreamProjector>>, OpsError> {
        let accounts = bank::accounts_projector(
            Arc::new(eventfold::aws::DynamoReadModel::new(
                self.clients.dynamodb.clone(),
                self.table("AccountsTable")?,
                bank::names::accounts::ACCOUNT_ID,
            )),
            self.store.clone(),
        );
        let accounts: Arc<dyn StreamProjector> = Arc::new(accounts);
        Ok(BTreeMap::from([(accounts.name().to_owned(), accounts)]))
    }
}

/// Asks before a destructive step, unless `--yes` said so; refuses when nobody can answer.
pub fn confirm(what: &str, yes: bool) -> Result<(), OpsError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(OpsError(format!(
            "{what}: pass --yes to confirm (no terminal to ask on)"
        )));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{what}. Continue? [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| OpsError(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(OpsError("not confirmed; nothing done".into()))
    }
}

/// Writes a line to standard output (the command's result, as opposed to progress on stderr).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
