//! The command service on its own: a toy aggregate on the memory store, behind a store that
//! fails on cue. Conflicts, deadlines, lost answers, kept states, replays, `If-Match`, claims
//! and events that could not be read back.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use eventfold::command::{
    Claim, CommandContext, CommandError, CommandService, Outcome, RetryPolicy, Target,
};
use eventfold::prelude::*;
use eventfold::testing::toy::{Counter, CounterCommand, CounterError, CounterEvent};
use eventfold::testing::{AppendFault, FaultyStore};
use eventfold::{CommandId, StoreError};
use serde::{Deserialize, Serialize};

struct Setup {
    store: Arc<FaultyStore>,
    service: CommandService,
    stream: StreamId,
}

/// A service that loads from the store every time (no kept states), so each call shows in the
/// counts, with quick backoff.
fn setup() -> Setup {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let service = CommandService::new(store.clone())
        .keep_states(0)
        .with_retry(RetryPolicy {
            max_attempts: 100,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        });
    Setup {
        store,
        service,
        stream: Counter::stream_id(&EntityId::generate()),
    }
}

impl Setup {
    async fn add(
        &self,
        context: &CommandContext,
        n: u64,
    ) -> Result<Executed<()>, CommandError<CounterError>> {
        self.service
            .execute_one::<Counter, _>(
                context,
                Target::new(self.stream.clone()),
                &CounterCommand::Add(n),
                (),
            )
            .await
    }

    async fn total(&self) -> (u64, u64) {
        let loaded = CommandService::new(self.store.inner().clone())
            .load::<Counter>(&self.stream)
            .await
            .unwrap();
        (loaded.state.total, loaded.version)
    }
}

fn keyed(key: &str, hash: &str) -> CommandContext {
    CommandContext::new(CommandId::new(key).unwrap(), hash)
}

fn interloper() -> AppendFault {
    AppendFault::interloper(&CounterEvent::Added { n: 10 })
}

#[tokio::test]
async fn a_conflict_is_stepped_over_with_the_event_that_came_back() {
    let s = setup();
    s.add(&CommandContext::default(), 1).await.unwrap();
    s.store.reset_calls();
    s.store.then([interloper()]);
    let executed = s.add(&CommandContext::default(), 2).await.unwrap();
    assert_eq!(executed.stats.attempts, 2, "refused once, then written");
    let calls = s.store.calls();
    assert_eq!(
        (calls.appends, calls.reads),
        (2, 1),
        "no read after the refusal"
    );
    assert_eq!(s.total().await, (13, 3));
}

#[tokio::test]
async fn a_second_conflict_backs_off_and_catches_up_with_one_read() {
    let s = setup();
    s.add(&CommandContext::default(), 1).await.unwrap();
    s.store.reset_calls();
    s.store.then([interloper(), interloper()]);
    let executed = s.add(&CommandContext::default(), 2).await.unwrap();
    assert_eq!(executed.stats.attempts, 3);
    assert_eq!(s.store.calls().reads, 2, "the load and one catch-up");
    assert_eq!(s.total().await, (23, 4));
}

#[tokio::test]
async fn conflicts_that_never_end_stop_at_the_deadline() {
    let s = setup();
    s.store
        .always(AppendFault::interloper(&CounterEvent::Cleared));
    let started = tokio::time::Instant::now();
    let context = CommandContext::default().with_deadline(started + Duration::from_millis(150));
    let error = s.add(&context, 1).await.unwrap_err();
    assert!(
        matches!(
            error.outcome(),
            Outcome::Conflict | Outcome::Unavailable | Outcome::OutcomeUnknown
        ),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered near its deadline"
    );
}

#[tokio::test]
async fn a_lost_answer_is_found_committed_through_the_command_record() {
    let s = setup();
    s.store.then([AppendFault::LoseAnswer]);
    let executed = s.add(&keyed("k-lost", "h"), 4).await.unwrap();
    assert!(!executed.replayed, "the first execution, found");
    assert_eq!(executed.version_of(&s.stream), Some(1));
    assert_eq!(s.total().await, (4, 1), "written once");
    assert_eq!(s.store.calls().appends, 1, "not written again");
}

