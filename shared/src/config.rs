//! Typed configuration, read from the environment once at start.

use std::env::VarError;

use crate::names::env;
use crate::store::{SnapshotPolicy, StoreSettings};

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

fn optional(name: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(ConfigError(format!("{name} is not valid UTF-8"))),
    }
}

fn parsed<T: std::str::FromStr>(name: &str) -> Result<Option<T>, ConfigError> {
    optional(name)?
        .map(|text| {
            text.parse()
                .map_err(|_| ConfigError(format!("{name}={text:?} is not a valid number")))
        })
        .transpose()
}

impl Config {
    /// Reads every variable; names that a function does not use may be absent.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut store = StoreSettings::default();
        if let Some(every) = parsed::<u64>(env::SNAPSHOT_EVERY)? {
            store.snapshot_policy = SnapshotPolicy {
                default_every: every,
                ..SnapshotPolicy::default()
            };
        }
        if let Some(bytes) = parsed::<usize>(env::MAX_EVENT_BYTES)? {
            store.max_event_bytes = bytes;
        }
        if let Some(days) = parsed::<i64>(env::COMMAND_TTL_DAYS)? {
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

    /// Fails naming the first of `required` that is empty.
    pub fn require(&self, required: &[(&str, &str)]) -> Result<(), ConfigError> {
        match required.iter().find(|(_, value)| value.is_empty()) {
            Some((name, _)) => Err(ConfigError(format!("{name} must be set"))),
            None => Ok(()),
        }
    }
}
