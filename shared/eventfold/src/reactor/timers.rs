//! Durable timers: a reactor asks for a call back at a time, under a key of its own; a newer
//! timer under the same key replaces the older, a cancel removes it. The store keeps them until
//! they have fired; [`MemoryTimers`] keeps them in process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// The longest timer key.
pub const MAX_KEY_LEN: usize = 200;

/// A timer: `reactor`'s call back at `due`, under `key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    /// The reactor it calls back.
    pub reactor: String,
    /// The reactor's name for it (an order's `unpaid/<id>`, say): one timer per key.
    pub key: String,
    /// When it is due.
    #[serde(with = "crate::envelope::timestamp_format")]
    pub due: DateTime<Utc>,
    /// Derived from what scheduled it, so the same trigger delivered again schedules the same
    /// timer, and the commands its firing sends derive their ids from it.
    pub id: String,
    /// What the reactor wants back when it fires.
    pub payload: Value,
}

impl Timer {
    /// Checks the key: 1 to [`MAX_KEY_LEN`] printable ASCII characters.
    pub fn check_key(key: &str) -> Result<(), StoreError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::misuse(format!(
                "a timer key is 1-{MAX_KEY_LEN} printable ASCII characters, got {key:?}"
            )));
        }
        Ok(())
    }
}

/// Where timers wait.
#[async_trait]
pub trait TimerStore: Send + Sync + fmt::Debug {
    /// Schedules `timer`, replacing any timer of its reactor under its key. The same timer
    /// again changes nothing.
    async fn schedule(&self, timer: &Timer) -> Result<(), StoreError>;

    /// Cancels `reactor`'s timer under `key`, if there is one.
    async fn cancel(&self, reactor: &str, key: &str) -> Result<(), StoreError>;

    /// `reactor`'s timers due at `now`, earliest first, at most `limit`; replaced and
    /// cancelled ones are never returned.
    async fn due(
        &self,
        reactor: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError>;

    /// Removes a timer that has fired (unless a newer one replaced it meanwhile).
    async fn fired(&self, timer: &Timer) -> Result<(), StoreError>;

    /// Every timer waiting, of `reactor` or of all reactors, by due time.
    async fn pending(&self, reactor: Option<&str>) -> Result<Vec<Timer>, StoreError>;
}

/// Timers in process, for tests and the workflow test kit.
#[derive(Debug, Default)]
pub struct MemoryTimers {
    /// By reactor and key.
    timers: Mutex<BTreeMap<(String, String), Timer>>,
}

impl MemoryTimers {
    /// No timers.
    pub fn new() -> Self {
        Self::default()
    }

    fn timers(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Timer>> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Timers earliest first (then by reactor and key).
pub(crate) fn by_due(mut timers: Vec<Timer>) -> Vec<Timer> {
    timers.sort_by(|a, b| (a.due, &a.reactor, &a.key).cmp(&(b.due, &b.reactor, &b.key)));
    timers
}

#[async_trait]
impl TimerStore for MemoryTimers {
    async fn schedule(&self, timer: &Timer) -> Result<(), StoreError> {
        Timer::check_key(&timer.key)?;
        let key = (timer.reactor.clone(), timer.key.clone());
        self.timers().insert(key, timer.clone());
        Ok(())
    }

    async fn cancel(&self, reactor: &str, key: &str) -> Result<(), StoreError> {
        self.timers().remove(&(reactor.to_owned(), key.to_owned()));
        Ok(())
    }

    async fn due(
        &self,
        reactor: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Timer>, StoreError> {
        let due = self
            .timers()
            .values()
            .filter(|t| t.reactor == reactor && t.due <= now)
            .cloned()
            .collect();
        Ok(by_due(due).into_iter().take(limit).collect())
    }

    async fn fired(&self, timer: &Timer) -> Result<(), StoreError> {
        let mut timers = self.timers();
        let key = (timer.reactor.clone(), timer.key.clone());
        if timers.get(&key).is_some_and(|t| t.id == timer.id) {
            timers.remove(&key);
        }
        Ok(())
    }

    async fn pending(&self, reactor: Option<&str>) -> Result<Vec<Timer>, StoreError> {
        let pending = self
            .timers()
            .values()
            .filter(|t| reactor.is_none_or(|r| t.reactor == r))
            .cloned()
            .collect();
        Ok(by_due(pending))
    }
}
