//! Typed configuration, read from the environment once at start.
//!
//! The library's own variables ([`crate::names::env`]) become typed fields; an application's
//! (its read-model tables, say) are read from the same source with [`Config::var`], so that a
//! function's whole environment comes from one place and is checked once.

use std::collections::BTreeMap;

use super::DynamoStore;
use crate::names::env;
use crate::store::{SnapshotPolicy, StoreSettings};

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// Table and queue names plus store settings; every function reads the subset it needs.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `EVENTS_TABLE`.
    pub events_table: String,
    /// `COMMANDS_TABLE`.
    pub commands_table: String,
    /// `SNAPSHOTS_TABLE`.
    pub snapshots_table: String,
    /// `EVENTS_QUEUE_URL`.
    pub events_queue_url: String,
    /// `SNAPSHOT_QUEUE_URL`.
    pub snapshot_queue_url: String,
    /// Limits, snapshot interval and command retention.
    pub store: StoreSettings,
    /// `FEED_PARTITIONS` (1 to 64; default 4).
    pub feed_partitions: u32,
    /// Every variable read, the application's included.
    vars: BTreeMap<String, String>,
}

fn parsed<T: std::str::FromStr>(
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    vars.get(name)
        .map(|text| {
            text.parse()
                .map_err(|_| ConfigError(format!("{name}={text:?} is not a valid number")))
        })
        .transpose()
}

impl Config {
    /// Reads the process environment (variables that are not UTF-8 count as absent).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// Reads the given variables (the process environment, or a resolved template's).
    /// Empty values count as absent.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> =
            vars.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let mut store = StoreSettings::default();
        if let Some(every) = parsed::<u64>(&vars, env::SNAPSHOT_EVERY)? {
            store.snapshot_policy = SnapshotPolicy {
                default_every: every,
                ..SnapshotPolicy::default()
            };
        }
        if let Some(bytes) = parsed::<usize>(&vars, env::MAX_EVENT_BYTES)? {
            store.max_event_bytes = bytes;
        }
        if let Some(days) = parsed::<i64>(&vars, env::COMMAND_TTL_DAYS)? {
            store.command_ttl = chrono::Duration::days(days);
        }
        let feed_partitions =
            parsed::<u32>(&vars, env::FEED_PARTITIONS)?.unwrap_or(crate::feed::DEFAULT_PARTITIONS);
        if !(1..=crate::feed::MAX_PARTITIONS).contains(&feed_partitions) {
            return Err(ConfigError(format!(
                "{}={feed_partitions} is not from 1 to {}",
                env::FEED_PARTITIONS,
                crate::feed::MAX_PARTITIONS
            )));
        }
        let text = |name: &str| vars.get(name).cloned().unwrap_or_default();
        Ok(Self {
            events_table: text(env::EVENTS_TABLE),
            commands_table: text(env::COMMANDS_TABLE),
            snapshots_table: text(env::SNAPSHOTS_TABLE),
            events_queue_url: text(env::EVENTS_QUEUE_URL),
            snapshot_queue_url: text(env::SNAPSHOT_QUEUE_URL),
            store,
            feed_partitions,
            vars,
        })
    }

    /// The same configuration, its stores reading old event schemas through `upcasters` (the
    /// application's, which the environment cannot say).
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: crate::upcast::Upcasters) -> Self {
        self.store.upcasters = std::sync::Arc::new(upcasters);
        self
    }

    /// A variable's value (library or application), if set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Fails naming the first of the `required` variables that is unset.
    pub fn require(&self, required: &[&str]) -> Result<(), ConfigError> {
        match required.iter().find(|name| self.var(name).is_none()) {
            Some(name) => Err(ConfigError(format!("{name} must be set"))),
            None => Ok(()),
        }
    }

    /// What every Lambda does at start: read the environment, insist on `required`, and load
    /// the SDK configuration once.
    pub async fn load_for_lambda(
        required: &[&str],
    ) -> Result<(Self, aws_config::SdkConfig), ConfigError> {
        let config = Self::from_env()?;
        config.require(required)?;
        Ok((config, super::load_sdk_config().await))
    }

    /// The event store over the configured events table, without a commands table: what the
    /// functions that read events or append without command ids use. A command API adds its
    /// commands table with [`DynamoStore::with_commands_table`].
    pub fn event_store(&self, client: aws_sdk_dynamodb::Client) -> DynamoStore {
        DynamoStore::new(client, &self.events_table, self.store.clone())
    }

    /// Subjects' data keys in the table `SUBJECT_KEYS_TABLE` names, wrapped by the KMS key
    /// `SUBJECT_KEY_ID` names (`None` unless both are set).
    pub fn subject_keys(&self, sdk: &aws_config::SdkConfig) -> Option<super::KmsSubjectKeys> {
        let table = self.var(env::SUBJECT_KEYS_TABLE)?;
        let key = self.var(env::SUBJECT_KEY_ID)?;
        Some(super::KmsSubjectKeys::new(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
            aws_sdk_kms::Client::new(sdk),
            key,
        ))
    }

    /// The key that signs snapshots, the KMS HMAC key `SNAPSHOT_KEY_ID` names (`None` if
    /// unset).
    pub fn snapshot_key(&self, sdk: &aws_config::SdkConfig) -> Option<super::KmsMac> {
        self.var(env::SNAPSHOT_KEY_ID)
            .map(|key| super::KmsMac::new(aws_sdk_kms::Client::new(sdk), key))
    }

    /// The feed in the table `FEED_TABLE` names, of `FEED_PARTITIONS` partitions (`None` if
    /// the table is unset).
    pub fn feed(&self, client: aws_sdk_dynamodb::Client) -> Option<super::DynamoFeed> {
        self.var(env::FEED_TABLE)
            .map(|table| super::DynamoFeed::new(client, table, self.feed_partitions))
    }

    /// The keyed hash of claims, by the KMS key `CLAIM_KEY_ID` names (`None` if unset).
    pub fn claim_key(&self, sdk: &aws_config::SdkConfig) -> Option<super::KmsMac> {
        self.var(env::CLAIM_KEY_ID)
            .map(|key| super::KmsMac::new(aws_sdk_kms::Client::new(sdk), key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn library_and_application_variables_are_read_once() {
        let config = Config::from_vars(vars(&[
            (env::EVENTS_TABLE, "events"),
            (env::SNAPSHOT_EVERY, "25"),
            ("ORDERS_TABLE", "orders"),
            ("EMPTY", ""),
        ]))
        .expect("valid");
        assert_eq!(config.events_table, "events");
        assert_eq!(config.store.snapshot_policy.every("Order"), 25);
        assert_eq!(config.var("ORDERS_TABLE"), Some("orders"));
        assert!(config.require(&[env::EVENTS_TABLE, "ORDERS_TABLE"]).is_ok());
        let missing = config.require(&["EMPTY"]).expect_err("empty is unset");
        assert!(missing.to_string().contains("EMPTY must be set"));
    }

    #[test]
    fn malformed_numbers_are_named() {
        let error = Config::from_vars(vars(&[(env::SNAPSHOT_EVERY, "ten")])).expect_err("bad");
        assert!(error.to_string().contains("SNAPSHOT_EVERY"));
        for partitions in ["0", "65", "four"] {
            let error = Config::from_vars(vars(&[(env::FEED_PARTITIONS, partitions)]))
                .expect_err(partitions);
            assert!(error.to_string().contains("FEED_PARTITIONS"), "{error}");
        }
        let config = Config::from_vars(vars(&[(env::FEED_PARTITIONS, "8")])).expect("valid");
        assert_eq!(config.feed_partitions, 8);
    }
}
