//! Upcasting: old event schemas are rewritten to the newest on every read, so the domain only
//! ever sees one shape per event type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;

/// Rewrites a payload from schema version n to n + 1.
pub type UpcastFn = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// The upcasters known to a store, keyed by (event type, schema version they read).
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    /// No upcasters: events are read as stored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step that turns `event_type` at `from_schema` into `from_schema + 1`.
    #[must_use]
    pub fn register(
        mut self,
        event_type: &str,
        from_schema: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_schema), Arc::new(step));
        self
    }

    /// Applies every registered step in order until none matches.
    pub fn upcast(&self, mut event: RecordedEvent) -> Result<RecordedEvent, StoreError> {
        while let Some(step) = self
            .steps
            .get(&(event.event_type.clone(), event.schema_version))
        {
            let payload = std::mem::take(&mut event.payload);
            event.payload = step(payload).map_err(|reason| {
                StoreError::corrupt(format!(
                    "upcasting {} v{} at {} version {} failed: {reason}",
                    event.event_type, event.schema_version, event.stream_id, event.version
                ))
            })?;
            event.schema_version += 1;
        }
        Ok(event)
    }
}
