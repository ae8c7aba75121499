//! Typed configuration, read from the environment once at start.

use crate::names::env;
use crate::store::{DynamoStore, SnapshotPolicy, StoreSettings};

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// Table and queue names plus store settings; every function reads the subset it needs.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub events_table: String,
    pub commands_table: String,
    pub snapshots_table: String,
    pub accounts_table: String,
    pub events_queue_url: String,
    pub snapshot_queue_url: String,
    pub store: StoreSettings,
}

fn parsed<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    lookup(name)
        .map(|text| {
            text.parse()
                .map_err(|_| ConfigError(format!("{name}={text:?} is not a valid number")))
        })
        .transpose()
}

impl Config {
    /// Reads the process environment; names that a function does not use may be absent.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A value that is not UTF-8 counts as absent; `require` then names it.
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (the process environment, or a resolved template).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let optional = |name: &str| Ok::<_, ConfigError>(lookup(name).filter(|v| !v.is_empty()));
        let mut store = StoreSettings::default();
        if let Some(every) = parsed::<u64>(&lookup, env::SNAPSHOT_EVERY)? {
            store.snapshot_policy = SnapshotPolicy {
                default_every: every,
                ..SnapshotPolicy::default()
            };
        }
        if let Some(bytes) = parsed::<usize>(&lookup, env::MAX_EVENT_BYTES)? {
            store.max_event_bytes = bytes;
        }
        if let Some(days) = parsed::<i64>(&lookup, env::COMMAND_TTL_DAYS)? {
            store.command_ttl = chrono::Duration::days(days);
        }
        Ok(Self {
            events_table: optional(env::EVENTS_TABLE)?.unwrap_or_default(),
            commands_table: optional(env::COMMANDS_TABLE)?.unwrap_or_default(),
            snapshots_table: optional(env::SNAPSHOTS_TABLE)?.unwrap_or_default(),
            accounts_table: optional(env::ACCOUNTS_TABLE)?.unwrap_or_default(),
            events_queue_url: optional(env::EVENTS_QUEUE_URL)?.unwrap_or_default(),
            snapshot_queue_url: optional(env::SNAPSHOT_QUEUE_URL)?.unwrap_or_default(),
            store,
        })
    }

    /// The value read for one of the variables in [`crate::names::env`].
    pub fn value_of(&self, name: &str) -> Option<&str> {
        Some(match name {
            env::EVENTS_TABLE => &self.events_table,
            env::COMMANDS_TABLE => &self.commands_table,
            env::SNAPSHOTS_TABLE => &self.snapshots_table,
            env::ACCOUNTS_TABLE => &self.accounts_table,
            env::EVENTS_QUEUE_URL => &self.events_queue_url,
            env::SNAPSHOT_QUEUE_URL => &self.snapshot_queue_url,
            _ => return None,
        })
    }

    /// Fails naming the first of the `required` variables that is unset.
    pub fn require(&self, required: &[&str]) -> Result<(), ConfigError> {
        match required
            .iter()
            .find(|name| self.value_of(name).is_none_or(str::is_empty))
        {
            Some(name) => Err(ConfigError(format!("{name} must be set"))),
            None => Ok(()),
        }
    }
}

impl Config {
    /// What every Lambda does at start: read the environment, insist on `required`, and load
    /// the SDK configuration once.
    pub async fn load_for_lambda(
        required: &[&str],
    ) -> Result<(Self, aws_config::SdkConfig), ConfigError> {
        let config = Self::from_env()?;
        config.require(required)?;
        Ok((config, crate::aws::load_sdk_config().await))
    }

    /// The event store over the configured events table, without a commands table: what the
    /// functions that read events or append without command ids use. The command API adds
    /// its commands table with [`DynamoStore::with_commands_table`].
    pub fn event_store(&self, client: aws_sdk_dynamodb::Client) -> DynamoStore {
        DynamoStore::new(client, &self.events_table, self.store.clone())
    }
}
