//! Reactors: workflows across aggregates. A [`Reactor`] answers an event (or a timer it set)
//! with commands on other aggregates, timers to set and timers to cancel; it decides, and
//! [`Reacting`] carries the decision out. Every command's id derives from the reactor's name,
//! what triggered it and its place among the reactions, so a redelivered event, a retried
//! batch or a replay from the feed runs no command twice: the command service answers the
//! repeat from its record. A reactor that needs to remember across events keeps that memory as
//! an aggregate of its own (a process manager): its reactions include commands to that
//! aggregate, whose events it then reacts to. A command the aggregate refuses is an answer, not
//! a failure: the reactor may answer it in turn ([`Reactor::on_refused`]).
//!
//! A reactor reads its events from the global feed ([`Reacting`] is a [`FeedHandler`]), so it
//! has checkpoints, leases and parked streams; its timers wait in a [`TimerStore`] until
//! [`Reacting::fire_due`] calls it back.

mod timers;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(feature = "aws")]
pub(crate) use timers::by_due;
pub use timers::{MAX_KEY_LEN, MemoryTimers, Timer, TimerStore};

use crate::aggregate::Aggregate;
use crate::command::{CommandContext, CommandError, CommandService, Executed, Target};
use crate::envelope::RecordedEvent;
use crate::error::{StoreError, Unavailable};
use crate::feed::{FeedHandler, Rejected};
use crate::ids::{CommandId, EntityId, StreamId};

/// Timers fired at once, at most, by one call of [`Reacting::fire_due`].
pub const TIMERS_PER_ROUND: usize = 100;

/// A workflow step: events (and its own timers) in, reactions out. Deciding is pure: no I/O,
/// no clock but the trigger's time ([`Reactions::at`]), so that a trigger delivered again
/// decides the same.
pub trait Reactor: Send + Sync + fmt::Debug {
    /// Its name: its checkpoints', its timers' and its commands' namespace
    /// (`[A-Za-z0-9_-]{1,64}`).
    fn name(&self) -> &str;

    /// Whether it reacts to events of `stream_id` (the others are passed over unread).
    fn follows(&self, stream_id: &StreamId) -> bool;

    /// Its reactions to `event`.
    fn react(&self, event: &RecordedEvent, out: &mut Reactions) -> Result<(), StoreError>;

    /// Its reactions to one of its timers, now due.
    fn on_timer(&self, timer: &Timer, out: &mut Reactions) -> Result<(), StoreError> {
        let _ = (timer, out);
        Ok(())
    }

    /// Its reactions to one of its commands refused by the aggregate (a business rule, an
    /// access rule): a command recording the failure where users see it, say, or a timer to
    /// try again. By default, none (the refusal is counted and logged). The reactions' ids
    /// derive from the refused command's, so a redelivery that is refused again decides and
    /// sends the same; what they decide is carried out, but their own refusals are only
    /// counted, so that refusals cannot answer each other without end.
    fn on_refused(&self, refusal: &Refusal<'_>, out: &mut Reactions) -> Result<(), StoreError> {
        let _ = (refusal, out);
        Ok(())
    }
}

/// A command of a reactor's that its aggregate refused.
#[derive(Debug)]
pub struct Refusal<'a> {
    /// The command, as decided.
    pub command: &'a dyn Dispatch,
    /// The id it was sent under.
    pub command_id: &'a CommandId,
    /// Why it was refused (the aggregate's error, as text).
    pub why: &'a str,
}

impl Refusal<'_> {
    /// The command as a `T`: `(StreamId, A::Command)` for one decided by
    /// [`Reactions::command`], the application's own type for one sent by [`Reactions::send`].
    pub fn command_as<T: 'static>(&self) -> Option<&T> {
        self.command.as_any().downcast_ref()
    }
}

/// A command on an aggregate, typed, waiting to be sent.
#[async_trait]
pub trait Dispatch: Send + Sync + fmt::Debug {
    /// The stream it is for.
    fn stream_id(&self) -> &StreamId;

    /// The command and its stream, for a test to look at (`(StreamId, A::Command)`).
    fn as_any(&self) -> &(dyn Any + Send + Sync);

