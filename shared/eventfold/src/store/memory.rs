//! An in-memory event store with the same semantics as DynamoDB, for fast tests.
//!
//! It keeps encoded items, not structs, so it exercises the same codec, limits and integrity
//! chain as the DynamoDB store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::plan;
use super::{
    AppendRequest, AppendResult, CommandRecord, EventStore, ExpectedVersion, ItemPage, ReadRange,
    StoreSettings,
};
use crate::codec::{self, Item};
use crate::envelope::StreamHead;
use crate::error::{CurrentVersion, StoreError};
use crate::ids::{CommandId, StreamId};

#[derive(Debug, Default)]
struct State {
    events: BTreeMap<(String, u64), Item>,
    commands: HashMap<String, Item>,
}

/// Events and command records held in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    settings: StoreSettings,
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given settings.
    pub fn with_settings(settings: StoreSettings) -> Self {
        Self {
            settings,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append: appends mutate
        // only after every check has passed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rewrites a stored event item in place, as an attacker with table access could.
    ///
    /// For testing integrity checks; returns false if there is no such event.
    pub fn tamper_with(
        &self,
        stream_id: &StreamId,
        version: u64,
        edit: impl FnOnce(&mut Item),
    ) -> bool {
        let mut state = self.lock();
        match state.events.get_mut(&(stream_id.to_string(), version)) {
            Some(item) => {
                edit(item);
                true
            }
            None => false,
        }
    }

    /// Every stored event item, in stream and version order (for scans and rebuilds).
    pub fn all_items(&self) -> Vec<Item> {
        self.lock().events.values().cloned().collect()
    }

    /// Stores an item exactly as given, bypassing every check (to seed old schemas in tests).
    pub fn insert_raw(&self, item: Item) -> Result<(), StoreError> {
        let event = codec::decode_event_raw(item.clone())?;
        self.lock()
            .events
            .insert((event.stream_id.to_string(), event.version), item);
        Ok(())
    }

    fn head_of(state: &State, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        let key = stream_id.to_string();
        state
            .events
            .range((key.clone(), 0)..=(key, u64::MAX))
            .next_back()
            .map(|(_, item)| codec::decode_event_raw(item.clone()).map(|e| e.head()))
            .transpose()
    }

    /// The event at `version`, as a read returns it (upcast).
    fn event_at(
        state: &State,
        stream_id: &StreamId,
        version: u64,
        settings: &StoreSettings,
    ) -> Option<crate::RecordedEvent> {
        let item = state.events.get(&(stream_id.to_string(), version))?;
        codec::decode_event(item.clone(), &settings.upcasters).ok()
    }

    fn replay_or_mismatch(
        state: &State,
        request: &AppendRequest,
    ) -> Result<Option<AppendResult>, StoreError> {
        let Some(command) = &request.command else {
            return Ok(None);
        };
        let Some(item) = state.commands.get(command.command_id.as_str()) else {
            return Ok(None);
        };
        let record: CommandRecord = codec::from_item(item.clone(), "command record")?;
        Ok(Some(AppendResult::Replayed(
            record.replay_for(&command.request_hash)?,
        )))
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        plan::validate(&request, &self.settings)?;
        let mut state = self.lock();
        if let Some(replayed) = Self::replay_or_mismatch(&state, &request)? {
            return Ok(replayed);
        }
        let mut heads = Vec::with_capacity(request.writes.len());
        for write in &request.writes {
            let head = Self::head_of(&state, &write.stream_id)?;
            // A caller-supplied head is a claim about the stream; DynamoDB's conditional write
            // rejects it if the stream moved on, and so does this.
            if let Some(known) = write.known_head() {
                let actual = head.as_ref().map_or(0, StreamHead::version);
                if actual != known.version() {
                    // As on DynamoDB: the item after the known head exists, nothing more is read.
                    return Err(StoreError::Conflict {
                        stream_id: write.stream_id.clone(),
                        expected: ExpectedVersion::Exact(known.version()),
                        actual: if actual > known.version() {
                            CurrentVersion::Beyond(known.version())
                        } else {
                            CurrentVersion::At(actual)
                        },
                        next: Self::event_at(
                            &state,
                            &write.stream_id,
                            known.version() + 1,
                            &self.settings,
                        )
                        .map(Box::new),
                    });
                }
            }
            heads.push(head);
        }
        let plan = plan::build(&request, heads, &self.settings, crate::envelope::now())?;
        let outcome = plan.outcome();
        for write in plan.writes {
            for (event, item) in write.events.iter().zip(write.items) {
                state
                    .events
                    .insert((write.stream_id.to_string(), event.version), item);
            }
        }
        if let Some((record, item)) = plan.command {
            state.commands.insert(record.command_id.to_string(), item);
        }
        Ok(AppendResult::Written(outcome))
    }

    async fn read_items(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<ItemPage, StoreError> {
        let state = self.lock();
        let key = stream_id.to_string();
        let mut matching = state
            .events
            .range((key.clone(), range.from)..=(key, range.to))
            .map(|(_, item)| item.clone());
        let items: Vec<Item> = match range.limit {
            Some(limit) => matching.by_ref().take(limit).collect(),
            None => matching.by_ref().collect(),
        };
        let more = matching.next().is_some();
        Ok(ItemPage { items, more })
    }

    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        Self::head_of(&self.lock(), stream_id)
    }

    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.lock()
            .commands
            .get(command_id.as_str())
            .cloned()
            .map(|item| codec::from_item(item, "command record"))
            .transpose()
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}