#[tokio::test]
async fn a_lost_answer_without_a_key_is_said_to_be_unknown() {
    let s = setup();
    s.store.then([AppendFault::LoseAnswer]);
    let error = s.add(&CommandContext::default(), 4).await.unwrap_err();
    assert_eq!(error.outcome(), Outcome::OutcomeUnknown);
    assert_eq!(s.total().await, (4, 1), "it was in fact written");
}

#[tokio::test]
async fn a_transient_failure_is_not_retried_here() {
    let s = setup();
    s.store.then([AppendFault::Unavailable]);
    let error = s.add(&keyed("k-down", "h"), 4).await.unwrap_err();
    assert_eq!(error.outcome(), Outcome::Unavailable, "{error}");
    assert_eq!(
        s.store.calls().appends,
        1,
        "transient failures are the SDK's to retry"
    );
    assert_eq!(s.total().await, (0, 0));
}

#[tokio::test]
async fn a_repeat_answers_the_first_execution_and_a_reused_key_is_refused() {
    let s = setup();
    let first = s.add(&keyed("k-1", "add 60"), 60).await.unwrap();
    // The same command again would now pass the ceiling; its answer is the first one's.
    let again = s.add(&keyed("k-1", "add 60"), 60).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.streams.clone(), again.outcome()),
        (first.streams, Outcome::Replayed)
    );
    let reused = s.add(&keyed("k-1", "add 1"), 1).await.unwrap_err();
    assert!(matches!(
        reused,
        CommandError::Store(StoreError::IdempotencyMismatch { .. })
    ));
    assert_eq!(reused.outcome(), Outcome::Invalid);
    assert_eq!(s.total().await, (60, 1));
}

