//! The stack as CloudFormation deploys it on the emulator (`scripts/deploy-local.sh`), once per
//! test run: the real template, the real function binaries run by the emulator, its API
//! Gateway (SigV4) and its event source mappings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use eventfold_cli::local::provision::{Clients, QueueRef, Resources};
use eventfold_cli::local::service::DeployedService;

use crate::{Api, Caller, TestEnv, Tokens, emulator_endpoint, sdk_config};

/// Events between snapshots on the test stack: low, so a test crosses it quickly.
pub const SNAPSHOT_EVERY: u64 = 10;

/// A deployed stack: its invoke URL and outputs.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// `http://127.0.0.1:<port>/_aws/execute-api/<id>/$default`.
    pub api: String,
    /// The stack's outputs, by key.
    pub outputs: BTreeMap<String, String>,
    /// How long the deployment took, packaging included.
    pub took: std::time::Duration,
    /// The stack as deployed.
    pub service: DeployedService,
}

/// The test run's stack, deployed on first use (every later caller waits for it).
pub fn stack() -> &'static Deployed {
    static STACK: OnceLock<Result<Deployed, String>> = OnceLock::new();
    match STACK.get_or_init(deploy) {
        Ok(deployed) => deployed,
        Err(error) => panic!("the stack did not deploy: {error}"),
    }
}

fn deploy() -> Result<Deployed, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = Instant::now();
    let service = DeployedService::deploy_with(
        &root,
        &emulator_endpoint(),
        &[
            "--parameter".to_owned(),
            format!("SnapshotEvery={SNAPSHOT_EVERY}"),
        ],
    )
    .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    eprintln!("deployed stack {} in {took:?}", service.stack);
    Ok(Deployed {
        api: service.api.clone(),
        outputs: service.outputs.clone(),
        took,
        service,
    })
}

/// The deployed API, called by a new registered customer of the stack's user pool (tokens
/// checked by the stack's JWT authorizer).
pub async fn api() -> Api {
    anonymous().await.customer().await
}

/// The deployed API without credentials, minting tokens of the stack's user pool.
pub async fn anonymous() -> Api {
    let deployed = stack();
    let sdk = sdk_config().await;
    Api::new(deployed.api.clone(), Caller::Anonymous).with_tokens(Tokens {
        issuer: deployed
            .service
            .token_issuer()
            .expect("the stack's user pool"),
        cognito: eventfold_cli::identity::cognito::Cognito::new(&sdk),
    })
}
/// The deployed stack's resources as a test environment (direct clients to the emulator),
/// for reading its tables and queues.
pub async fn env() -> TestEnv {
    let deployed = stack();
    let sdk = sdk_config().await;
    let clients = Clients::new(&sdk);
    let output = |key: &str| deployed.outputs.get(key).cloned().unwrap_or_default();
    let mut resources = Resources {
        prefix: output("StackName"),
        ..Resources::default()
    };
    for logical in [
        "EventsTable",
        "CommandsTable",
        "SnapshotsTable",
        "AccountsTable",
        "FeedTable",
    ] {
        resources
            .tables
            .insert(logical.to_owned(), output(&format!("{logical}Name")));
    }
    for logical in [
        "EventsQueue",
        "SnapshotQueue",
        "ProjectorDeadLetterQueue",
        "PublisherDeadLetterQueue",
        "SnapshotDeadLetterQueue",
    ] {
        let url = output(&format!("{logical}Url"));
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        resources.queues.insert(
            logical.to_owned(),
            QueueRef {
                name,
                url,
                arn: String::new(),
            },
        );
    }
    TestEnv {
        sdk,
        clients,
        resources,
    }
}
