//! Workflows tested like aggregates: given events, when an event happens (or time passes),
//! then these commands, these timers set or cancelled. A virtual clock moves only when told;
//! timers fire in due order as it passes them. No store, no I/O: the reactor decides, and the
//! kit looks at what it decided. Events go through the store's own encoding, so a test fails
//! where production would.
//!
//! ```
//! # use eventfold::prelude::*;
//! # use eventfold::reactor::{Reactions, Reactor, Timer};
//! # use serde::{Deserialize, Serialize};
//! # use std::time::Duration;
//! # #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DomainEvent)]
//! # #[serde(tag = "type", content = "data")]
//! # pub enum LoanEvent { BookLent { member: String }, BookReturned }
//! # #[derive(Debug, PartialEq)] pub enum LoanCommand { Remind }
//! # #[derive(Debug, PartialEq, thiserror::Error)] #[error("no")] pub struct No;
//! # #[derive(Clone, Debug, Default, Serialize, Deserialize)] pub struct Loan;
//! # impl Aggregate for Loan {
//! #     const CATEGORY: &'static str = "Loan"; const STATE_SCHEMA: u32 = 1;
//! #     type Event = LoanEvent; type Command = LoanCommand; type Error = No;
//! #     fn decide(&self, _: &LoanCommand) -> Result<Vec<LoanEvent>, No> { Ok(vec![]) }
//! #     fn evolve(self, _: &LoanEvent) -> Self { self }
//! # }
//! /// Reminds a member three weeks into a loan, unless the book is back.
//! #[derive(Debug)]
//! struct Reminders;
//!
//! impl Reactor for Reminders {
//!     fn name(&self) -> &str { "reminders" }
//!     fn follows(&self, stream: &StreamId) -> bool { stream.category() == Loan::CATEGORY }
//!     fn react(&self, event: &RecordedEvent, out: &mut Reactions) -> Result<(), StoreError> {
//!         let key = format!("remind/{}", event.stream_id);
//!         match decode_known::<LoanEvent>(event)? {
//!             Some(LoanEvent::BookLent { .. }) => out.schedule(&key, Duration::from_secs(21 * 86_400), serde_json::json!({})),
//!             Some(LoanEvent::BookReturned) => out.cancel(&key),
//!             None => {}
//!         }
//!         Ok(())
//!     }
//!     fn on_timer(&self, timer: &Timer, out: &mut Reactions) -> Result<(), StoreError> {
//!         let loan = timer.key.trim_start_matches("remind/Loan-");
//!         let loan = EntityId::parse(loan).map_err(|e| StoreError::corrupt(e.to_string()))?;
//!         out.command::<Loan>(&loan, LoanCommand::Remind);
//!         Ok(())
//!     }
//! }
//!
//! let loan = EntityId::parse("l1")?;
//! let kit = eventfold::testing::workflow(Reminders)
//!     .given::<Loan>(&loan, [LoanEvent::BookLent { member: "ada".into() }])
//!     .when_time_elapses(Duration::from_secs(20 * 86_400))
//!     .then_no_commands()
//!     .and()
//!     .when_time_elapses(Duration::from_secs(86_400))
//!     .then_command::<Loan>(&loan, LoanCommand::Remind)
//!     .and();
//! // Returned in time: the reminder is cancelled, and never sent.
//! eventfold::testing::workflow(Reminders)
//!     .given::<Loan>(&loan, [LoanEvent::BookLent { member: "ada".into() }])
//!     .when::<Loan>(&loan, LoanEvent::BookReturned)
//!     .then_cancelled("remind/Loan-l1")
//!     .and()
//!     .when_time_elapses(Duration::from_secs(30 * 86_400))
//!     .then_no_commands();
//! # drop(kit);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::aggregate::Aggregate;
use crate::encoding::{read_back, to_new_event};
use crate::envelope::RecordedEvent;
use crate::ids::{CommandId, EntityId, StreamId};
use crate::reactor::{Dispatch, Reaction, Reactions, Reactor, Refusal, Timer};

