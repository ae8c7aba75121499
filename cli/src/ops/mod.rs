//! Operator commands for any service, against a deployed stack (names from its resources) or
//! a local environment (the template's logical ids under a prefix), through the SDK's usual
//! configuration: reading and tailing streams, verifying chains, rebuilding projections,
//! backfilling snapshots, dead-letter queues, and statistics. What is the service's own work
//! (projecting, snapshotting, publishing) is done by invoking the service's own functions
//! with records from the events table; the CLI holds no domain code.

pub mod anchor;
pub mod dlq;
pub mod feed;
pub mod forget;
pub mod invoke;
pub mod progress;
pub mod rebuild;
pub mod redrive;
pub mod service;
pub mod snapshots;
pub mod stats;
pub mod streams;
pub mod timers;
pub mod verify;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use eventfold::aws::DynamoStore;
use eventfold::error::{StoreError, Unavailable, error_chain};

use crate::identity::TokenIssuer;
use crate::local::provision::{Clients, Resources, discover};
use crate::local::template::Template;
use invoke::Invoker;
use service::Service;

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

/// The service's template and, for a local environment, where its function binaries are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The SAM template.
    pub template: PathBuf,
    /// The folder of the function binaries (local environments only); by default the
    /// workspace's `target/debug` beside the template.
    pub functions: Option<PathBuf>,
}

impl Source {
    /// The template at `template`, its binaries where cargo builds them.
    pub fn new(template: impl Into<PathBuf>) -> Self {
        Self {
            template: template.into(),
            functions: None,
        }
    }

    pub fn binaries(&self) -> PathBuf {
        self.functions
            .clone()
            .unwrap_or_else(|| crate::local::binaries_beside(&self.template, "debug"))
    }
}

/// The tables, queues and functions of one environment, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    /// What the operator selected, for messages ("stack prod", "local prefix eventfold").
    pub label: String,
    /// SDK clients, built once.
    pub clients: Clients,
    /// The events table's store (no commands table: operators never append commands).
    pub store: Arc<DynamoStore>,
    /// The service's template.
    pub template: Arc<Template>,
    /// What the template says about the service.
    pub service: Service,
    /// Table names by logical id.
    pub tables: BTreeMap<String, String>,
    /// Queue URLs by logical id.
    pub queues: BTreeMap<String, String>,
    /// The service's functions.
    pub invoker: Arc<Invoker>,
    /// Where its users' tokens come from, if its API takes JWTs of its own user pool.
    pub identity: Option<TokenIssuer>,
    /// Where its history is anchored, if its template has an Object Lock bucket and a signing
    /// key.
    pub anchor: Option<anchor::AnchorStore>,
}

impl Target {
    /// Resolves names: from the stack's resources, or from the template under a prefix.
    pub async fn resolve(selection: &Selection, source: &Source) -> Result<Self, OpsError> {
        let template = Arc::new(Template::load(&source.template).map_err(|e| {
            OpsError(format!(
                "{e} (the service's template; --template names another)"
            ))
        })?);
        let sdk = eventfold::aws::load_sdk_config().await;
        let clients = Clients::new(&sdk);
        match selection {
            Selection::Stack(name) => Self::from_stack(template, clients, name, &sdk).await,
            Selection::Prefix(prefix) => {
                let resources = discover(&template, &clients, prefix)
                    .await
                    .map_err(|e| OpsError(e.to_string()))?;
                let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
                Self::for_resources(template, &resources, &clients, source.binaries(), &endpoint)
            }
        }
    }

