//! An in-memory event store with the same semantics as DynamoDB, for fast tests.
//!
//! It keeps stored documents, not structs, so it exercises the same encoding, limits and
//! integrity chain as the DynamoDB store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::plan::PreparedAppend;
use super::{
    AppendRequest, AppendResult, CommandRecord, DocumentPage, EventStore, ReadRange, StoreSettings,
};
use crate::envelope::{RecordedEvent, StreamHead};
use crate::error::StoreError;
use crate::ids::{CommandId, StreamId};
use crate::stored::{self, Document};
use crate::version::{CurrentVersion, ExpectedVersion};

#[derive(Debug, Default)]
struct State {
    events: BTreeMap<(String, u64), Document>,
    commands: HashMap<String, Document>,
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

    /// Rewrites a stored event in place, as an attacker with table access could.
    ///
    /// For testing integrity checks; returns false if there is no such event.
    pub fn tamper_with(
        &self,
        stream_id: &StreamId,
        version: u64,
        edit: impl FnOnce(&mut Document),
    ) -> bool {
        let mut state = self.lock();
        match state.events.get_mut(&(stream_id.to_string(), version)) {
            Some(document) => {
                edit(document);
                true
            }
            None => false,
        }
    }

    /// Every stored event, in stream and version order (for scans and rebuilds).
    pub fn all_documents(&self) -> Vec<Document> {
        self.lock().events.values().cloned().collect()
    }

    /// Every stored event decoded as stored, in stream and version order.
    pub fn all_events(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.all_documents()
            .into_iter()
            .map(stored::decode)
            .collect()
    }

    /// Stores a document exactly as given, bypassing every check (to seed old schemas in
    /// tests).
    pub fn insert_raw(&self, document: Document) -> Result<(), StoreError> {
        let event = stored::decode(document.clone())?;
        self.lock()
            .events
            .insert((event.stream_id.to_string(), event.version), document);
        Ok(())
    }

    fn head_of(state: &State, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        let key = stream_id.to_string();
        state
            .events
            .range((key.clone(), 0)..=(key, u64::MAX))
            .next_back()
            .map(|(_, document)| stored::decode(document.clone()).map(|e| e.head()))
            .transpose()
    }

    /// The event at `version`, as a read returns it (upcast).
    fn event_at(
        state: &State,
        stream_id: &StreamId,
        version: u64,
        settings: &StoreSettings,
    ) -> Option<RecordedEvent> {
        let document = state.events.get(&(stream_id.to_string(), version))?;
        let event = stored::decode(document.clone()).ok()?;
        settings.upcasters.upcast(event).ok()
    }

    fn replay_or_mismatch(
        state: &State,
        prepared: &PreparedAppend,
    ) -> Result<Option<AppendResult>, StoreError> {
        let Some(command) = prepared.command() else {
            return Ok(None);
        };
        let Some(document) = state.commands.get(command.command_id.as_str()) else {
            return Ok(None);
        };
        let record: CommandRecord = stored::from_document(document.clone(), "command record")?;
        Ok(Some(AppendResult::Replayed(
            record.replay_for(&command.request_hash)?,
        )))
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let prepared = PreparedAppend::new(request, &self.settings)?;
        let mut state = self.lock();
        if let Some(replayed) = Self::replay_or_mismatch(&state, &prepared)? {
            return Ok(replayed);
        }
        let mut heads = Vec::new();
        for write in prepared.writes() {
            let (stream_id, known) = (&write.stream_id, write.head.as_ref());
            let head = Self::head_of(&state, stream_id)?;
            // A caller-supplied head is a claim about the stream; DynamoDB's conditional write
            // rejects it if the stream moved on, and so does this.
            if let Some(known) = known {
                let actual = head.as_ref().map_or(0, StreamHead::version);
                if actual != known.version() {
                    // As on DynamoDB: the item after the known head exists, nothing more is read.
                    return Err(StoreError::Conflict {
                        stream_id: stream_id.clone(),
                        expected: ExpectedVersion::Exact(known.version()),
                        actual: if actual > known.version() {
                            CurrentVersion::Beyond(known.version())
                        } else {
                            CurrentVersion::At(actual)
                        },
                        next: Self::event_at(
                            &state,
                            stream_id,
                            known.version() + 1,
                            &self.settings,
                        )
                        .map(Box::new),
                    });
                }
            }
            heads.push(head);
        }
        let plan = prepared.plan(heads, &self.settings, crate::envelope::now())?;
        let outcome = plan.outcome();
        for write in plan.writes {
            for (event, document) in write.events.iter().zip(write.documents) {
                state
                    .events
                    .insert((write.stream_id.to_string(), event.version), document);
            }
        }
        if let Some((record, document)) = plan.command {
            state
                .commands
                .insert(record.command_id.to_string(), document);
        }
        Ok(AppendResult::Written(outcome))
    }

    async fn read_documents(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<DocumentPage, StoreError> {
        let state = self.lock();
        let key = stream_id.to_string();
        if range.from > range.to {
            return Ok(DocumentPage {
                documents: Vec::new(),
                more: false,
            });
        }
        let in_range = state
            .events
            .range((key.clone(), range.from)..=(key, range.to))
            .map(|(_, document)| document.clone());
        let mut matching: Box<dyn Iterator<Item = Document>> = if range.newest {
            Box::new(in_range.rev())
        } else {
            Box::new(in_range)
        };
        let mut documents: Vec<Document> = match range.limit {
            Some(limit) => matching.by_ref().take(limit).collect(),
            None => matching.by_ref().collect(),
        };
        let more = matching.next().is_some();
        if range.newest {
            documents.reverse();
        }
        Ok(DocumentPage { documents, more })
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
            .map(|document| stored::from_document(document, "command record"))
            .transpose()
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}
