//! The command service on DynamoDB: what a warm process does with the state it keeps, against
//! the conditional writes of the real store.

use eventfold::CommandId;
use eventfold::command::{CommandContext, CommandError, CommandService, Target};
use eventfold::prelude::*;
use eventfold::store::StoreSettings;
use eventfold::testing::toy::{Counter, CounterCommand, CounterError};
use eventfold_tests::TestEnv;

async fn run(
    service: &CommandService,
    stream: &StreamId,
    context: &CommandContext,
    command: CounterCommand,
) -> Result<Executed<()>, CommandError<CounterError>> {
    service
        .execute_one::<Counter, _>(context, Target::new(stream.clone()), &command, ())
        .await
}

/// Sixteen processes, each with the stream's state kept (so none reads before writing), send
/// one command under one key at once: one event is written, and every answer names it.
#[tokio::test]
async fn processes_racing_one_key_write_once_and_answer_alike() {
    let env = TestEnv::new().await;
    let store = env.store(StoreSettings::default());
    let stream = Counter::stream_id(&EntityId::generate());
    let processes: Vec<CommandService> = (0..16)
        .map(|_| CommandService::new(store.clone()).with_snapshots(env.snapshots()))
        .collect();
    run(
        &processes[0],
        &stream,
        &CommandContext::default(),
        CounterCommand::Add(1),
    )
    .await
    .unwrap();
    for process in &processes {
        process.load::<Counter>(&stream).await.unwrap();
    }
    let key = CommandId::new("race-key").unwrap();
    let answers = futures::future::join_all(processes.iter().map(|process| {
        let context = CommandContext::new(key.clone(), "add 3");
        let stream = stream.clone();
        async move { run(process, &stream, &context, CounterCommand::Add(3)).await }
    }))
    .await;
    let answers: Vec<Executed<()>> = answers
        .into_iter()
        .map(|a| a.expect("every racer is answered"))
        .collect();
    assert!(
        answers.windows(2).all(|w| w[0].streams == w[1].streams),
        "one answer for all: {:?}",
        answers.iter().map(|a| &a.streams).collect::<Vec<_>>()
    );
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    let events = store.read_all(&stream, 1).await.unwrap();
    assert_eq!(events.len(), 2, "the first event and the raced one, once");
    assert_eq!(answers[0].version_of(&stream), Some(2));
}

/// A process's kept state goes stale behind another's write; a command it refuses is decided
/// again on a fresh read and succeeds, and a refusal that stands is the fresh state's.
#[tokio::test]
async fn a_stale_kept_state_never_refuses_what_the_stream_allows() {
    let env = TestEnv::new().await;
    let store = env.store(StoreSettings::default());
    let stream = Counter::stream_id(&EntityId::generate());
    let keeping = CommandService::new(store.clone()).with_snapshots(env.snapshots());
    let other = CommandService::new(store.clone()).keep_states(0);
    let plain = CommandContext::default();
    run(&keeping, &stream, &plain, CounterCommand::Add(90))
        .await
        .unwrap();
    run(&other, &stream, &plain, CounterCommand::Clear)
        .await
        .unwrap();
    let executed = run(&keeping, &stream, &plain, CounterCommand::Add(50))
        .await
        .expect("allowed on the stream as it is");
    assert_eq!(executed.version_of(&stream), Some(3));
    run(&other, &stream, &plain, CounterCommand::Add(40))
        .await
        .unwrap();
    let refused = run(&keeping, &stream, &plain, CounterCommand::Add(20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            CommandError::Rejected(CounterError::TooMuch { total: 90, n: 20 })
        ),
        "refused on the fresh total, 90: {refused:?}"
    );
    let reread = CommandService::new(store.clone()).keep_states(0);
    let loaded = reread.load::<Counter>(&stream).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (90, 4));
}
