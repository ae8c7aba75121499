//! A service's whole local environment in one call, for its own tests: the template's
//! resources under a fresh prefix on the emulator, each function's binary started, the
//! gateway and the event source mappings running, exactly as `eventfold local` runs them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), eventfold_cli::local::provision::ProvisionError> {
//! use eventfold_cli::local::service::{LocalService, emulator_endpoint};
//! let service = LocalService::start(
//!     "../infra/template.yaml".as_ref(),
//!     "../target/debug".as_ref(),
//!     &emulator_endpoint(),
//! )
//! .await?;
//! let url = service.url(); // POST and GET here
//! service.stop().await;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use aws_credential_types::Credentials;

use crate::identity::TokenIssuer;
use crate::local::functions::Functions;
use crate::local::provision::{Clients, ProvisionError, Resources, provision};
use crate::local::runner::{LocalRunner, RunnerOptions};
use crate::local::template::Template;

/// The emulator a test runs against: `EVENTFOLD_EMULATOR_ENDPOINT` (what `make test` sets
/// through `scripts/with-emulator.sh`), else `AWS_ENDPOINT_URL`.
///
/// # Panics
/// When neither is set: the test needs the emulator, and says how to get one.
pub fn emulator_endpoint() -> String {
    std::env::var("EVENTFOLD_EMULATOR_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| {
            panic!(
                "this test runs on the local AWS emulator: run it through `make test` (or \
                 scripts/with-emulator.sh cargo test), or set EVENTFOLD_EMULATOR_ENDPOINT"
            )
        })
}

/// The SDK configuration for the emulator at `endpoint` (any credentials, `us-east-1`).
pub async fn emulator_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    eventfold::aws::load_sdk_config_with(|loader| {
        loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
    })
    .await
}

/// A running local environment of one service.
#[derive(Debug)]
pub struct LocalService {
    /// The gateway and the event source mappings.
    pub runner: LocalRunner,
    /// The tables and queues created for it.
    pub resources: Resources,
    /// Clients of the emulator, for a test's own reads.
    pub clients: Clients,
    /// The template it runs.
    pub template: Template,
}

impl LocalService {
    /// Creates the template's resources under a new prefix on the emulator at `endpoint`,
    /// starts every function from its binary in `binaries`, and serves the API on a free port
    /// of 127.0.0.1.
    pub async fn start(
        template: &Path,
        binaries: &Path,
        endpoint: &str,
    ) -> Result<Self, ProvisionError> {
        Self::start_with(template, binaries, endpoint, &BTreeMap::new()).await
    }

