//! Executing a command: decide on the loaded streams, append, and on a conflict step over the
//! event that was in the way or catch up, for as long as the deadline allows.

use futures::future::try_join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::outcome::{Executed, ExecutionStats};
use super::retry::{read_within, write_within};
use super::{Claim, CommandContext, CommandError, CommandService, Loaded, Target};
use crate::aggregate::Aggregate;
use crate::encoding::to_new_event;
use crate::error::StoreError;
use crate::identity::Denied;
use crate::personal::Keyring;
use crate::store::{AppendRequest, AppendResult, CommandRecord, NewCommand, StreamWrite};
use crate::version::ExpectedVersion;

/// A command's two rules over the loaded streams: who may, and what happens.
struct Rules<'a, Auth, Decide> {
    authorize: &'a Auth,
    decide: &'a Decide,
}

/// What one append attempt came to.
enum Attempt {
    /// Done: written, or a repeat answered from its first execution.
    Done(AppendResult),
    /// Another writer got to `stream` first; `next` is its event, if the refusal carried it.
    Beaten {
        stream: crate::ids::StreamId,
        next: Option<Box<crate::envelope::RecordedEvent>>,
    },
}

impl CommandService {
    /// Runs one command on one stream through the aggregate's `decide`.
    ///
    /// ```
    /// # use eventfold::prelude::*;
    /// # use eventfold::testing::toy::{Counter, CounterCommand};
    /// # use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = CommandService::new(Arc::new(MemoryStore::new()));
    /// let counter = Counter::stream_id(&EntityId::parse("c-1")?);
    /// let executed = service
    ///     .execute_one::<Counter, _>(
    ///         &CommandContext::default(),
    ///         Target::new(counter.clone()),
    ///         &CounterCommand::Add(2),
    ///         (),
    ///     )
    ///     .await?;
    /// assert_eq!(executed.version_of(&counter), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_one<A, R>(
        &self,
        context: &CommandContext,
        target: Target,
        command: &A::Command,
        receipt: R,
    ) -> Result<Executed<R>, CommandError<A::Error>>
    where
        A: Aggregate,
        R: Serialize + DeserializeOwned + Send + Sync,
    {
        self.execute::<A, R>(
            context,
            &[target],
            &[],
            |loaded| Ok(vec![loaded[0].state.decide(command)?]),
            receipt,
        )
        .await
    }

    /// Runs a decision over several streams of one aggregate type, appending every stream's
    /// events (and any uniqueness claims) in one transaction.
    ///
    /// `decide` sees the loaded streams in `targets` order and returns events per stream.
    /// `receipt` is stored with the command record and returned, so a repeat of the command
    /// reports what the first execution generated.
    pub async fn execute<A, R>(
        &self,
        context: &CommandContext,
        targets: &[Target],
        claims: &[Claim],
        decide: impl Fn(&[Loaded<A>]) -> Result<Vec<Vec<A::Event>>, A::Error> + Send + Sync,
        receipt: R,
    ) -> Result<Executed<R>, CommandError<A::Error>>
    where
        A: Aggregate,
        R: Serialize + DeserializeOwned + Send + Sync,
    {
        self.execute_authorized(context, targets, claims, |_| Ok(()), decide, receipt)
            .await
    }

    /// [`execute`](Self::execute) behind an access rule: `authorize` sees the loaded streams
    /// (and, through the context, the principal) before the caller's `If-Match` and before
    /// `decide`; its refusal is the command's answer ([`CommandError::Denied`]) and nothing is
    /// written. The rule costs no request: it looks at the state the command loads anyway (an
    /// owner the events recorded, say).
    ///
    /// ```
    /// # use eventfold::prelude::*;
    /// # use eventfold::identity::{Denied, Principal};
    /// # use eventfold::testing::toy::{Counter, CounterCommand};
    /// # use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = CommandService::new(Arc::new(MemoryStore::new()));
    /// let counter = Counter::stream_id(&EntityId::parse("c-1")?);
    /// let guest = CommandContext::default().with_principal(Principal::jwt("https://id", "guest", ["read"]));
    /// let refused = service
    ///     .execute_authorized::<Counter, _>(
    ///         &guest,
    ///         &[Target::new(counter.clone())],
    ///         &[],
    ///         |_| Err(Denied::forbidden("counters are counted by their keepers")),
    ///         |loaded| Ok(vec![loaded[0].state.decide(&CounterCommand::Add(1))?]),
    ///         (),
    ///     )
    ///     .await;
    /// assert!(matches!(refused, Err(CommandError::Denied(Denied::Forbidden(_)))));
    /// assert!(service.store().read_head(&counter).await?.is_none(), "nothing written");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_authorized<A, R>(
        &self,
        context: &CommandContext,
        targets: &[Target],
        claims: &[Claim],
        authorize: impl Fn(&[Loaded<A>]) -> Result<(), Denied> + Send + Sync,
        decide: impl Fn(&[Loaded<A>]) -> Result<Vec<Vec<A::Event>>, A::Error> + Send + Sync,
        receipt: R,
    ) -> Result<Executed<R>, CommandError<A::Error>>
    where
        A: Aggregate,
        R: Serialize + DeserializeOwned + Send + Sync,
    {
        let rules = Rules {
            authorize: &authorize,
            decide: &decide,
        };
        let receipt_value = serde_json::to_value(&receipt)
            .map_err(|e| StoreError::misuse(format!("the receipt does not serialize: {e}")))?;
        let _held = self.queue_behind_earlier_commands(context, targets).await?;
        // A kept state is decided on at once: no read, not even of a client's key (the write's
        // condition on the command record says whether it ran before). A cold stream is read
        // with its snapshot in one round trip.
        let loading = Instant::now();
        let mut loaded = read_within(
            context,
            try_join_all(
                targets
                    .iter()
                    .map(|t| self.load_for_decision::<A>(&t.stream_id)),
            ),
        )
        .await?;
        // An attempt is a read and a write: backoff is measured in attempts.
        let mut read_took = loading.elapsed();
        let events_folded = loaded.iter().map(|l| l.events_folded).sum();
        let snapshots_refused = loaded.iter().filter(|l| l.snapshot_refused).count();
        let mut attempt = 1;
        let mut stepped = false;
        let mut keyring = None;
        loop {
            let decided = match self.decide_on(context, targets, &mut loaded, &rules).await {
                Ok(decided) => decided,
                Err(refused) => return self.refuse(context, refused).await,
            };
            // Personal data is sealed before it is chained; what is written and kept is the
            // sealed event, as the store will give it back.
            let decided = read_within(context, self.seal(&mut keyring, decided)).await?;
            let request = append_request(context, &loaded, &decided, claims, &receipt_value)?;
            let sent = Instant::now();
            let attempted = self.attempt(context, request).await;
            let round_trip = sent.elapsed();
            let (stream, next) = match attempted {
                Ok(Attempt::Done(AppendResult::Written(outcome))) => {
                    self.keep_written(&mut loaded, decided, &outcome.heads);
                    return Ok(Executed {
                        receipt,
                        streams: outcome.streams,
                        replayed: false,
                        stats: ExecutionStats {
                            attempts: attempt,
                            append_latency: round_trip,
                            events_folded,
                            snapshots_refused,
                        },
                    });
                }
                Ok(Attempt::Done(AppendResult::Replayed(record))) => return replayed_from(record),
                Ok(Attempt::Beaten { stream, next }) => (stream, next),
                Err(error) => return self.settle(context, error).await,
            };
            if let Some(claim) = claims.iter().find(|c| c.stream_id == stream) {
                return Err(CommandError::ClaimTaken {
                    stream_id: claim.stream_id.clone(),
                });
            }
            let pinned = targets
                .iter()
                .any(|t| t.stream_id == stream && t.if_match.is_some());
            // The event in the way came with the refusal: fold it in and try again at once,
            // without a read or a wait (a pinned stream then fails its precondition). A step
            // either wins or learns the next event; a writer refused twice in a row backs off
            // and reads, so one that is far behind catches up in one read.
            let stream_loaded = loaded.iter_mut().find(|l| l.stream_id == stream);
            if let (Some(event), Some(stream_loaded)) = (next, stream_loaded)
                && (pinned || !stepped)
                && attempt < self.retry.max_attempts
                && event.version == stream_loaded.version + 1
            {
                stream_loaded.fold_in(std::slice::from_ref(&*event))?;
                stream_loaded.current = false;
                self.keep(stream_loaded);
                stepped = true;
                attempt += 1;
                continue;
            }
            stepped = false;
            if !pinned
                && !self
                    .retry
                    .backoff(context, attempt, read_took + round_trip)
                    .await
            {
                return Err(CommandError::Conflict {
                    stream_id: stream,
                    attempts: attempt,
                });
            }
            attempt += 1;
            let reading = Instant::now();
            // Every stream at once: one round trip, as the first load was.
            read_within(
                context,
                try_join_all(loaded.iter_mut().map(|stream| async move {
                    self.catch_up(stream).await?;
                    self.keep(stream);
                    Ok(())
                })),
            )
            .await?;
            read_took = reading.elapsed();
        }
    }

    /// The decided events with their personal values sealed by their subjects' keys (asked
    /// once per command); events without personal data pass as they are.
    async fn seal<E: crate::aggregate::DomainEvent>(
        &self,
        keyring: &mut Option<Keyring>,
        decided: Vec<Vec<E>>,
    ) -> Result<Vec<Vec<E>>, StoreError> {
        let mut sealed = Vec::with_capacity(decided.len());
        for events in decided {
            let mut stream = Vec::with_capacity(events.len());
            for event in events {
                let mut encoded = to_new_event(&event)?;
                if !crate::personal::holds_open_values(&encoded.payload) {
                    stream.push(event);
                    continue;
                }
                let keys = self.subject_keys.clone().ok_or_else(|| {
                    StoreError::misuse(format!(
                        "a {} event holds personal data, and the command service has no \
                         subject keys to seal it with (with_subject_keys)",
                        encoded.event_type
                    ))
                })?;
                keyring
                    .get_or_insert_with(|| Keyring::new(keys))
                    .seal(&mut encoded.payload)
                    .await?;
                stream.push(crate::encoding::decode_new_event(&encoded)?);
            }
            sealed.push(stream);
        }
        Ok(sealed)
    }

    /// Keeps each written stream's state as it now is: the decided events folded on the state
    /// they were decided on, at the head the write returned. The next command on the stream
    /// starts from there (the events read back equal the decided ones: writing checked it).
    fn keep_written<A: Aggregate>(
        &self,
        loaded: &mut [Loaded<A>],
        decided: Vec<Vec<A::Event>>,
        heads: &[crate::envelope::StreamHead],
    ) {
        let now = crate::envelope::now();
        for (stream, events) in loaded.iter_mut().zip(decided) {
            let Some(head) = heads.iter().find(|h| h.stream_id() == &stream.stream_id) else {
                continue;
            };
            stream.state = events
                .iter()
                .fold(std::mem::take(&mut stream.state), |state, e| {
                    state.evolve(e)
                });
            stream.version = head.version();
            stream.head = Some(head.clone());
            stream.occurred_at = Some(now);
            self.keep(stream);
        }
    }

    /// Waits for the commands of this process ahead of this one on the same streams.
    async fn queue_behind_earlier_commands<E: std::error::Error + 'static>(
        &self,
        context: &CommandContext,
        targets: &[Target],
    ) -> Result<super::gates::Held, CommandError<E>> {
        let Some(gates) = &self.gates else {
            return Ok(Vec::new());
        };
        let gates = gates.for_streams(targets.iter().map(|t| &t.stream_id));
        let mut held = Vec::with_capacity(gates.len());
        for gate in gates {
            held.push(read_within(context, async { Ok(gate.lock_owned().await) }).await?);
        }
        Ok(held)
    }

    /// One append within the deadline; a conflict is a result here, not an error.
    async fn attempt<E: std::error::Error + 'static>(
        &self,
        context: &CommandContext,
        request: AppendRequest,
    ) -> Result<Attempt, CommandError<E>> {
        match write_within(context, self.store.append(request)).await {
            Ok(result) => Ok(Attempt::Done(result)),
            Err(CommandError::Store(StoreError::Conflict {
                stream_id, next, ..
            })) => Ok(Attempt::Beaten {
                stream: stream_id,
                next,
            }),
            Err(other) => Err(other),
        }
    }

    /// The error to report for a failed append, unless it turns out to have committed: a write
    /// that failed without an answer may have, and under a command id its record says so, if
    /// the store answers in time.
    async fn settle<R, E>(
        &self,
        context: &CommandContext,
        error: CommandError<E>,
    ) -> Result<Executed<R>, CommandError<E>>
    where
        R: DeserializeOwned,
        E: std::error::Error + 'static,
    {
        let Some(command_id) = context
            .command_id
            .as_ref()
            .filter(|_| error.outcome_unknown())
        else {
            return Err(error);
        };
        let lookup = read_within::<_, E>(context, self.store.read_command(command_id)).await;
        match lookup.map(|record| record.map(|r| r.replay_for(&context.request_hash))) {
            Ok(Some(Ok(record))) => {
                tracing::info!(%command_id, "the write whose answer was lost had committed");
                replayed_from(record).map(|executed| Executed {
                    replayed: false,
                    ..executed
                })
            }
            Ok(Some(Err(mismatch))) => Err(mismatch.into()),
            _ => Err(error),
        }
    }

    /// The decision on the loaded streams. A refusal (the domain's, or a caller's `If-Match`
    /// that a newer state could meet) or a decision to write nothing, made on a state that was
    /// not read for this command, is made again on a fresh read: a stale state never answers.
    async fn decide_on<A: Aggregate>(
        &self,
        context: &CommandContext,
        targets: &[Target],
        loaded: &mut [Loaded<A>],
        rules: &Rules<
            '_,
            impl Fn(&[Loaded<A>]) -> Result<(), Denied> + Send + Sync,
            impl Fn(&[Loaded<A>]) -> Result<Vec<Vec<A::Event>>, A::Error> + Send + Sync,
        >,
    ) -> Result<Vec<Vec<A::Event>>, CommandError<A::Error>> {
        loop {
            // Access first: a caller who may not see a stream learns nothing of it, not even
            // its version from a failed If-Match.
            let verdict = (rules.authorize)(loaded)
                .map_err(CommandError::Denied)
                .and_then(|()| check_preconditions(targets, loaded))
                .and_then(|()| (rules.decide)(loaded).map_err(CommandError::Rejected));
            let stale = loaded.iter().any(|l| !l.current);
            let recheck = stale
                && match &verdict {
                    Ok(decided) => decided.iter().all(Vec::is_empty),
                    Err(CommandError::PreconditionFailed {
                        expected, actual, ..
                    }) => actual < expected,
                    Err(_) => true,
                };
            if !recheck {
                return verdict;
            }
            read_within(
                context,
                try_join_all(loaded.iter_mut().map(|stream| self.make_current(stream))),
            )
            .await?;
        }
    }

    /// Answers a command that writes nothing: with its first execution if a client's key says
    /// it ran before (a repeat answers as the first did, whatever the state says now), else
    /// with the refusal.
    async fn refuse<R, E>(
        &self,
        context: &CommandContext,
        refusal: CommandError<E>,
    ) -> Result<Executed<R>, CommandError<E>>
    where
        R: DeserializeOwned,
        E: std::error::Error + 'static,
    {
        let Some(command_id) = context.command_id.as_ref().filter(|_| !context.fresh_id) else {
            return Err(refusal);
        };
        match read_within::<_, E>(context, self.store.read_command(command_id)).await? {
            Some(record) => replayed_from(record.replay_for(&context.request_hash)?),
            None => Err(refusal),
        }
    }
}