#[tokio::test]
async fn many_concurrent_requests_with_one_key_write_once_and_answer_alike() {
    let s = setup();
    let service = CommandService::new(s.store.clone());
    let attempts = (0..16).map(|_| {
        let service = service.clone();
        let stream = s.stream.clone();
        async move {
            service
                .execute_one::<Counter, _>(
                    &keyed("k-race", "add 3"),
                    Target::new(stream),
                    &CounterCommand::Add(3),
                    (),
                )
                .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let streams: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().streams.clone())
        .collect();
    assert!(streams.windows(2).all(|w| w[0] == w[1]), "{streams:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|a| !a.as_ref().unwrap().replayed)
            .count(),
        1
    );
    assert_eq!(s.total().await, (3, 1));
}

/// A service that keeps states, as a warm Lambda does, on the same counted store.
fn keeping(s: &Setup) -> CommandService {
    CommandService::new(s.store.clone())
}

async fn add_on(
    service: &CommandService,
    stream: &StreamId,
    context: &CommandContext,
    n: u64,
) -> Result<Executed<()>, CommandError<CounterError>> {
    service
        .execute_one::<Counter, _>(
            context,
            Target::new(stream.clone()),
            &CounterCommand::Add(n),
            (),
        )
        .await
}

#[tokio::test]
async fn a_kept_state_is_decided_on_without_a_read_and_the_write_proves_it() {
    let s = setup();
    let keeping = keeping(&s);
    add_on(&keeping, &s.stream, &CommandContext::default(), 1)
        .await
        .unwrap();
    for (n, context) in [
        (2, CommandContext::default()),
        (3, keyed("k-kept", "add 3")),
    ] {
        s.store.reset_calls();
        add_on(&keeping, &s.stream, &context, n).await.unwrap();
        let calls = s.store.calls();
        assert_eq!(
            (calls.appends, calls.total()),
            (1, 1),
            "one request, the write, with a key: {}",
            context.command_id.is_some()
        );
    }
    // Another writer moves the stream on: the refused write brings its event back, folded in
    // for a second write, still without a read.
    s.add(&CommandContext::default(), 4).await.unwrap();
    s.store.reset_calls();
    let executed = add_on(&keeping, &s.stream, &CommandContext::default(), 5)
        .await
        .unwrap();
    assert_eq!(executed.version_of(&s.stream), Some(5));
    let calls = s.store.calls();
    assert_eq!((calls.appends, calls.total()), (2, 2), "{calls:?}");
    assert_eq!(s.total().await, (15, 5));
}

#[tokio::test]
async fn a_refusal_on_a_stale_kept_state_is_checked_against_a_fresh_read() {
    let s = setup();
    let keeping = keeping(&s);
    add_on(&keeping, &s.stream, &CommandContext::default(), 90)
        .await
        .unwrap();
    // Unknown to the keeping process, another clears the counter: 90 + 50 is refused on the
    // kept state, allowed on the stream as it is.
    s.service
        .execute_one::<Counter, _>(
            &CommandContext::default(),
            Target::new(s.stream.clone()),
            &CounterCommand::Clear,
            (),
        )
        .await
        .unwrap();
    s.store.reset_calls();
    let executed = add_on(&keeping, &s.stream, &CommandContext::default(), 50)
        .await
        .unwrap();
    assert_eq!(executed.version_of(&s.stream), Some(3));
    let calls = s.store.calls();
    assert_eq!((calls.reads, calls.appends), (1, 1), "{calls:?}");
    assert_eq!(s.total().await, (50, 3));
    // Refused on a fresh state too: the refusal stands, after the one read that proved it.
    s.store.reset_calls();
    let refused = add_on(&keeping, &s.stream, &CommandContext::default(), 60)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Rejected(CounterError::TooMuch { total: 50, n: 60 })
    ));
    assert_eq!((s.store.calls().reads, s.store.calls().appends), (1, 0));
    // A caller's If-Match that the kept state is behind is checked on a fresh read too.
    add_on(&s.service, &s.stream, &CommandContext::default(), 1)
        .await
        .unwrap();
    let pinned = keeping
        .execute_one::<Counter, _>(
            &CommandContext::default(),
            Target::new(s.stream.clone()).if_match(Some(4)),
            &CounterCommand::Add(1),
            (),
        )
        .await
        .unwrap();
    assert_eq!(pinned.version_of(&s.stream), Some(5));
}

#[tokio::test]
async fn a_repeat_needs_no_read_first_and_a_refused_repeat_still_replays() {
    let s = setup();
    let keeping = keeping(&s);
    let first = add_on(&keeping, &s.stream, &keyed("k-a", "add 10"), 10)
        .await
        .unwrap();
    // A repeat the state would allow: the write's condition on the record finds it.
    s.store.reset_calls();
    let again = add_on(&keeping, &s.stream, &keyed("k-a", "add 10"), 10)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.streams, first.streams);
    let calls = s.store.calls();
    assert_eq!((calls.appends, calls.total()), (1, 1), "{calls:?}");
    // A repeat the state now refuses: the record, read after the refusal, answers.
    let big = add_on(&keeping, &s.stream, &keyed("k-b", "add 80"), 80)
        .await
        .unwrap();
    let again = add_on(&keeping, &s.stream, &keyed("k-b", "add 80"), 80)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.streams, big.streams);
    let reused = add_on(&keeping, &s.stream, &keyed("k-b", "add 81"), 81)
        .await
        .unwrap_err();
    assert!(matches!(
        reused,
        CommandError::Store(StoreError::IdempotencyMismatch { .. })
    ));
    assert_eq!(s.total().await, (90, 2));
}