/// Starts a workflow test of `reactor`, its clock at 2030-01-01T00:00:00Z.
pub fn workflow<R: Reactor>(reactor: R) -> Workflow<R> {
    Workflow {
        reactor,
        clock: Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid instant"),
        versions: HashMap::new(),
        timers: BTreeMap::new(),
    }
}

/// A reactor, its timers and a virtual clock.
#[derive(Debug)]
pub struct Workflow<R> {
    reactor: R,
    clock: DateTime<Utc>,
    versions: HashMap<StreamId, u64>,
    /// By key.
    timers: BTreeMap<String, Timer>,
}

/// What one step decided: the commands, and the timers set and cancelled.
#[derive(Debug)]
pub struct Then<R> {
    workflow: Workflow<R>,
    commands: Vec<Box<dyn Dispatch>>,
    /// Each command's id and its trigger's time, for [`Then::when_refused`].
    sent_as: Vec<(CommandId, DateTime<Utc>)>,
    scheduled: Vec<Timer>,
    cancelled: Vec<String>,
}

impl<R: Reactor> Workflow<R> {
    /// The virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock
    }

    /// The timers waiting, by key.
    pub fn timers(&self) -> &BTreeMap<String, Timer> {
        &self.timers
    }

    /// Past events of `A` `id`, reacted to: the timers they set stay set; their commands are
    /// dropped (they were sent before the test starts).
    #[track_caller]
    pub fn given<A: Aggregate>(
        mut self,
        id: &EntityId,
        events: impl IntoIterator<Item = A::Event>,
    ) -> Self {
        for event in events {
            self = self.when::<A>(id, event).and();
        }
        self
    }

    /// `A` `id` records `event` now: what the reactor decides.
    #[track_caller]
    pub fn when<A: Aggregate>(mut self, id: &EntityId, event: A::Event) -> Then<R> {
        let recorded = self.record::<A>(id, &event);
        let mut out = Reactions::new(
            self.reactor.name(),
            &recorded.event_id.to_string(),
            self.clock,
        );
        if self.reactor.follows(&recorded.stream_id)
            && let Err(error) = self.reactor.react(&recorded, &mut out)
        {
            panic!("{} failed on {event:?}: {error}", self.reactor.name());
        }
        let mut then = Then::new(self);
        then.take(out);
        then
    }

    /// The clock moves on by `elapsed`: every timer it passes fires, in due order (a timer set
    /// by one that fires fires too, if it is due by then).
    #[track_caller]
    pub fn when_time_elapses(self, elapsed: Duration) -> Then<R> {
        let until = self.clock + chrono::Duration::from_std(elapsed).expect("a short duration");
        let mut then = Then::new(self);
        loop {
            let next = then
                .workflow
                .timers
                .values()
                .filter(|t| t.due <= until)
                .min_by_key(|t| (t.due, t.key.clone()))
                .cloned();
            let Some(timer) = next else { break };
            then.workflow.timers.remove(&timer.key);
            then.workflow.clock = then.workflow.clock.max(timer.due);
            let mut out = Reactions::new(then.workflow.reactor.name(), &timer.id, timer.due);
            if let Err(error) = then.workflow.reactor.on_timer(&timer, &mut out) {
                panic!(
                    "{} failed on timer {}: {error}",
                    then.workflow.reactor.name(),
                    timer.key
                );
            }
            then.take(out);
        }
        then.workflow.clock = until;
        then
    }

    #[track_caller]
    fn record<A: Aggregate>(&mut self, id: &EntityId, event: &A::Event) -> RecordedEvent {
        let stream_id = A::stream_id(id);
        let event = match read_back(event) {
            Ok(back) => back,
            Err(error) => panic!("{event:?} would be written but not read back: {error}"),
        };
        let new = to_new_event(&event).expect("it was read back");
        let version = self.versions.entry(stream_id.clone()).or_insert(0);
        *version += 1;
        RecordedEvent {
            stream_id,
            version: *version,
            event_id: new.event_id,
            event_type: new.event_type,
            schema_version: new.schema_version,
            occurred_at: self.clock,
            metadata: new.metadata,
            payload: new.payload,
            chain: String::new(),
            snapshot_due: false,
        }
    }
}