    async fn from_stack(
        template: Arc<Template>,
        clients: Clients,
        name: &str,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, OpsError> {
        let cloudformation = aws_sdk_cloudformation::Client::new(sdk);
        let mut resources = Vec::new();
        let mut next = None;
        loop {
            let page = cloudformation
                .list_stack_resources()
                .stack_name(name)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| {
                    OpsError(describe(&eventfold::aws::error::from_sdk(
                        "ListStackResources",
                        &format!("stack {name}"),
                        e,
                    )))
                })?;
            resources.extend(page.stack_resource_summaries().iter().filter_map(|r| {
                Some((
                    r.resource_type()?.to_owned(),
                    r.logical_resource_id()?.to_owned(),
                    r.physical_resource_id()?.to_owned(),
                ))
            }));
            next = page.next_token;
            if next.is_none() {
                break;
            }
        }
        let of_type = |kind: &str| -> BTreeMap<String, String> {
            resources
                .iter()
                .filter(|(t, _, _)| t == kind)
                .map(|(_, logical, physical)| (logical.clone(), physical.clone()))
                .collect()
        };
        let invoker = Invoker::Deployed {
            client: crate::sign::SignedClient::new(sdk),
            names: of_type("AWS::Lambda::Function"),
        };
        let identity = {
            let mut cognito = of_type("AWS::Cognito::UserPool");
            cognito.extend(of_type("AWS::Cognito::UserPoolClient"));
            TokenIssuer::of(&template, |logical| cognito.get(logical).cloned()).ok()
        };
        let mut target = Self::new(
            format!("stack {name}"),
            template,
            clients,
            of_type("AWS::DynamoDB::Table"),
            of_type("AWS::SQS::Queue"),
            invoker,
        )?;
        target.identity = identity;
        let buckets = of_type("AWS::S3::Bucket");
        let keys = of_type("AWS::KMS::Key");
        target.anchor = anchor_of(&target.template, &target.clients, |logical| {
            buckets.get(logical).or_else(|| keys.get(logical)).cloned()
        });
        Ok(target)
    }

    /// A local environment: `resources` as provisioned or discovered, the functions' binaries
    /// in `binaries`, run against the emulator at `endpoint` (empty: the caller's own AWS
    /// configuration).
    pub fn for_resources(
        template: Arc<Template>,
        resources: &Resources,
        clients: &Clients,
        binaries: PathBuf,
        endpoint: &str,
    ) -> Result<Self, OpsError> {
        let queues = resources
            .queues
            .iter()
            .map(|(logical, queue)| (logical.clone(), queue.url.clone()))
            .collect();
        let invoker = Invoker::local(
            template.clone(),
            resources.clone(),
            endpoint.to_owned(),
            binaries,
        );
        let identity = TokenIssuer::for_resources(&template, resources).ok();
        let mut target = Self::new(
            format!("local prefix {}", resources.prefix),
            template,
            clients.clone(),
            resources.tables.clone(),
            queues,
            invoker,
        )?;
        target.identity = identity;
        target.anchor = anchor_of(&target.template, &target.clients, |logical| {
            resources
                .buckets
                .get(logical)
                .cloned()
                .or_else(|| resources.kms_keys.get(logical).map(|k| k.id.clone()))
        });
        Ok(target)
    }

    fn new(
        label: String,
        template: Arc<Template>,
        clients: Clients,
        tables: BTreeMap<String, String>,
        queues: BTreeMap<String, String>,
        invoker: Invoker,
    ) -> Result<Self, OpsError> {
        let service = Service::of(&template)?;
        let events = tables
            .get(&service.events_table)
            .ok_or_else(|| OpsError(format!("{label} has no {}", service.events_table)))?;
        let store = Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            events,
            eventfold::store::StoreSettings::default(),
        ));
        Ok(Self {
            label,
            clients,
            store,
            template,
            service,
            tables,
            queues,
            invoker: Arc::new(invoker),
            identity: None,
            anchor: None,
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
}

/// Where `template`'s history is anchored: its one Object Lock bucket and its one signing key,
/// named by `physical` (logical id to bucket name or key id).
fn anchor_of(
    template: &Template,
    clients: &Clients,
    physical: impl Fn(&str) -> Option<String>,
) -> Option<anchor::AnchorStore> {
    let bucket = template.buckets.iter().find(|b| b.object_lock)?;
    let key = template
        .kms_keys
        .iter()
        .find(|k| k.key_usage == "SIGN_VERIFY")?;
    Some(anchor::AnchorStore::new(
        clients.signed.clone(),
        physical(&bucket.logical_id)?,
        physical(&key.logical_id)?,
    ))
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