    /// Sends it through `service` under `context`.
    async fn send(
        &self,
        service: &CommandService,
        context: &CommandContext,
    ) -> Result<Sent, StoreError>;
}

/// What a command sent by a reactor came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Its events were written.
    Written,
    /// It had been sent before (a redelivery): answered from its record, nothing written.
    Replayed,
    /// The aggregate refused it (a business rule, or it was taken care of already): nothing
    /// written, and not retried.
    Refused(String),
}

#[derive(Debug)]
struct Typed<A: Aggregate> {
    command: (StreamId, A::Command),
}

#[async_trait]
impl<A> Dispatch for Typed<A>
where
    A: Aggregate,
    A::Command: 'static,
{
    fn stream_id(&self) -> &StreamId {
        &self.command.0
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &self.command
    }

    async fn send(
        &self,
        service: &CommandService,
        context: &CommandContext,
    ) -> Result<Sent, StoreError> {
        let (stream_id, command) = &self.command;
        let target = Target::new(stream_id.clone());
        let result = service
            .execute_one::<A, ()>(context, target, command, ())
            .await;
        Sent::of(result, stream_id.as_str())
    }
}

impl Sent {
    /// What a command's result comes to for the reactor that sent it: written or replayed;
    /// refused by the domain, an access rule or a taken claim (an answer, not retried); or,
    /// for the store's failures and conflicts or a deadline, an error the batch is retried on
    /// (`resource` names what the command was for).
    pub fn of<R, E: std::error::Error + 'static>(
        result: Result<Executed<R>, CommandError<E>>,
        resource: &str,
    ) -> Result<Self, StoreError> {
        match result {
            Ok(done) if done.replayed => Ok(Self::Replayed),
            Ok(_) => Ok(Self::Written),
            Err(CommandError::Rejected(error)) => Ok(Self::Refused(error.to_string())),
            Err(CommandError::Denied(denied)) => Ok(Self::Refused(denied.to_string())),
            Err(CommandError::ClaimTaken { stream_id }) => {
                Ok(Self::Refused(format!("{stream_id} is already claimed")))
            }
            Err(CommandError::Store(error)) => Err(error),
            Err(other) => Err(StoreError::Unavailable(Box::new(Unavailable {
                operation: "command",
                resource: resource.to_owned(),
                code: None,
                retryable: true,
                outcome_unknown: matches!(
                    other,
                    CommandError::DeadlineExceeded {
                        outcome_unknown: true
                    }
                ),
                source: other.to_string().into(),
            }))),
        }
    }
}

/// One reaction.
#[derive(Debug)]
pub enum Reaction {
    /// A command to send.
    Command(Box<dyn Dispatch>),
    /// A timer to set (replacing any under its key).
    Schedule(Timer),
    /// The timer under this key to cancel.
    Cancel(String),
}

/// What a reactor decided in answer to one trigger, in order.
#[derive(Debug)]
pub struct Reactions {
    reactor: String,
    trigger: String,
    at: DateTime<Utc>,
    items: Vec<Reaction>,
}

impl Reactions {
    /// Reactions of `reactor` to the trigger `trigger` (an event's or a timer's id) of time `at`.
    pub fn new(reactor: &str, trigger: &str, at: DateTime<Utc>) -> Self {
        Self {
            reactor: reactor.to_owned(),
            trigger: trigger.to_owned(),
            at,
            items: Vec::new(),
        }
    }

    /// When the trigger happened: the event's time, or the timer's due time. Timers set
    /// relative to it are the same on every redelivery.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// Sends `command` to the `A` with id `id`.
    pub fn command<A>(&mut self, id: &EntityId, command: A::Command)
    where
        A: Aggregate,
        A::Command: 'static,
    {
        let typed: Typed<A> = Typed {
            command: (A::stream_id(id), command),
        };
        self.items.push(Reaction::Command(Box::new(typed)));
    }

    /// Sends a command of the application's own making: one that spans aggregates (a
    /// transfer between two accounts), say, which [`command`](Self::command) cannot express.
    pub fn send(&mut self, command: Box<dyn Dispatch>) {
        self.items.push(Reaction::Command(command));
    }

