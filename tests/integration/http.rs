//! The API over real HTTP, every route and the documented errors, twice: on the local runner,
//! and on the stack as CloudFormation deploys it on the emulator (its API Gateway, SigV4, the
//! function binaries it runs, its event source mappings).

use std::time::Duration;

use eventfold_tests::Api;
use serde_json::json;

/// Runs each scenario once on the local runner (over fresh tables) and once on the deployed
/// stack (shared by the run: each scenario uses accounts of its own).
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod on_the_runner {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let running = eventfold_tests::TestEnv::new().await.serve().await;
                    super::$scenario(running.api.clone()).await;
                    running.stop().await;
                }
            )*
        }
        mod on_the_deployed_stack {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(eventfold_tests::deployed::api().await).await;
                }
            )*
        }
    };
}

on_both!(
    opened_account_is_projected_through_streams,
    accounts_lifecycle_over_http,
    users_register_once_per_email,
    idempotency_key_replays_the_first_answer,
    if_match_pins_the_version,
    errors_are_problem_json,
    concurrent_deposits_keep_every_cent,
);

/// The walking slice: an account opened over HTTP reaches the projection through Streams.
async fn opened_account_is_projected_through_streams(api: Api) {
    let id = api.open_account("Ada Lovelace", "EUR").await;
    let row = api
        .eventually(&format!("/accounts/{id}"), Duration::from_secs(20), |r| {
            r.status == 200
        })
        .await;
    assert_eq!(row.status, 200, "{row:?}");
    assert_eq!(row.body["owner"], json!("Ada Lovelace"));
    assert_eq!(row.body["currency"], json!("EUR"));
    assert_eq!(row.body["balance"], json!(0));
    assert_eq!(row.body["status"], json!("open"));
    assert_eq!(row.body["version"], json!(1));
    assert!(
        row.body["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

async fn accounts_lifecycle_over_http(api: Api) {
    let a = api.open_account("Ada", "EUR").await;
    let b = api.open_account("Charles", "EUR").await;
    let usd = api.open_account("Grace", "USD").await;

    let deposit = api
        .post(
            &format!("/accounts/{a}/deposits"),
            &json!({"amount": 10_000}),
            &[],
        )
        .await;
    assert_eq!(
        (deposit.status, deposit.body.clone()),
        (200, json!({"id": a, "version": 2}))
    );
    assert_eq!(deposit.header("etag"), Some("\"2\""));
    let withdrawal = api
        .post(
            &format!("/accounts/{a}/withdrawals"),
            &json!({"amount": 2_500}),
            &[],
        )
        .await;
    assert_eq!(withdrawal.body["version"], json!(3));
    api.post(
        &format!("/accounts/{a}/withdrawals"),
        &json!({"amount": 7_501}),
        &[],
    )
    .await
    .assert_problem(422, "insufficient-funds");

    let transfer = api
        .post(
            "/transfers",
            &json!({"from": a, "to": b, "amount": 7_000}),
            &[],
        )
        .await;
    assert_eq!(transfer.status, 201, "{transfer:?}");
    assert_eq!(transfer.body["from"], json!({"id": a, "version": 4}));
    assert_eq!(transfer.body["to"], json!({"id": b, "version": 2}));
    assert_eq!(transfer.header("etag"), Some("\"4\""));
    api.post(
        "/transfers",
        &json!({"from": a, "to": usd, "amount": 1}),
        &[],
    )
    .await
    .assert_problem(422, "currency-mismatch");
    api.post("/transfers", &json!({"from": a, "to": a, "amount": 1}), &[])
        .await
        .assert_problem(422, "same-account");
    api.post(
        "/transfers",
        &json!({"from": a, "to": "nobody", "amount": 1}),
        &[],
    )
    .await
    .assert_problem(404, "not-found");

    api.post(&format!("/accounts/{b}/close"), &json!({}), &[])
        .await
        .assert_problem(422, "balance-not-zero");
    let closed = api
        .post(
            &format!("/accounts/{a}/withdrawals"),
            &json!({"amount": 500}),
            &[],
        )
        .await;
    assert_eq!(closed.body["version"], json!(5));
    let close = api
        .post(&format!("/accounts/{a}/close"), &json!({}), &[])
        .await;
    assert_eq!(
        (close.status, close.body["version"].clone()),
        (200, json!(6))
    );
    api.post(
        &format!("/accounts/{a}/deposits"),
        &json!({"amount": 1}),
        &[],
    )
    .await
    .assert_problem(422, "account-closed");

    let state = api.get(&format!("/accounts/{a}/state")).await;
    assert_eq!(
        state.body,
        json!({"id": a, "owner": "Ada", "currency": "EUR", "balance": 0, "status": "closed", "standing_orders": {}, "version": 6})
    );
    let past = api.get(&format!("/accounts/{a}/state?as_of=2")).await;
    assert_eq!(
        (past.body["balance"].clone(), past.body["version"].clone()),
        (json!(10_000), json!(2))
    );

    let page = api
        .get(&format!("/streams/Account-{a}/events?from=2&limit=3"))
        .await;
    let types: Vec<_> = page.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![
            json!("MoneyDeposited"),
            json!("MoneyWithdrawn"),
            json!("TransferSent")
        ]
    );
    assert_eq!(page.body["next"], json!(5));
    let last = api
        .get(&format!("/streams/Account-{a}/events?from=5"))
        .await;
    assert_eq!(last.body["next"], json!(null));
    api.get(&format!("/streams/Account-{a}/verify"))
        .await
        .assert_problem(404, "not-found");
    let verify = api
        .operator()
        .await
        .get(&format!("/streams/Account-{a}/verify"))
        .await;
    assert_eq!(
        (verify.body["ok"].clone(), verify.body["events"].clone()),
        (json!(true), json!(6))
    );

    let row = api
        .eventually(&format!("/accounts/{b}"), Duration::from_secs(20), |r| {
            r.body["version"] == json!(2)
        })
        .await;
    assert_eq!(row.body["balance"], json!(7_000), "{row:?}");
}

async fn users_register_once_per_email(api: Api) {
    let ada = api.new_user(eventfold_tests::scopes::CUSTOMER).await;
    let address = format!("Ada.{}@Example.com", uuid::Uuid::new_v4().simple());
    let first = ada
        .post("/users", &json!({"email": address, "name": "Ada"}), &[])
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["version"], json!(1));
    let id = first.body["id"].as_str().expect("id");
    let events = ada.get(&format!("/streams/User-{id}/events")).await;
    let payload = &events.body["events"][0]["payload"];
    for field in ["email", "name"] {
        assert_eq!(
            payload[field]["$personal"],
            json!(id),
            "sealed for its subject"
        );
        assert!(payload[field]["sealed"].is_string(), "{payload}");
    }
    assert!(
        !payload.to_string().contains("Ada"),
        "no plain text: {payload}"
    );
    assert_eq!(events.body["events"][0]["metadata"], json!({}), "redacted");
    let profile = ada.get(&format!("/users/{id}")).await;
    assert_eq!(
        (profile.body["email"].clone(), profile.body["name"].clone()),
        (json!(address.to_lowercase()), json!("Ada")),
        "opened for its owner: {profile:?}"
    );
    api.get(&format!("/streams/User-{id}/events"))
        .await
        .assert_problem(404, "not-found");
    ada.post(
        "/users",
        &json!({"email": "another@example.com", "name": "Ada"}),
        &[],
    )
    .await
    .assert_problem(409, "already-exists");
    let impostor = api.new_user(eventfold_tests::scopes::CUSTOMER).await;
    impostor
        .post(
            "/users",
            &json!({"email": address.to_uppercase(), "name": "Impostor"}),
            &[],
        )
        .await
        .assert_problem(422, "email-taken");
    impostor
        .post(
            "/users",
            &json!({"email": "not-an-address", "name": "X"}),
            &[],
        )
        .await
        .assert_problem(400, "invalid-request");
}

async fn idempotency_key_replays_the_first_answer(api: Api) {
    let a = api.open_account("Ada", "EUR").await;
    let key = [("Idempotency-Key", "deposit-42")];
    let first = api
        .post(
            &format!("/accounts/{a}/deposits"),
            &json!({"amount": 300}),
            &key,
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    for _ in 0..3 {
        let again = api
            .post(
                &format!("/accounts/{a}/deposits"),
                &json!({"amount": 300}),
                &key,
            )
            .await;
        assert_eq!((again.status, &again.body), (first.status, &first.body));
        assert_eq!(again.header("etag"), first.header("etag"));
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
    }
    api.post(
        &format!("/accounts/{a}/deposits"),
        &json!({"amount": 301}),
        &key,
    )
    .await
    .assert_problem(422, "idempotency-key-reused");
    let events = api.get(&format!("/streams/Account-{a}/events")).await;
    assert_eq!(
        events.body["events"].as_array().expect("events").len(),
        2,
        "one open, one deposit"
    );
    let opened = api
        .post(
            "/accounts",
            &json!({"owner": "Same", "currency": "EUR"}),
            &[("Idempotency-Key", "open-1")],
        )
        .await;
    let reopened = api
        .post(
            "/accounts",
            &json!({"owner": "Same", "currency": "EUR"}),
            &[("Idempotency-Key", "open-1")],
        )
        .await;
    assert_eq!(
        opened.body, reopened.body,
        "the same account, not a second one"
    );
    assert_eq!(reopened.header("location"), opened.header("location"));
}

async fn if_match_pins_the_version(api: Api) {
    let a = api.open_account("Ada", "EUR").await;
    let ok = api
        .post(
            &format!("/accounts/{a}/deposits"),
            &json!({"amount": 5}),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, 200);
    let stale = api
        .post(
            &format!("/accounts/{a}/deposits"),
            &json!({"amount": 5}),
            &[("If-Match", "\"1\"")],
        )
        .await;
    stale.assert_problem(412, "precondition-failed");
    assert_eq!(stale.body["current_version"], json!(2));
    api.post(
        &format!("/accounts/{a}/deposits"),
        &json!({"amount": 5}),
        &[("If-Match", "W/\"x\"")],
    )
    .await
    .assert_problem(400, "invalid-request");
}

async fn errors_are_problem_json(api: Api) {
    api.get("/accounts/nobody")
        .await
        .assert_problem(404, "not-found");
    api.get("/accounts/nobody/state")
        .await
        .assert_problem(404, "not-found");
    api.get("/streams/Account-nobody/events")
        .await
        .assert_problem(404, "not-found");
    api.get("/streams/Account-nobody/verify")
        .await
        .assert_problem(404, "not-found");
    api.get("/streams/not_a_stream/events")
        .await
        .assert_problem(400, "invalid-request");
    api.get("/accounts/bad%20id")
        .await
        .assert_problem(400, "invalid-request");
    let a = api.open_account("Ada", "EUR").await;
    api.get(&format!("/streams/Account-{a}/events?limit=0"))
        .await
        .assert_problem(400, "invalid-request");
    api.get(&format!("/streams/Account-{a}/events?from=x"))
        .await
        .assert_problem(400, "invalid-request");
    api.get(&format!("/accounts/{a}/state?as_of=yesterday"))
        .await
        .assert_problem(400, "invalid-request");
    let raw = api
        .send(
            "POST",
            &format!("/accounts/{a}/deposits"),
            &[("content-type", "application/json")],
            b"{\"amount\": ".to_vec(),
        )
        .await;
    raw.assert_problem(400, "malformed-json");
    let huge = api
        .post(
            "/accounts",
            &json!({"owner": "x".repeat(70_000), "currency": "EUR"}),
            &[],
        )
        .await;
    huge.assert_problem(413, "payload-too-large");
    let correlated = api
        .get_with(
            &format!("/accounts/{a}/state"),
            &[("x-correlation-id", "trace-123")],
        )
        .await;
    assert_eq!(correlated.header("x-correlation-id"), Some("trace-123"));
    let unknown = api.get("/nowhere").await;
    assert_eq!(unknown.status, 404);
}

/// 100 deposits from parallel clients, each retried as the README says (after Retry-After,
/// with the answer's Idempotency-Key): exact balance, versions 1..N, nothing lost or doubled.
async fn concurrent_deposits_keep_every_cent(api: Api) {
    const DEPOSITS: u64 = 100;
    let a = api.open_account("Busy", "EUR").await;
    let mut clients = Vec::new();
    for n in 1..=DEPOSITS {
        let api = api.clone();
        let path = format!("/accounts/{a}/deposits");
        clients.push(tokio::spawn(async move {
            let mut key: Option<String> = None;
            loop {
                let headers: Vec<(&str, &str)> = key
                    .iter()
                    .map(|k| ("idempotency-key", k.as_str()))
                    .collect();
                let reply = api.post(&path, &json!({"amount": n}), &headers).await;
                match reply.status {
                    200 => return n,
                    // The documented answer to contention or trouble: retry after Retry-After,
                    // with the key the answer names, so a write that landed is not repeated.
                    409 | 503 => {
                        assert!(reply.header("retry-after").is_some(), "{reply:?}");
                        key = Some(reply.header("idempotency-key").expect("a key").to_owned());
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(10..100))).await;
                    }
                    other => panic!("deposit answered {other}: {reply:?}"),
                }
            }
        }));
    }
    let mut expected = 0;
    for client in clients {
        expected += client.await.expect("client");
    }
    let state = api.get(&format!("/accounts/{a}/state")).await;
    assert_eq!(state.body["balance"], json!(expected));
    assert_eq!(state.body["version"], json!(DEPOSITS + 1));
    let mut versions = Vec::new();
    let mut from = 1;
    loop {
        let page = api
            .get(&format!(
                "/streams/Account-{a}/events?from={from}&limit=1000"
            ))
            .await;
        versions.extend(
            page.body["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["version"].as_u64().expect("version")),
        );
        match page.body["next"].as_u64() {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(versions, (1..=DEPOSITS + 1).collect::<Vec<_>>());
    let operator = api.operator().await;
    assert_eq!(
        operator
            .get(&format!("/streams/Account-{a}/verify"))
            .await
            .body["ok"],
        json!(true)
    );
}
