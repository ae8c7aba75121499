//! A store that fails on cue: wraps any [`EventStore`] and, append by append, lets another
//! writer in first, fails without writing, or writes and loses the answer. It counts what it
//! was asked, so a test can hold the round trips a command costs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::aggregate::DomainEvent;
use crate::encoding::to_new_event;
use crate::envelope::{NewEvent, StreamHead};
use crate::error::{StoreError, Unavailable};
use crate::ids::{CommandId, StreamId};
use crate::store::{
    AppendRequest, AppendResult, CommandRecord, DocumentPage, EventStore, ReadRange, StoreSettings,
};
use crate::version::ExpectedVersion;

/// What happens to one append.
#[derive(Clone, Debug)]
pub enum AppendFault {
    /// It goes through.
    Pass,
    /// Another writer appends these events to the append's first stream just before it.
    Interloper(Vec<NewEvent>),
    /// It fails as the store being unavailable, and writes nothing.
    Unavailable,
    /// It is written, but its answer is lost: the caller sees an error whose outcome is
    /// unknown.
    LoseAnswer,
}

impl AppendFault {
    /// Another writer's `event` on the append's first stream.
    pub fn interloper<E: DomainEvent>(event: &E) -> Self {
        Self::Interloper(vec![
            to_new_event(event).expect("a test's interloping event is readable"),
        ])
    }
}

/// What the store was asked, by kind of call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// Appends (the interlopers' not counted).
    pub appends: usize,
    /// Reads of events.
    pub reads: usize,
    /// Reads of a head.
    pub head_reads: usize,
    /// Reads of a command record.
    pub command_reads: usize,
}

impl Calls {
    /// Every call.
    pub fn total(&self) -> usize {
        self.appends + self.reads + self.head_reads + self.command_reads
    }
}

#[derive(Debug, Default)]
struct Script {
    next: VecDeque<AppendFault>,
    always: Option<AppendFault>,
    calls: Calls,
}

/// An event store that fails on cue.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn EventStore>,
    script: Mutex<Script>,
}

impl FaultyStore {
    /// A faultless store over `inner`, until told otherwise.
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            script: Mutex::default(),
        }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next appends meet these faults, one each, in order; then they pass.
    pub fn then(&self, faults: impl IntoIterator<Item = AppendFault>) -> &Self {
        self.script().next.extend(faults);
        self
    }

    /// Every append from now on (after the scripted ones) meets this fault.
    pub fn always(&self, fault: AppendFault) -> &Self {
        self.script().always = Some(fault);
        self
    }

    /// What was asked since the last reset.
    pub fn calls(&self) -> Calls {
        self.script().calls
    }

    /// Counts from zero again.
    pub fn reset_calls(&self) {
        self.script().calls = Calls::default();
    }

    /// The store underneath, for looking at what was really written.
    pub fn inner(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }

    fn unavailable(outcome_unknown: bool) -> StoreError {
        StoreError::Unavailable(Box::new(Unavailable {
            operation: "append",
            resource: "faulty store".into(),
            code: Some("Injected".into()),
            retryable: true,
            outcome_unknown,
            source: "a fault injected by the test".into(),
        }))
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let fault = {
            let mut script = self.script();
            script.calls.appends += 1;
            let next = script.next.pop_front();
            next.or_else(|| script.always.clone())
                .unwrap_or(AppendFault::Pass)
        };
        match fault {
            AppendFault::Pass => self.inner.append(request).await,
            AppendFault::Interloper(events) => {
                if let Some(write) = request.writes.first() {
                    self.inner
                        .append(AppendRequest::single(
                            write.stream_id.clone(),
                            ExpectedVersion::Any,
                            events,
                        ))
                        .await?;
                }
                self.inner.append(request).await
            }
            AppendFault::Unavailable => Err(Self::unavailable(false)),
            AppendFault::LoseAnswer => {
                self.inner.append(request).await?;
                Err(Self::unavailable(true))
            }
        }
    }

    async fn read_documents(
        &self,
        stream_id: &StreamId,
        range: ReadRange,
    ) -> Result<DocumentPage, StoreError> {
        self.script().calls.reads += 1;
        self.inner.read_documents(stream_id, range).await
    }

    async fn read_head(&self, stream_id: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        self.script().calls.head_reads += 1;
        self.inner.read_head(stream_id).await
    }

    async fn read_command(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.script().calls.command_reads += 1;
        self.inner.read_command(command_id).await
    }

    fn settings(&self) -> &StoreSettings {
        self.inner.settings()
    }
}