#[tokio::test]
async fn if_match_pins_the_version_and_is_never_stepped_over() {
    let s = setup();
    let pinned = |version| {
        let (service, stream) = (s.service.clone(), s.stream.clone());
        async move {
            service
                .execute_one::<Counter, _>(
                    &CommandContext::default(),
                    Target::new(stream).if_match(Some(version)),
                    &CounterCommand::Add(1),
                    (),
                )
                .await
        }
    };
    s.add(&CommandContext::default(), 1).await.unwrap();
    pinned(1).await.unwrap();
    let stale = pinned(1).await.unwrap_err();
    assert!(matches!(
        stale,
        CommandError::PreconditionFailed {
            expected: 1,
            actual: 2,
            ..
        }
    ));
    s.store.reset_calls();
    s.store.then([interloper()]);
    let beaten = pinned(2).await.unwrap_err();
    assert!(
        matches!(
            beaten,
            CommandError::PreconditionFailed {
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{beaten}"
    );
    assert_eq!((s.store.calls().appends, s.store.calls().reads), (1, 1));
    assert_eq!(beaten.outcome(), Outcome::PreconditionFailed);
}

#[tokio::test]
async fn a_refusal_is_typed_and_writes_nothing() {
    let s = setup();
    let refused = s.add(&CommandContext::default(), 101).await.unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Rejected(CounterError::TooMuch { total: 0, n: 101 })
    ));
    assert_eq!(refused.outcome(), Outcome::Rejected);
    assert_eq!(s.store.calls().appends, 0);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, eventfold::DomainEvent)]
#[serde(tag = "type", content = "data")]
enum Claimed {
    NameClaimed { by: String },
}

#[tokio::test]
async fn a_claim_is_held_by_the_first_command_alone() {
    let s = setup();
    let claim = StreamId::new("Name", "ada").unwrap();
    let with_claim = |stream: StreamId, by: &str| {
        let claims = [Claim::new(claim.clone(), &Claimed::NameClaimed { by: by.into() }).unwrap()];
        let service = s.service.clone();
        async move {
            service
                .execute::<Counter, _>(
                    &CommandContext::default(),
                    &[Target::new(stream)],
                    &claims,
                    |loaded| Ok(vec![loaded[0].state.decide(&CounterCommand::Add(1))?]),
                    (),
                )
                .await
        }
    };
    with_claim(s.stream.clone(), "one").await.unwrap();
    let other = Counter::stream_id(&EntityId::generate());
    let taken = with_claim(other.clone(), "two").await.unwrap_err();
    assert!(matches!(taken, CommandError::ClaimTaken { .. }), "{taken}");
    assert!(
        s.store.inner().read_head(&other).await.unwrap().is_none(),
        "nothing written"
    );
}

/// A counter whose events are written by hand, with a type that disagrees with its tag.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Misnamed;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum MisnamedEvent {
    Happened {},
}

impl DomainEvent for MisnamedEvent {
    const TYPES: &'static [&'static str] = &["Hapenned"];
    fn event_type(&self) -> &'static str {
        "Hapenned"
    }
}

impl Aggregate for Misnamed {
    const CATEGORY: &'static str = "Misnamed";
    const STATE_SCHEMA: u32 = 1;
    type Event = MisnamedEvent;
    type Command = ();
    type Error = CounterError;

    fn decide(&self, (): &()) -> Result<Vec<MisnamedEvent>, CounterError> {
        Ok(vec![MisnamedEvent::Happened {}])
    }

    fn evolve(self, _: &MisnamedEvent) -> Self {
        self
    }
}

#[tokio::test]
async fn an_event_that_could_not_be_read_back_is_refused_before_any_io() {
    let s = setup();
    let stream = Misnamed::stream_id(&EntityId::generate());
    let error = s
        .service
        .execute_one::<Misnamed, _>(
            &CommandContext::default(),
            Target::new(stream.clone()),
            &(),
            (),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::Store(StoreError::Unreadable { .. })),
        "{error}"
    );
    assert_eq!(error.outcome(), Outcome::Internal);
    assert_eq!(
        s.store.calls().appends,
        0,
        "refused before the store saw it"
    );
    assert!(s.store.inner().read_head(&stream).await.unwrap().is_none());
}