    /// Sets the timer `key` to call back `after` the trigger's time, with `payload`.
    pub fn schedule(&mut self, key: &str, after: Duration, payload: Value) {
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let due = self
            .at
            .checked_add_signed(after)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.schedule_at(key, due, payload);
    }

    /// Sets the timer `key` to call back at `due`, with `payload`.
    pub fn schedule_at(&mut self, key: &str, due: DateTime<Utc>, payload: Value) {
        let id = derived_id(&self.reactor, &self.trigger, self.items.len());
        self.items.push(Reaction::Schedule(Timer {
            reactor: self.reactor.clone(),
            key: key.to_owned(),
            due,
            id,
            payload,
        }));
    }

    /// Cancels the timer `key`, if it is set.
    pub fn cancel(&mut self, key: &str) {
        self.items.push(Reaction::Cancel(key.to_owned()));
    }

    /// What was decided, in order.
    pub fn items(&self) -> &[Reaction] {
        &self.items
    }

    /// What was decided, in order, taken.
    pub fn into_items(self) -> Vec<Reaction> {
        self.items
    }

    /// The commands decided, each with the id it is sent under.
    pub fn commands(&self) -> impl Iterator<Item = (CommandId, &dyn Dispatch)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(n, item)| match item {
                Reaction::Command(command) => Some((self.command_id(n), command.as_ref())),
                _ => None,
            })
    }

    fn command_id(&self, n: usize) -> CommandId {
        let id = derived_id(&self.reactor, &self.trigger, n);
        CommandId::new(format!("reactor/{}/{id}", self.reactor))
            .expect("a reactor's name and a hex digest are printable and short")
    }
}