/// The one check of a caller's `If-Match`, made before every decision: a stream that moved on
/// fails it once the event that moved it is folded in.
fn check_preconditions<A: Aggregate>(
    targets: &[Target],
    loaded: &[Loaded<A>],
) -> Result<(), CommandError<A::Error>> {
    for (target, stream) in targets.iter().zip(loaded) {
        if let Some(expected) = target.if_match.filter(|v| *v != stream.version) {
            return Err(CommandError::PreconditionFailed {
                stream_id: target.stream_id.clone(),
                expected,
                actual: stream.version,
            });
        }
    }
    Ok(())
}

/// The append of a decision: each stream's events after the head it was loaded at, the claims,
/// and the command record, every event carrying the command's metadata.
fn append_request<A: Aggregate>(
    context: &CommandContext,
    loaded: &[Loaded<A>],
    decided: &[Vec<A::Event>],
    claims: &[Claim],
    receipt: &Value,
) -> Result<AppendRequest, StoreError> {
    if decided.len() != loaded.len() {
        return Err(StoreError::misuse(format!(
            "decision returned events for {} streams, expected {}",
            decided.len(),
            loaded.len()
        )));
    }
    let metadata = context.event_metadata();
    let mut request = AppendRequest::default();
    for (stream, events) in loaded.iter().zip(decided) {
        if events.is_empty() {
            continue;
        }
        let new_events = events
            .iter()
            .map(|e| Ok(to_new_event(e)?.with_metadata(metadata.clone())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        request.writes.push(match &stream.head {
            Some(head) => StreamWrite::after(head.clone(), new_events),
            None => StreamWrite::new(
                stream.stream_id.clone(),
                ExpectedVersion::NoStream,
                new_events,
            ),
        });
    }
    for claim in claims {
        request.writes.push(StreamWrite::new(
            claim.stream_id.clone(),
            ExpectedVersion::NoStream,
            vec![claim.event.clone().with_metadata(metadata.clone())],
        ));
    }
    request.command = context.command_id.as_ref().map(|command_id| NewCommand {
        command_id: command_id.clone(),
        request_hash: context.request_hash.clone(),
        receipt: Some(receipt.clone()),
    });
    Ok(request)
}

fn replayed_from<R: DeserializeOwned, E: std::error::Error + 'static>(
    record: CommandRecord,
) -> Result<Executed<R>, CommandError<E>> {
    let receipt = serde_json::from_value(record.receipt.unwrap_or(Value::Null)).map_err(|e| {
        StoreError::corrupt(format!(
            "the receipt of command {} does not decode: {e}",
            record.command_id
        ))
    })?;
    Ok(Executed {
        receipt,
        streams: record.streams,
        replayed: true,
        stats: ExecutionStats::default(),
    })
}
