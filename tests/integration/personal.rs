//! Personal data, forgotten for good: a user registered, given accounts and activity (a
//! transfer, a snapshot, the projection, the subscribers' queue), then forgotten, on `eventfold
//! local` as a newcomer runs it. No table, queue, dead-letter queue or log line of the run ever
//! holds their address or name in plain text (the events hold ciphertext from the start), every
//! stream verifies before and after, their accounts still fold (the owner's name erased), and
//! everyone else carries on.

use std::time::Duration;

use eventfold_cli::identity::TokenIssuer;
use eventfold_tests::{Api, Caller, TestEnv, Tokens, scopes, template};
use serde_json::{Value, json};

#[tokio::test]
async fn a_forgotten_user_leaves_no_plaintext_anywhere_and_every_stream_still_verifies() {
    let prefix = format!("p{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (url, mut runner) = eventfold_tests::local(&prefix).await;
    let env = TestEnv::new().await;
    let resources = env.discover(&prefix).await;
    let api = Api::new(url, Caller::Anonymous).with_tokens(Tokens {
        issuer: TokenIssuer::for_resources(template(), &resources).expect("the pool"),
        cognito: env.clients.cognito.clone(),
    });

    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("zelda.{tag}@example.com");
    let name = format!("Zelda Forgettable {tag}");
    let zelda = api.new_user(scopes::CUSTOMER).await;
    let registered = zelda
        .post("/users", &json!({"email": email, "name": name}), &[])
        .await;
    assert_eq!(registered.status, 201, "{registered:?}");
    let user = registered.body["id"].as_str().expect("id").to_owned();
    let first = zelda.open_account(&name, "EUR").await;
    let second = zelda.open_account(&name, "EUR").await;
    zelda.deposit(&first, 5_000).await;
    let other = api.customer().await;
    let theirs = other.open_account("Someone Else", "EUR").await;
    for (to, amount) in [(&second, 700), (&theirs, 300)] {
        let paid = zelda
            .post(
                "/transfers",
                &json!({"from": first, "to": to, "amount": amount}),
                &[],
            )
            .await;
        assert_eq!(paid.status, 201, "{paid:?}");
    }
    let operator = api.operator().await;
    let row = zelda
        .eventually(
            &format!("/accounts/{first}"),
            Duration::from_secs(30),
            |r| r.body["version"] == json!(4),
        )
        .await;
    assert_eq!(
        row.body["owner"],
        json!(name),
        "opened for its owner: {row:?}"
    );
    let profile = zelda.get(&format!("/users/{user}")).await;
    assert_eq!(
        (profile.body["email"].clone(), profile.body["name"].clone()),
        (json!(email), json!(name))
    );
    // A snapshot of each of Zelda's accounts, taken by the service's own snapshot function.
    let target = eventfold_cli::ops::Target::for_resources(
        std::sync::Arc::new(template().clone()),
        &resources,
        &env.clients,
        eventfold_tests::function_binaries().to_path_buf(),
        &eventfold_tests::emulator_endpoint(),
    )
    .expect("the operator's view");
    let backfilled = eventfold_cli::ops::snapshots::backfill(&target, "Account")
        .await
        .expect("backfilled");
    assert!(backfilled.written >= 3, "{backfilled:?}");

    // Stored as ciphertext from the start: nothing to find even before forgetting.
    let before = eventfold_tests::every_copy(&env, &resources, &prefix).await;
    assert!(
        before.contains("$personal"),
        "the personal values are there, sealed"
    );
    for secret in [&email, &name] {
        assert!(
            !before.contains(secret.as_str()),
            "{secret} is stored in plain text"
        );
    }

    let forgotten = zelda
        .send("DELETE", &format!("/users/{user}"), &[], Vec::new())
        .await;
    assert_eq!(
        (forgotten.status, forgotten.body["forgotten"].clone()),
        (200, json!(true)),
        "{forgotten:?}"
    );
    let again = zelda
        .send("DELETE", &format!("/users/{user}"), &[], Vec::new())
        .await;
    again.assert_problem(404, "not-found");

    // Every read shows the fields as erased; the accounts still fold, their money intact.
    let profile = operator.get(&format!("/users/{user}")).await;
    assert_eq!(
        (
            profile.body["email"].clone(),
            profile.body["name"].clone(),
            profile.body["status"].clone()
        ),
        (Value::Null, Value::Null, json!("forgotten")),
        "{profile:?}"
    );
    let state = operator.get(&format!("/accounts/{first}/state")).await;
    assert_eq!(
        (
            state.status,
            state.body["owner"].clone(),
            state.body["balance"].clone()
        ),
        (200, Value::Null, json!(4_000)),
        "{state:?}"
    );
    let row = operator.get(&format!("/accounts/{second}")).await;
    assert_eq!((row.status, row.body["owner"].clone()), (200, Value::Null));
    // No new personal data of theirs can be written; everyone else carries on.
    zelda
        .post(
            "/accounts",
            &json!({"owner": "Back", "currency": "EUR"}),
            &[],
        )
        .await
        .assert_problem(422, "not-registered");
    other.deposit(&theirs, 10).await;
    let paid = other
        .post(
            "/transfers",
            &json!({"from": theirs, "to": second, "amount": 10}),
            &[],
        )
        .await;
    assert_eq!(
        paid.status, 201,
        "paying a forgotten user's account: {paid:?}"
    );

    // Every stream verifies, before and after: the chain covers the ciphertext, which stays.
    let verified = eventfold_tests::cli()
        .args(["--prefix", &prefix, "verify", "--all"])
        .output()
        .expect("verify runs");
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains(" 0 broken"),
        "{said}"
    );

    let after = eventfold_tests::every_copy(&env, &resources, &prefix).await;
    for secret in [&email, &name] {
        assert!(
            !after.contains(secret.as_str()),
            "{secret} is left somewhere"
        );
    }

    // An operator forgets someone from the command line, through the same route.
    let ada = api.new_user(scopes::CUSTOMER).await;
    let registered = ada
        .post(
            "/users",
            &json!({"email": format!("ada.{tag}@example.com"), "name": "Ada"}),
            &[],
        )
        .await;
    let ada_id = registered.body["id"].as_str().expect("id").to_owned();
    let forget = |extra: &[&str]| {
        eventfold_tests::cli()
            .args(["--prefix", &prefix, "forget", &ada_id])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("forget runs")
    };
    let unasked = forget(&[]);
    assert!(
        !unasked.status.success() && String::from_utf8_lossy(&unasked.stderr).contains("--yes"),
        "a destructive step is confirmed: {unasked:?}"
    );
    assert_eq!(
        operator.get(&format!("/users/{ada_id}")).await.body["status"],
        json!("registered"),
        "nothing forgotten unasked"
    );
    let forgot = forget(&["--yes"]);
    assert!(
        forgot.status.success()
            && String::from_utf8_lossy(&forgot.stdout).contains(&format!(
                "forgot {ada_id} (DELETE /users/{{id}} as arn:aws:iam::"
            )),
        "{forgot:?}"
    );
    let profile = operator.get(&format!("/users/{ada_id}")).await;
    assert_eq!(
        (profile.body["status"].clone(), profile.body["name"].clone()),
        (json!("forgotten"), Value::Null),
        "{profile:?}"
    );
    let twice = forget(&["--yes"]);
    assert!(
        !twice.status.success() && String::from_utf8_lossy(&twice.stderr).contains("answered 404"),
        "{twice:?}"
    );
    runner.kill().await.expect("stopped");
}
