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

use std::path::Path;

use aws_credential_types::Credentials;

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
        let template = Template::load(template).map_err(|e| ProvisionError(e.to_string()))?;
        let sdk = emulator_sdk_config(endpoint).await;
        let clients = Clients::new(&sdk);
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let resources = provision(&template, &clients, &prefix).await?;
        let functions = Functions::from_template(&template, &resources, endpoint, binaries)?;
        functions.warm().await?;
        let runner = LocalRunner::start(
            &template,
            &resources,
            &clients,
            functions,
            RunnerOptions::default(),
        )
        .await?;
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

    /// Stops the gateway, the mappings and every function process.
    pub async fn stop(self) {
        self.runner.stop().await;
    }
}
