//! Commands under network faults between the functions and the emulator: resets, lost answers
//! and a blackhole, injected by a TCP proxy. A client that retries with the key it was given
//! gets each command applied exactly once, or refused; never a partial transfer, never a
//! duplicate; streams stay gap-free with intact chains, money is conserved, and the read model
//! converges once the faults end.
//!
//! Bounded here (`FAULT_COMMANDS`, default 160); `make soak` runs it long.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventfold::store::EventStore;
use eventfold_tests::faults::{FaultProxy, Faults};
use eventfold_tests::{
    RunningEnv, TestEnv, emulator_endpoint, events_by_stream, projection_converges,
};
use futures::StreamExt;
use serde_json::{Value, json};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the client side of one command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Applied (2xx), after this many attempts.
    Applied,
    /// Refused by a business rule (422): nothing written.
    Refused,
}

#[derive(Debug, Default)]
struct ClientStats {
    attempts: AtomicU64,
    unavailable: AtomicU64,
    outcome_unknown: AtomicU64,
    conflicts: AtomicU64,
    transport: AtomicU64,
}

/// Sends one command until it is applied or refused, always with the same key, as the README
/// tells clients to; gives up (and fails the test) only past `patience`.
async fn until_settled(
    api: &RunningEnv,
    stats: &ClientStats,
    path: &str,
    body: &Value,
    key: &str,
    patience: Duration,
) -> Ended {
    let started = Instant::now();
    loop {
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let sent = api
            .request(reqwest::Method::POST, path)
            .header("idempotency-key", key)
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let echoed = answer
                    .headers()
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let document: Value = answer.json().await.unwrap_or(Value::Null);
                match status {
                    200 | 201 => return Ended::Applied,
                    422 => return Ended::Refused,
                    409 => {
                        stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        assert_eq!(
                            echoed.as_deref(),
                            Some(key),
                            "a 503 names the key to retry with"
                        );
                        let kind = document["type"].as_str().unwrap_or_default();
                        if kind.ends_with("/outcome-unknown") {
                            stats.outcome_unknown.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert!(kind.ends_with("/store-unavailable"), "{document}");
                            stats.unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => panic!("{path} answered {other}: {document}"),
                }
            }
            Err(_) => {
                stats.transport.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert!(started.elapsed() < patience, "{path} ({key}) never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn commands_under_faults_apply_once_or_not_at_all() {
    let commands = setting("FAULT_COMMANDS", 160) as usize;
    let accounts = setting("FAULT_ACCOUNTS", 6) as usize;
    let seed = setting("FAULT_SEED", 20_261_130);
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&emulator_endpoint(), seed).await;
    let api = Arc::new(env.serve_through(&proxy.endpoint).await);
    let mut ids = Vec::new();
    for n in 0..accounts {
        ids.push(api.open_account(&format!("Faulty {n}"), "EUR").await);
    }
    let stats = Arc::new(ClientStats::default());
    let patience = Duration::from_secs(120) * eventfold_tests::patience();
    // Funding, before the faults.
    for id in &ids {
        let ended = until_settled(
            &api,
            &stats,
            &format!("/accounts/{id}/deposits"),
            &json!({"amount": 10_000}),
            &format!("fund-{id}"),
            patience,
        )
        .await;
        assert_eq!(ended, Ended::Applied);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let plan: Vec<(String, Value, String)> = (0..commands)
        .map(|n| {
            let a = &ids[rng.usize(..ids.len())];
            let b = &ids[rng.usize(..ids.len())];
            let amount = rng.u64(1..2_000);
            let key = format!("cmd-{n}-{seed}");
            match rng.u8(0..4) {
                0 => (
                    format!("/accounts/{a}/deposits"),
                    json!({"amount": amount}),
                    key,
                ),
                1 => (
                    format!("/accounts/{a}/withdrawals"),
                    json!({"amount": amount}),
                    key,
                ),
                _ if a != b => (
                    "/transfers".to_owned(),
                    json!({"from": a, "to": b, "amount": amount}),
                    key,
                ),
                _ => (
                    format!("/accounts/{a}/deposits"),
                    json!({"amount": amount}),
                    key,
                ),
            }
        })
        .collect();
    proxy.set(Faults {
        reset: 0.04,
        lose_answer: 0.04,
        blackhole_until: None,
    });
    let blackhole = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            proxy.set(Faults {
                reset: 0.04,
                lose_answer: 0.04,
                blackhole_until: Some(Instant::now() + Duration::from_secs(3)),
            });
        })
    };
    let outcomes: Vec<(String, Ended)> = futures::stream::iter(plan.clone())
        .map(|(path, body, key)| {
            let (api, stats) = (api.clone(), stats.clone());
            async move {
                let ended = until_settled(&api, &stats, &path, &body, &key, patience).await;
                (key, ended)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    blackhole.await.expect("blackhole");
    proxy.heal();
    let outcomes: BTreeMap<String, Ended> = outcomes.into_iter().collect();

    // Exactly once: every applied key wrote exactly its events, every refused key none.
    let streams = events_by_stream(&api.env).await;
    let mut by_key: BTreeMap<String, Vec<&eventfold::RecordedEvent>> = BTreeMap::new();
    for event in streams.values().flatten() {
        if let Some(id) = &event.metadata.command_id {
            by_key
                .entry(client_key(id).to_owned())
                .or_default()
                .push(event);
        }
    }
    let mut duplicated = 0;
    let mut lost = 0;
    for (path, _, key) in &plan {
        let written = by_key.get(key).map_or(0, Vec::len);
        let expected = match outcomes[key] {
            Ended::Applied if path == "/transfers" => 2,
            Ended::Applied => 1,
            Ended::Refused => 0,
        };
        duplicated += usize::from(written > expected);
        lost += usize::from(written < expected);
    }
    // Never a partial transfer: each transfer id is in exactly two events, one per side.
    let mut transfers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for event in streams.values().flatten() {
        if let Some(id) = event.payload.get("transfer_id").and_then(Value::as_str) {
            transfers
                .entry(id.to_owned())
                .or_default()
                .insert(event.event_type.clone());
        }
    }
    let partial = transfers.values().filter(|sides| sides.len() != 2).count();
    // Gap-free, intact chains.
    let store = api.env.store(eventfold::store::StoreSettings::default());
    for (stream, events) in &streams {
        assert!(
            events.iter().zip(1..).all(|(e, v)| e.version == v),
            "{stream} has a gap"
        );
        let stream_id = eventfold::StreamId::parse(stream).expect("id");
        assert!(
            store
                .verify_stream(&stream_id)
                .await
                .expect("verify")
                .is_intact(),
            "{stream}'s chain is broken"
        );
    }
    // Money: the sum of balances is what came in minus what went out.
    let mut balance = 0i64;
    for event in streams.values().flatten() {
        let amount = event
            .payload
            .get("amount")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match event.event_type.as_str() {
            "MoneyDeposited" | "TransferReceived" => balance += amount,
            "MoneyWithdrawn" | "TransferSent" => balance -= amount,
            _ => {}
        }
    }
    let deposited: i64 = plan
        .iter()
        .filter(|(path, _, key)| path.ends_with("/deposits") && outcomes[key] == Ended::Applied)
        .map(|(_, body, _)| body["amount"].as_i64().unwrap_or(0))
        .sum();
    let withdrawn: i64 = plan
        .iter()
        .filter(|(path, _, key)| path.ends_with("/withdrawals") && outcomes[key] == Ended::Applied)
        .map(|(_, body, _)| body["amount"].as_i64().unwrap_or(0))
        .sum();
    let funded = 10_000 * ids.len() as i64;
    let applied = outcomes.values().filter(|e| **e == Ended::Applied).count();
    eprintln!(
        "faults: {commands} commands ({applied} applied, {} refused) in {} requests; \
         injected {} faults ({} resets, {} lost answers, {} blackholed) over {} connections; \
         answers 503 store-unavailable {}, 503 outcome-unknown {}, 409 {}, transport errors {}; \
         lost {lost}, duplicated {duplicated}, partial transfers {partial}",
        commands - applied,
        stats.attempts.load(Ordering::Relaxed),
        proxy.stats.injected(),
        proxy.stats.resets.load(Ordering::Relaxed),
        proxy.stats.lost_answers.load(Ordering::Relaxed),
        proxy.stats.blackholed.load(Ordering::Relaxed),
        proxy.stats.connections.load(Ordering::Relaxed),
        stats.unavailable.load(Ordering::Relaxed),
        stats.outcome_unknown.load(Ordering::Relaxed),
        stats.conflicts.load(Ordering::Relaxed),
        stats.transport.load(Ordering::Relaxed),
    );
    assert_eq!((lost, duplicated, partial), (0, 0, 0));
    assert_eq!(
        balance,
        funded + deposited - withdrawn,
        "money is conserved"
    );
    assert!(proxy.stats.injected() > 0, "faults were injected");
    // Once the network heals, the read model catches up with every event.
    assert!(
        projection_converges(&api.env, Duration::from_secs(90)).await,
        "the read model did not converge after the faults"
    );
}

/// A blackhole between the function and the store: the command answers within the function's
/// deadline (the template's 15 s less the margin), not when Lambda would kill it, with a 503
/// that names its key; retried with that key after the network heals, it applies once.
#[tokio::test]
async fn a_command_in_a_blackhole_answers_within_its_deadline() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&emulator_endpoint(), 7).await;
    let api = env.serve_through(&proxy.endpoint).await;
    let id = api.open_account("Blackholed", "EUR").await;
    proxy.set(Faults {
        blackhole_until: Some(Instant::now() + Duration::from_secs(30)),
        ..Faults::default()
    });
    let started = Instant::now();
    let reply = api
        .post(
            &format!("/accounts/{id}/deposits"),
            &json!({"amount": 5}),
            &[("Idempotency-Key", "through-the-dark")],
        )
        .await;
    let took = started.elapsed();
    proxy.heal();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("idempotency-key"), Some("through-the-dark"));
    let timeout = eventfold_tests::template()
        .function_by_binary("command-api")
        .expect("command API")
        .timeout_seconds;
    assert!(
        took < Duration::from_secs(u64::from(timeout)),
        "answered after {took:?}, past the function's {timeout} s"
    );
    let retried = api
        .post(
            &format!("/accounts/{id}/deposits"),
            &json!({"amount": 5}),
            &[("Idempotency-Key", "through-the-dark")],
        )
        .await;
    assert_eq!(retried.status, 200, "{retried:?}");
    let streams = events_by_stream(&api.env).await;
    let deposits = streams[&format!("Account-{id}")]
        .iter()
        .filter(|e| e.metadata.command_id.as_deref().map(client_key) == Some("through-the-dark"))
        .count();
    assert_eq!(deposits, 1, "applied exactly once");
}

/// The client's key in a stored command id, which is namespaced by its principal
/// (`<tag>/<key>`; the tag holds no `/`).
fn client_key(command_id: &str) -> &str {
    command_id
        .split_once('/')
        .map_or(command_id, |(_, key)| key)
}
