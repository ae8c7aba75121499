//! Test support: the emulator, per-test resources from the template, and the event store
//! conformance suite that runs against both stores.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod conformance;
mod emulator;

use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::config::Credentials;
use eventfold::snapshot::DynamoSnapshots;
use eventfold::store::{DynamoStore, StoreSettings};
use eventfold_cli::provision::{Clients, Resources, provision};
use eventfold_cli::template::Template;

pub use emulator::emulator_endpoint;

/// The repository's template, parsed once.
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| Template::load_default().expect("infra/template.yaml parses"))
}

/// SDK configuration pointing at the emulator, with the production client settings.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    eventfold::aws::load_sdk_config_with(|loader| {
        loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
    })
    .await
}

/// A fresh, uniquely named copy of every table and queue in the template.
#[derive(Debug)]
pub struct TestEnv {
    pub sdk: aws_config::SdkConfig,
    pub clients: Clients,
    pub resources: Resources,
}

impl TestEnv {
    /// Creates the resources; tests running in parallel never share them.
    pub async fn new() -> Self {
        let sdk = sdk_config().await;
        let clients = Clients::new(&sdk);
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let resources = provision(template(), &clients, &prefix)
            .await
            .expect("resources from the template");
        Self {
            sdk,
            clients,
            resources,
        }
    }

    /// The events table's name.
    pub fn events_table(&self) -> &str {
        self.resources.table("EventsTable")
    }

    /// A DynamoDB event store over this environment's tables.
    pub fn store(&self, settings: StoreSettings) -> Arc<DynamoStore> {
        Arc::new(DynamoStore::new(
            self.clients.dynamodb.clone(),
            self.resources.table("EventsTable"),
            self.resources.table("CommandsTable"),
            settings,
        ))
    }

    /// The snapshot store over this environment's table.
    pub fn snapshots(&self) -> Arc<DynamoSnapshots> {
        Arc::new(DynamoSnapshots::new(
            self.clients.dynamodb.clone(),
            self.resources.table("SnapshotsTable"),
        ))
    }
}
