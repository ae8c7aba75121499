//! Reactors on the local runner: the bank's standing orders run on their timers, through the
//! standing-orders function the runner invokes on its schedule, across a restart of the runner.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use eventfold::store::{EventStore, StoreSettings};
use eventfold::{RecordedEvent, StreamId};
use eventfold_tests::{TestEnv, patience};
use serde_json::json;

async fn events_of(env: &TestEnv, account: &str) -> Vec<RecordedEvent> {
    let stream = StreamId::parse(&format!("Account-{account}")).expect("an id");
    env.store(StoreSettings::default())
        .read_all(&stream, 1)
        .await
        .expect("read")
}

/// The runs a standing order has transferred: its sender's `TransferSent` events.
async fn runs(env: &TestEnv, account: &str) -> Vec<RecordedEvent> {
    events_of(env, account)
        .await
        .into_iter()
        .filter(|e| e.event_type == "TransferSent")
        .collect()
}

/// A standing order of 200 every 2 s from an account holding 1,000: five runs transfer, then
/// the runs are refused (funds short), move nothing, and are recorded on the account, each
/// once. The runner is stopped after the first
/// run, for longer than a period, and started again: the runs due meanwhile are made up, the
/// chain of runs goes on, and no run transfers twice (each transfer is caused by a run of its
/// own).
#[tokio::test]
async fn a_standing_order_runs_on_its_schedule_across_a_restart() {
    let api = TestEnv::new().await.serve().await;
    let payer = api.open_account("Payer", "EUR").await;
    api.deposit(&payer, 1_000).await;
    let payee = api.open_account("Payee", "EUR").await;
    let set = api
        .post(
            &format!("/accounts/{payer}/standing-orders"),
            &json!({"to": payee, "amount": 200, "every_seconds": 2}),
            &[],
        )
        .await;
    assert_eq!(set.status, 200, "{set:?}");
    let set_at = Instant::now();
    let deadline = set_at + Duration::from_secs(30) * patience();
    while runs(&api.env, &payer).await.is_empty() {
        assert!(Instant::now() < deadline, "the first run never came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = set_at.elapsed();
    assert!(
        first >= Duration::from_secs(2),
        "the first run came after {first:?}"
    );

    // Stopped for two periods: nothing runs meanwhile; started again, the runs due are made up.
    let env = api.stop().await;
    let stopped_with = runs(&env, &payer).await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        runs(&env, &payer).await.len(),
        stopped_with,
        "nothing runs while stopped"
    );
    let api = env.serve().await;
    let deadline = Instant::now() + Duration::from_secs(40) * patience();
    loop {
        let events = events_of(&api.env, &payer).await;
        let balance: i64 = events
            .iter()
            .map(|e| match e.event_type.as_str() {
                "MoneyDeposited" => e.payload["amount"].as_i64().unwrap_or(0),
                "TransferSent" => -e.payload["amount"].as_i64().unwrap_or(0),
                _ => 0,
            })
            .sum();
        if balance == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the runs stopped at a balance of {balance}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Two more periods: the runs go on, refused, moving nothing; each is recorded, once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let failed: Vec<_> = events_of(&api.env, &payer)
        .await
        .into_iter()
        .filter(|e| e.event_type == "StandingOrderRunFailed")
        .collect();
    let failed_runs: Vec<u64> = failed
        .iter()
        .filter_map(|e| e.payload["run"].as_u64())
        .collect();
    assert!(!failed_runs.is_empty(), "the refused runs are recorded");
    assert_eq!(
        failed_runs,
        (6..6 + failed_runs.len() as u64).collect::<Vec<_>>(),
        "runs 6, 7, … each recorded once, in order"
    );
    assert!(
        failed[0].payload["reason"]
            .as_str()
            .is_some_and(|r| r.contains("insufficient funds")),
        "{:?}",
        failed[0].payload
    );
    let sent = runs(&api.env, &payer).await;
    assert_eq!(sent.len(), 5, "1,000 pays five runs of 200, each once");
    let causes: BTreeSet<_> = sent
        .iter()
        .map(|e| e.metadata.causation_id.clone().expect("caused by its run"))
        .collect();
    assert_eq!(causes.len(), 5, "each transfer is a run of its own");
    assert!(
        sent.iter()
            .all(|e| e.metadata.actor.as_deref() == Some("reactor:standing-orders")),
        "{sent:?}"
    );
    let received = events_of(&api.env, &payee)
        .await
        .into_iter()
        .filter(|e| e.event_type == "TransferReceived")
        .count();
    assert_eq!(received, 5);
    api.stop().await;
}