    /// [`Self::start`] with some of the template's parameters set.
    pub async fn start_with(
        template: &Path,
        binaries: &Path,
        endpoint: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, ProvisionError> {
        let template =
            Template::load_with(template, parameters).map_err(|e| ProvisionError(e.to_string()))?;
        let sdk = emulator_sdk_config(endpoint).await;
        let clients = Clients::new(&sdk);
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let resources = provision(&template, &clients, &prefix).await?;
        let runner = run(&template, &resources, &clients, binaries, endpoint).await?;
        Ok(Self {
            runner,
            resources,
            clients,
            template,
        })
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        self.runner.url()
    }

    /// An access token of the service's user pool for `user` (created if new) holding
    /// exactly `scopes`, as `eventfold token` mints it.
    pub async fn token(&self, user: &str, scopes: &[&str]) -> Result<String, String> {
        let issuer = TokenIssuer::for_resources(&self.template, &self.resources)?;
        issuer
            .token(&self.clients.cognito, user, &owned(scopes))
            .await
    }

    /// Stops the gateway, the mappings and every function process.
    pub async fn stop(self) {
        self.runner.stop().await;
    }

    /// Stops every function and starts them again from `binaries` on the same resources (a
    /// restart of the runner: what is in the tables and queues stays; the API moves to a new
    /// port).
    pub async fn restart(self, binaries: &Path, endpoint: &str) -> Result<Self, ProvisionError> {
        let Self {
            runner,
            resources,
            clients,
            template,
        } = self;
        runner.stop().await;
        let runner = run(&template, &resources, &clients, binaries, endpoint).await?;
        Ok(Self {
            runner,
            resources,
            clients,
            template,
        })
    }
}

/// Every function of `template` started from `binaries` over `resources`, warm, and the runner
/// serving them.
async fn run(
    template: &Template,
    resources: &Resources,
    clients: &Clients,
    binaries: &Path,
    endpoint: &str,
) -> Result<LocalRunner, ProvisionError> {
    let functions = Functions::from_template(template, resources, endpoint, binaries)?;
    functions.warm().await?;
    let options = RunnerOptions {
        endpoint: Some(endpoint.to_owned()),
        ..RunnerOptions::default()
    };
    LocalRunner::start(template, resources, clients, functions, options).await
}

fn owned(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

/// A service's template deployed through CloudFormation on the emulator by its own
/// `scripts/deploy-local.sh` (what `make deploy-local` runs), the emulator running its
/// functions, for the service's tests.
#[derive(Clone, Debug)]
pub struct DeployedService {
    /// The stack's name.
    pub stack: String,
    /// The API's invoke URL (the emulator's path form).
    pub api: String,
    /// The stack's outputs.
    pub outputs: BTreeMap<String, String>,
    /// The emulator it runs on.
    pub endpoint: String,
    /// The template deployed.
    pub template: Template,
}

impl DeployedService {
    /// Deploys the service at `root` as a new stack on the emulator at `endpoint` (blocking:
    /// packaging and the change set take a minute).
    pub fn deploy(root: &Path, endpoint: &str) -> Result<Self, ProvisionError> {
        Self::deploy_with(root, endpoint, &[])
    }

    /// [`Self::deploy`], with arguments for the script (`--parameter Name=Value`).
    pub fn deploy_with(
        root: &Path,
        endpoint: &str,
        args: &[String],
    ) -> Result<Self, ProvisionError> {
        let stack = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let output = std::process::Command::new(root.join("scripts/deploy-local.sh"))
            .args(args)
            .current_dir(root)
            .env("STACK", &stack)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .map_err(|e| ProvisionError(format!("cannot run scripts/deploy-local.sh: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(ProvisionError(format!(
                "deploy-local failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("OUTPUTS: "))
            .ok_or_else(|| ProvisionError(format!("no OUTPUTS line in:\n{stdout}")))?;
        let outputs: BTreeMap<String, String> =
            serde_json::from_str(line).map_err(|e| ProvisionError(format!("{e}: {line}")))?;
        let api = outputs
            .get("Api")
            .cloned()
            .ok_or_else(|| ProvisionError("no Api output".into()))?;
        let template = Template::load(&root.join("infra/template.yaml"))
            .map_err(|e| ProvisionError(e.to_string()))?;
        Ok(Self {
            stack,
            api,
            outputs,
            endpoint: endpoint.to_owned(),
            template,
        })
    }

    /// Where the stack's users' tokens come from: its user pool and app client (the outputs
    /// `UserPoolId` and `ApiClientId`), the groups its template declares.
    pub fn token_issuer(&self) -> Result<TokenIssuer, String> {
        let output = |name: &str| {
            self.outputs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("the stack has no output {name}"))
        };
        Ok(TokenIssuer {
            pool: crate::identity::cognito::UserPool::new(output("UserPoolId")?),
            client_id: output("ApiClientId")?,
            scopes: self
                .template
                .user_pools
                .iter()
                .flat_map(|pool| pool.groups.clone())
                .collect(),
        })
    }

    /// An access token of the stack's user pool for `user` (created if new) holding exactly
    /// `scopes`, as `eventfold token --stack` mints it.
    pub async fn token(&self, user: &str, scopes: &[&str]) -> Result<String, String> {
        let sdk = emulator_sdk_config(&self.endpoint).await;
        let cognito = crate::identity::cognito::Cognito::new(&sdk);
        self.token_issuer()?
            .token(&cognito, user, &owned(scopes))
            .await
    }

    /// The SigV4 headers the API's IAM authorization wants for a request.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        crate::sign::sigv4_headers(
            crate::sign::Signable {
                method,
                url,
                headers: &[],
                body,
            },
            crate::sign::emulator_credentials(),
            "us-east-1",
            "execute-api",
        )
    }
}