/// The id of the `n`th reaction of `reactor` to `trigger`: 32 hex digits of a SHA-256.
fn derived_id(reactor: &str, trigger: &str, n: usize) -> String {
    let digest = Sha256::digest(format!("{reactor}\n{trigger}\n{n}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What carrying reactions out did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReactionReport {
    /// Events (or timers) reacted to.
    pub triggers: usize,
    /// Commands whose events were written.
    pub written: usize,
    /// Commands sent before, answered from their record.
    pub replayed: usize,
    /// Commands the aggregate refused.
    pub refused: usize,
    /// Timers set.
    pub scheduled: usize,
    /// Timers cancelled.
    pub cancelled: usize,
    /// Timers that fired.
    pub fired: usize,
}

impl ReactionReport {
    fn add(&mut self, other: &Self) {
        self.triggers += other.triggers;
        self.written += other.written;
        self.replayed += other.replayed;
        self.refused += other.refused;
        self.scheduled += other.scheduled;
        self.cancelled += other.cancelled;
        self.fired += other.fired;
    }
}

/// A reactor at work: its decisions carried out through the command service and its timers.
#[derive(Debug)]
pub struct Reacting {
    reactor: Arc<dyn Reactor>,
    commands: CommandService,
    timers: Arc<dyn TimerStore>,
    report: std::sync::Mutex<ReactionReport>,
}

impl Reacting {
    /// `reactor`, sending its commands through `commands`, its timers kept in `timers`.
    pub fn new(
        reactor: Arc<dyn Reactor>,
        commands: CommandService,
        timers: Arc<dyn TimerStore>,
    ) -> Self {
        Self {
            reactor,
            commands,
            timers,
            report: std::sync::Mutex::new(ReactionReport::default()),
        }
    }

    /// The reactor.
    pub fn reactor(&self) -> &Arc<dyn Reactor> {
        &self.reactor
    }

    /// Everything done since the last call (and resets the count).
    pub fn take_report(&self) -> ReactionReport {
        std::mem::take(
            &mut *self
                .report
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn count(&self, report: &ReactionReport) {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(report);
    }

    /// Reacts to one event (if the reactor follows its stream) and carries the reactions out.
    pub async fn react(&self, event: &RecordedEvent) -> Result<ReactionReport, StoreError> {
        if !self.reactor.follows(&event.stream_id) {
            return Ok(ReactionReport::default());
        }
        let trigger = event.event_id.to_string();
        let mut out = Reactions::new(self.reactor.name(), &trigger, event.occurred_at);
        self.reactor.react(event, &mut out)?;
        let correlation = event
            .metadata
            .correlation_id
            .clone()
            .unwrap_or_else(|| trigger.clone());
        self.carry_out(&out, &correlation).await
    }

    /// Calls the reactor back for each of its timers due at `now` (up to
    /// [`TIMERS_PER_ROUND`]), carries the reactions out, then takes the timer off: a crash in
    /// between fires it again, and its commands are answered from their records.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> Result<ReactionReport, StoreError> {
        let mut report = ReactionReport::default();
        let due = self
            .timers
            .due(self.reactor.name(), now, TIMERS_PER_ROUND)
            .await?;
        for timer in due {
            let mut out = Reactions::new(self.reactor.name(), &timer.id, timer.due);
            self.reactor.on_timer(&timer, &mut out)?;
            report.add(&self.carry_out(&out, &timer.id).await?);
            self.timers.fired(&timer).await?;
            report.fired += 1;
        }
        self.count(&ReactionReport {
            fired: report.fired,
            ..ReactionReport::default()
        });
        Ok(report)
    }

    /// Carries `reactions` out, then the reactor's reactions to each of their commands that
    /// was refused (whose own refusals are only counted).
    async fn carry_out(
        &self,
        reactions: &Reactions,
        correlation: &str,
    ) -> Result<ReactionReport, StoreError> {
        let (mut report, refused) = self.carry_out_once(reactions, correlation).await?;
        report.triggers = 1;
        for (n, command_id, why) in refused {
            let Reaction::Command(command) = &reactions.items[n] else {
                continue;
            };
            let refusal = Refusal {
                command: command.as_ref(),
                command_id: &command_id,
                why: &why,
            };
            let mut out = Reactions::new(&reactions.reactor, command_id.as_str(), reactions.at);
            self.reactor.on_refused(&refusal, &mut out)?;
            if !out.items.is_empty() {
                let (answered, _) = self.carry_out_once(&out, correlation).await?;
                report.add(&answered);
            }
        }
        self.count(&report);
        Ok(report)
    }

    /// Carries `reactions` out, in order; says which commands were refused (their place, id and
    /// why). The report counts no trigger: the caller knows what triggered them.
    async fn carry_out_once(
        &self,
        reactions: &Reactions,
        correlation: &str,
    ) -> Result<(ReactionReport, Vec<(usize, CommandId, String)>), StoreError> {
        let mut report = ReactionReport::default();
        let mut refused = Vec::new();
        for (n, item) in reactions.items().iter().enumerate() {
            match item {
                Reaction::Command(command) => {
                    let id = reactions.command_id(n);
                    let mut context = CommandContext::new(id.clone(), id.as_str());
                    context.metadata.correlation_id = Some(correlation.to_owned());
                    context.metadata.causation_id = Some(reactions.trigger.clone());
                    context.metadata.actor = Some(format!("reactor:{}", reactions.reactor));
                    match command.send(&self.commands, &context).await? {
                        Sent::Written => report.written += 1,
                        Sent::Replayed => report.replayed += 1,
                        Sent::Refused(why) => {
                            tracing::info!(reactor = %reactions.reactor, stream = %command.stream_id(),
                                command = %id, why, "reaction refused");
                            report.refused += 1;
                            refused.push((n, id, why));
                        }
                    }
                }
                Reaction::Schedule(timer) => {
                    self.timers.schedule(timer).await?;
                    report.scheduled += 1;
                }
                Reaction::Cancel(key) => {
                    self.timers.cancel(&reactions.reactor, key).await?;
                    report.cancelled += 1;
                }
            }
        }
        Ok((report, refused))
    }
}

#[async_trait]
impl FeedHandler for Reacting {
    async fn apply(&self, events: Vec<RecordedEvent>) -> Result<(), Rejected> {
        for event in &events {
            self.react(event).await.map_err(|error| Rejected {
                event: Some((event.stream_id.clone(), event.version)),
                error,
            })?;
        }
        Ok(())
    }
}