impl<R: Reactor> Then<R> {
    fn new(workflow: Workflow<R>) -> Self {
        Self {
            workflow,
            commands: Vec::new(),
            sent_as: Vec::new(),
            scheduled: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// Applies a decision's timers to the workflow and keeps what it decided.
    fn take(&mut self, reactions: Reactions) {
        let at = reactions.at();
        self.sent_as
            .extend(reactions.commands().map(|(id, _)| (id, at)));
        for item in reactions.into_items() {
            match item {
                Reaction::Command(command) => self.commands.push(command),
                Reaction::Schedule(timer) => {
                    self.workflow
                        .timers
                        .insert(timer.key.clone(), timer.clone());
                    self.scheduled.push(timer);
                }
                Reaction::Cancel(key) => {
                    self.workflow.timers.remove(&key);
                    self.cancelled.push(key);
                }
            }
        }
    }

    /// The commands decided.
    pub fn commands(&self) -> &[Box<dyn Dispatch>] {
        &self.commands
    }

    /// Expects `command` to `A` `id` among the commands decided.
    #[track_caller]
    pub fn then_command<A>(self, id: &EntityId, command: A::Command) -> Self
    where
        A: Aggregate,
        A::Command: PartialEq + 'static,
    {
        let expected = (A::stream_id(id), command);
        let found = self.commands.iter().any(|sent| {
            sent.as_any()
                .downcast_ref::<(StreamId, A::Command)>()
                .is_some_and(|sent| *sent == expected)
        });
        assert!(
            found,
            "expected {expected:?} among the commands decided: {:?}",
            self.commands
        );
        self
    }

    /// Expects `command` among the commands decided, a command of the application's own making
    /// (sent with [`Reactions::send`]) whose `as_any` is a `T`.
    #[track_caller]
    pub fn then_sent<T: PartialEq + std::fmt::Debug + 'static>(self, command: &T) -> Self {
        let found = self
            .commands
            .iter()
            .any(|sent| sent.as_any().downcast_ref::<T>() == Some(command));
        assert!(
            found,
            "expected {command:?} among the commands decided: {:?}",
            self.commands
        );
        self
    }

    /// Expects exactly `count` commands.
    #[track_caller]
    pub fn then_commands(self, count: usize) -> Self {
        assert_eq!(self.commands.len(), count, "{:?}", self.commands);
        self
    }

    /// Expects no command.
    #[track_caller]
    pub fn then_no_commands(self) -> Self {
        self.then_commands(0)
    }

    /// Expects the timer `key` set.
    #[track_caller]
    pub fn then_scheduled(self, key: &str) -> Self {
        assert!(
            self.scheduled.iter().any(|t| t.key == key),
            "expected the timer {key} set: {:?}",
            self.scheduled
        );
        self
    }

    /// Expects the timer `key` cancelled.
    #[track_caller]
    pub fn then_cancelled(self, key: &str) -> Self {
        assert!(
            self.cancelled.iter().any(|k| k == key),
            "expected the timer {key} cancelled: {:?}",
            self.cancelled
        );
        self
    }

    /// The aggregates refuse every command this step decided, for `why`: what the reactor
    /// decides in answer ([`Reactor::on_refused`]).
    #[track_caller]
    pub fn when_refused(self, why: &str) -> Then<R> {
        let Self {
            workflow,
            commands,
            sent_as,
            ..
        } = self;
        let mut then = Then::new(workflow);
        for (command, (id, at)) in commands.iter().zip(&sent_as) {
            let refusal = Refusal {
                command: command.as_ref(),
                command_id: id,
                why,
            };
            let mut out = Reactions::new(then.workflow.reactor.name(), id.as_str(), *at);
            if let Err(error) = then.workflow.reactor.on_refused(&refusal, &mut out) {
                panic!(
                    "{} failed on the refusal of {command:?}: {error}",
                    then.workflow.reactor.name()
                );
            }
            then.take(out);
        }
        then
    }

    /// Goes on from here.
    pub fn and(self) -> Workflow<R> {
        self.workflow
    }
}
