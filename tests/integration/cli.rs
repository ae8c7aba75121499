//! The operator's CLI, run as a new user would: the real binary, against the emulator, on a
//! local environment of the test's own (`--prefix`).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use eventfold_tests::{RunningEnv, TestEnv, projected_accounts, projection_converges, workload};
use serde_json::{Value, json};

fn eventfold() -> Command {
    eventfold_tests::cli()
}

/// Runs the CLI with `args` on the environment's tables; its output.
fn run(env: &TestEnv, args: &[&str]) -> Output {
    eventfold()
        .arg("--prefix")
        .arg(&env.resources.prefix)
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

async fn account_with_deposits(api: &RunningEnv, deposits: u64) -> String {
    let id = api.open_account("Cli", "EUR").await;
    for amount in 1..=deposits {
        api.deposit(&id, amount).await;
    }
    id
}

#[test]
fn help_and_wrong_arguments_read_well() {
    let help = eventfold().arg("--help").output().expect("runs");
    let said = succeeded(&help);
    for command in [
        "streams",
        "verify",
        "projections",
        "snapshots",
        "dlq",
        "stats",
    ] {
        assert!(
            said.contains(command),
            "{command} missing from --help: {said}"
        );
    }
    let nested = eventfold()
        .args(["dlq", "redrive", "--help"])
        .output()
        .expect("runs");
    assert!(succeeded(&nested).contains("--yes"));
    for wrong in [
        vec!["projections", "rebuild", "accounts", "--bogus"],
        vec!["verify"],
        vec!["streams", "read"],
        vec!["rebuild"],
    ] {
        let output = eventfold().args(&wrong).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{wrong:?}");
        let error = text(&output.stderr);
        assert!(error.contains("--help"), "{wrong:?}: {error}");
        assert!(!error.contains("panicked"), "{error}");
    }
    // Queue names come from the service's template: a wrong one is answered with the right ones.
    let output = eventfold()
        .args(["dlq", "redrive", "nowhere"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(
        error.contains(
            "no dead-letter queue nowhere; there is events, projector, publisher, snapshot"
        ),
        "{error}"
    );
    let elsewhere = eventfold()
        .args(["--template", "no/such/template.yaml", "stats"])
        .output()
        .expect("runs");
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(
        text(&elsewhere.stderr).contains("--template names another"),
        "{}",
        text(&elsewhere.stderr)
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_and_a_missing_table_are_said_plainly() {
    let unreachable = eventfold()
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["--prefix", "nowhere", "verify", "--all"])
        .output()
        .expect("runs");
    assert_eq!(unreachable.status.code(), Some(1));
    let error = text(&unreachable.stderr);
    assert!(error.contains("cannot reach http://127.0.0.1:9"), "{error}");
    assert!(
        !error.contains("panicked") && error.lines().count() <= 3,
        "{error}"
    );
    let missing = eventfold()
        .args(["--prefix", "no-such-env", "stats"])
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    let error = text(&missing.stderr);
    assert!(
        error.contains("no-such-env-EventsTable does not exist"),
        "{error}"
    );
    assert!(
        !error.contains("panicked") && error.lines().count() <= 3,
        "{error}"
    );
}

#[tokio::test]
async fn streams_read_and_tail() {
    let api = TestEnv::new().await.serve().await;
    let id = account_with_deposits(&api, 3).await;
    let stream = format!("Account-{id}");
    let pretty = succeeded(&run(&api.env, &["streams", "read", &stream]));
    assert_eq!(pretty.lines().count(), 4, "{pretty}");
    assert!(
        pretty
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("MoneyDeposited"))
    );
    let json = succeeded(&run(
        &api.env,
        &["streams", "read", &stream, "--json", "--from", "3"],
    ));
    let versions: Vec<u64> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["version"]
                .as_u64()
                .expect("v")
        })
        .collect();
    assert_eq!(versions, vec![3, 4]);
    let past = succeeded(&run(
        &api.env,
        &["streams", "read", &stream, "--as-of", "2"],
    ));
    assert_eq!(past.lines().count(), 2);
    let missing = run(&api.env, &["streams", "read", "Account-nobody"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no stream Account-nobody"));

    // The tail follows what is appended after it starts.
    let tail = eventfold()
        .args([
            "--prefix",
            &api.env.resources.prefix,
            "streams",
            "tail",
            "Account",
            "--json",
            "--max",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tail starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for amount in [7, 8] {
        api.post(
            &format!("/accounts/{id}/deposits"),
            &json!({"amount": amount}),
            &[],
        )
        .await;
    }
    let waited = tokio::task::spawn_blocking(move || tail.wait_with_output())
        .await
        .expect("joined")
        .expect("tail ends");
    let followed: Vec<Value> = text(&waited.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(
        followed
            .iter()
            .map(|e| e["version"].clone())
            .collect::<Vec<_>>(),
        vec![json!(5), json!(6)]
    );
    api.stop().await;
}

#[tokio::test]
async fn verify_all_catches_an_event_altered_in_the_table() {
    let api = TestEnv::new().await.serve().await;
    let first = account_with_deposits(&api, 2).await;
    let second = account_with_deposits(&api, 4).await;
    let intact = succeeded(&run(&api.env, &["verify", "--all"]));
    // Two accounts, and the customer's user and email claim.
    assert!(intact.contains("4 streams intact, 0 broken"), "{intact}");
    // Someone with table access raises a deposit.
    let table = api.env.events_table().to_owned();
    let mut item = api
        .env
        .clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("stream_id", AttributeValue::S(format!("Account-{second}")))
        .key("version", AttributeValue::N("3".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("event");
    if let Some(AttributeValue::M(payload)) = item.get_mut("payload") {
        payload.insert("amount".into(), AttributeValue::N("9000".into()));
    }
    api.env
        .clients
        .dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .expect("tampered");
    let caught = run(&api.env, &["verify", "--all"]);
    assert_eq!(caught.status.code(), Some(1));
    let said = text(&caught.stdout);
    assert!(
        said.contains(&format!(
            "TAMPERED Account-{second}: the chain breaks at version 3"
        )),
        "{said}"
    );
    assert!(said.contains("3 streams intact, 1 broken"), "{said}");
    assert!(text(&caught.stderr).contains("1 tampered streams"));
    let one = succeeded(&run(&api.env, &["verify", &format!("Account-{first}")]));
    assert!(one.contains("1 streams intact"));
    api.stop().await;
}

#[tokio::test]
async fn projections_rebuild_reproduces_the_read_model_exactly() {
    let api = TestEnv::new().await.serve().await;
    workload(&api, 6, 60, 4, 5).await;
    assert!(projection_converges(&api.env, Duration::from_secs(60)).await);
    let rows = projected_accounts(&api.env).await;
    let totals = bank::read_model::totals(&api.env.accounts())
        .await
        .expect("totals");
    // Destructive, and nobody to ask: it refuses without --yes.
    let refused = run(&api.env, &["projections", "rebuild", "accounts"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("pass --yes"));
    let rebuilt = succeeded(&run(
        &api.env,
        &["projections", "rebuild", "accounts", "--yes"],
    ));
    assert!(rebuilt.contains("rebuilt accounts"), "{rebuilt}");
    assert_eq!(projected_accounts(&api.env).await, rows);
    assert_eq!(
        bank::read_model::totals(&api.env.accounts())
            .await
            .expect("totals"),
        totals
    );
    let listed = succeeded(&run(&api.env, &["projections", "list"]));
    assert_eq!(listed.trim(), "accounts");
    let unknown = run(&api.env, &["projections", "rebuild", "nope", "--yes"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no projection nope"));

    // The feed, as the operator sees it: whole, readable from a cursor, a consumer's lag.
    super::feed::feed_is_whole(&api.env, Duration::from_secs(30)).await;
    let events: usize = eventfold_tests::events_by_stream(&api.env)
        .await
        .values()
        .map(Vec::len)
        .sum();
    let verified = succeeded(&run(&api.env, &["feed", "verify"]));
    assert!(
        verified.contains(&format!("{events} events of")) && verified.contains("0 broken"),
        "{verified}"
    );
    let read = run(&api.env, &["feed", "read", "--limit", "5", "--json"]);
    let lines: Vec<Value> = succeeded(&read)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(text(&read.stderr).contains("next: --after "));
    let unknown = run(&api.env, &["feed", "lag", "late-accounts"]);
    assert_eq!(unknown.status.code(), Some(1), "no checkpoint yet");
    let (_, consumer) = super::feed::late_projection(&api.env).await;
    consumer.catch_up().await.expect("caught up");
    let lag = succeeded(&run(&api.env, &["feed", "lag", "late-accounts"]));
    assert!(lag.contains("late-accounts: 0 events behind"), "{lag}");
    let parked = succeeded(&run(&api.env, &["feed", "parked", "late-accounts"]));
    assert!(
        parked.contains("late-accounts: 0 parked streams"),
        "{parked}"
    );
    let redrive = run(
        &api.env,
        &["feed", "redrive", "late-accounts", "Account-none"],
    );
    assert_eq!(redrive.status.code(), Some(1));
    assert!(text(&redrive.stderr).contains("has not parked Account-none"));
    api.stop().await;
}

#[tokio::test]
async fn snapshots_backfill_and_stats() {
    let api = TestEnv::new().await.serve().await;
    let id = account_with_deposits(&api, 5).await;
    account_with_deposits(&api, 1).await;
    let backfilled = succeeded(&run(&api.env, &["snapshots", "backfill", "Account"]));
    assert!(
        backfilled.contains("2 streams; 2 snapshots written"),
        "{backfilled}"
    );
    let again = succeeded(&run(
        &api.env,
        &["snapshots", "backfill", &format!("Account-{id}")],
    ));
    assert!(again.contains("1 streams; 0 snapshots written"), "{again}");
    let wrong = run(&api.env, &["snapshots", "backfill", "Nope"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(projection_converges(&api.env, Duration::from_secs(30)).await);
    super::feed::feed_is_whole(&api.env, Duration::from_secs(30)).await;
    let stats = succeeded(&run(&api.env, &["stats"]));
    // Two accounts, and the customer's user and email claim.
    assert!(stats.contains("4 streams, 10 events"), "{stats}");
    assert!(stats.contains(&format!("Account-{id}")), "{stats}");
    assert!(stats.contains("0 events behind"), "{stats}");
    assert!(
        stats.contains("feed: 10 events indexed in 4 partitions, 0 behind"),
        "{stats}"
    );
    assert!(stats.contains("SnapshotQueue"), "{stats}");
    api.stop().await;
}

#[tokio::test]
async fn dlq_list_peek_and_redrive_empty_a_dead_letter_queue() {
    let api = TestEnv::new().await.serve().await;
    let id = account_with_deposits(&api, 2).await;
    let dead = api
        .env
        .resources
        .queue_url("SnapshotDeadLetterQueue")
        .to_owned();
    for _ in 0..3 {
        api.env
            .clients
            .sqs
            .send_message()
            .queue_url(&dead)
            .message_body(json!({"stream_id": format!("Account-{id}"), "version": 3}).to_string())
            .send()
            .await
            .expect("dead-lettered");
    }
    let listed = succeeded(&run(&api.env, &["dlq", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("snapshot") && l.contains("3 waiting")),
        "{listed}"
    );
    let peeked = succeeded(&run(&api.env, &["dlq", "peek", "snapshot", "--max", "2"]));
    assert_eq!(peeked.matches("---").count(), 2, "{peeked}");
    assert!(peeked.contains(&format!("Account-{id}")));
    let refused = run(&api.env, &["dlq", "redrive", "snapshot"]);
    assert_eq!(refused.status.code(), Some(1), "asks first");
    let redriven = succeeded(&run(&api.env, &["dlq", "redrive", "snapshot", "--yes"]));
    assert!(redriven.contains("3 messages: 3 redriven"), "{redriven}");
    let listed = succeeded(&run(&api.env, &["dlq", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("snapshot") && l.contains("0 waiting")),
        "{listed}"
    );
    api.stop().await;
}

/// `make local`'s command as a newcomer runs it: the template's resources, the user pool, the
/// demo's customers signing in and registering; then `token` mints a token of that pool, and
/// nothing the run wrote (events, the subscribers' queue, the function logs) carries an
/// unkeyed hash of a registered address: claims are keyed MACs.
#[tokio::test]
async fn local_serves_its_demo_and_no_copy_holds_an_unkeyed_email_hash() {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncBufReadExt;

    let prefix = format!("l{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut local = tokio::process::Command::from(eventfold());
    let mut child = local
        .args(["--prefix", &prefix, "local", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("eventfold local starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut said = String::new();
    let served = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            said.push_str(&line);
            said.push('\n');
            if line.contains("The API is at") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(served, Ok(true), "{said}");
    assert!(!said.contains("demo failed"), "{said}");
    let emails: Vec<String> = said
        .split("\"email\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    assert_eq!(emails.len(), 2, "the demo registers two customers: {said}");
    assert!(
        said.contains("\"status\":\"forgotten\""),
        "and forgets one: {said}"
    );
    assert!(
        said.contains("/cancel  → 200"),
        "and runs a standing order (the payee's account moved by it), then cancels it: {said}"
    );

    let token = succeeded(
        &eventfold()
            .args(["--prefix", &prefix, "token", "--user", "reader@example.com"])
            .args(["--scope", "bank/read"])
            .output()
            .expect("runs"),
    );
    let claims = eventfold_cli::identity::jwt::claims(token.trim()).expect("a JWT");
    assert_eq!(claims["cognito:groups"], json!(["bank/read"]));
    assert!(
        claims["iss"]
            .as_str()
            .is_some_and(|iss| iss.starts_with("https://cognito-idp.")),
        "{claims:?}"
    );

    // Every copy the run made.
    let env = TestEnv::new().await;
    let resources = env.discover(&prefix).await;
    let copies = eventfold_tests::every_copy(&env, &resources, &prefix).await;
    let log = eventfold_tests::local_log(&prefix);
    assert!(
        log.contains("command executed"),
        "the log is the functions'"
    );
    for email in &emails {
        let unkeyed = hex::encode(Sha256::digest(email.as_bytes()));
        assert!(
            !copies.contains(&unkeyed),
            "{email}'s unkeyed hash is stored"
        );
        assert!(!log.contains(email.as_str()), "{email} is logged");
    }
    assert!(
        copies.contains("UserEmail-"),
        "the claims were there to look at"
    );
    child.kill().await.expect("stopped");
}

/// Someone with write access to the events table changes an event, then deletes one: the
/// publisher (the stream reader that sees every change) logs each and counts it in its
/// `EventsRewritten` metric, which `EventsRewrittenAlarm` fires on; nothing is published for
/// them, and verification names the damage.
#[tokio::test]
async fn a_modified_or_removed_event_is_counted_for_the_alarm() {
    let prefix = format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (url, mut runner) = eventfold_tests::local(&prefix).await;
    let env = TestEnv::new().await;
    let resources = env.discover(&prefix).await;
    let api = eventfold_tests::Api::new(url, eventfold_tests::Caller::Anonymous)
        .with_tokens(eventfold_tests::Tokens {
            issuer: eventfold_cli::identity::TokenIssuer::for_resources(
                eventfold_tests::template(),
                &resources,
            )
            .expect("the pool"),
            cognito: env.clients.cognito.clone(),
        })
        .customer()
        .await;
    let id = api.open_account("Rewritten", "EUR").await;
    api.deposit(&id, 10).await;
    api.deposit(&id, 20).await;
    let table = resources.table("EventsTable").to_owned();
    let key = |version: u64| {
        std::collections::HashMap::from([
            (
                "stream_id".to_owned(),
                AttributeValue::S(format!("Account-{id}")),
            ),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
        ])
    };
    env.clients
        .dynamodb
        .update_item()
        .table_name(&table)
        .set_key(Some(key(2)))
        .update_expression("SET payload.amount = :raised")
        .expression_attribute_values(":raised", AttributeValue::N("1000".into()))
        .send()
        .await
        .expect("modified");
    env.clients
        .dynamodb
        .delete_item()
        .table_name(&table)
        .set_key(Some(key(3)))
        .send()
        .await
        .expect("removed");
    let rewritten = |log: &str| {
        log.lines()
            .filter(|line| line.contains("\"EventsRewritten\":"))
            .map(|line| {
                let at = line.find("\"EventsRewritten\":").unwrap_or_default() + 18;
                line[at..]
                    .split([',', '}'])
                    .next()
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .unwrap_or_default()
            })
            .sum::<f64>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rewritten(&eventfold_tests::local_log(&prefix)) < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rewrites were not counted: {}",
            eventfold_tests::local_log(&prefix)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = eventfold_tests::local_log(&prefix);
    assert_eq!(
        log.matches(eventfold::lambda::publish::EVENT_REWRITTEN)
            .count(),
        2,
        "one line each"
    );
    let verified = eventfold()
        .args(["--prefix", &prefix, "verify", &format!("Account-{id}")])
        .output()
        .expect("verify runs");
    assert_eq!(
        verified.status.code(),
        Some(1),
        "verification names the damage"
    );
    runner.kill().await.expect("stopped");
}

/// Someone with write access to the events table deletes a stream, cuts another's tail and
/// rewrites a third's event with its chain recomputed after it: each chain still verifies, but
/// against the signed anchor the last whole verification left under Object Lock, each is found
/// and named. A delete marker laid over that anchor does not hide it, its version cannot be
/// deleted, the genuine anchor stored again under a newer name is refused as replayed, and a
/// newer anchor not signed by the stack's key is refused as forged.
#[tokio::test]
async fn the_signed_anchor_names_a_deleted_stream_a_cut_tail_and_a_rechained_rewrite() {
    use eventfold::store::EventStore;

    let api = TestEnv::new().await.serve().await;
    let deleted = account_with_deposits(&api, 2).await;
    let cut = account_with_deposits(&api, 3).await;
    let rewritten = account_with_deposits(&api, 3).await;
    let first = succeeded(&run(&api.env, &["verify", "--all"]));
    assert!(
        first.contains("anchored every stream's head: s3://"),
        "{first}"
    );

    // The anchor can be hidden by a delete marker, which Object Lock allows, but not removed.
    let signed = api.env.clients.signed.clone();
    let bucket = api.env.resources.buckets["AnchorBucket"].clone();
    let bucket_url = format!("{}/{bucket}", signed.endpoint("s3"));
    let s3 = |method: &'static str, url: String| {
        let signed = signed.clone();
        async move {
            let answer = signed
                .send("s3", method, &url, &[], Vec::new())
                .await
                .expect("S3 answers");
            (
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            )
        }
    };
    let (_, listing) = s3("GET", format!("{bucket_url}?versions&prefix=anchors/")).await;
    let field = |xml: &str, name: &str| {
        xml.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(text, _)| text.to_owned())
            .expect("listed")
    };
    let (key, version) = (field(&listing, "Key"), field(&listing, "VersionId"));
    let (status, said) = s3("DELETE", format!("{bucket_url}/{key}?versionId={version}")).await;
    assert_eq!(status, 403, "the anchor is locked: {said}");
    let (status, _) = s3("DELETE", format!("{bucket_url}/{key}")).await;
    assert_eq!(status, 204, "a delete marker");

    // The tampering: every item of one stream deleted, the last two of another, and a deposit
    // raised in a third with the chain recomputed from there so that it verifies.
    let table = api.env.events_table().to_owned();
    let dynamodb = &api.env.clients.dynamodb;
    let remove = |stream: String, version: u64| {
        dynamodb
            .delete_item()
            .table_name(&table)
            .key("stream_id", AttributeValue::S(stream))
            .key("version", AttributeValue::N(version.to_string()))
            .send()
    };
    for version in 1..=3 {
        remove(format!("Account-{deleted}"), version)
            .await
            .expect("deleted");
    }
    for version in 3..=4 {
        remove(format!("Account-{cut}"), version)
            .await
            .expect("cut");
    }
    let store = api.env.store(Default::default());
    let stream = eventfold::StreamId::parse(&format!("Account-{rewritten}")).expect("id");
    let mut events = store
        .read_stream(&stream, 1, 10)
        .await
        .expect("read")
        .events;
    assert_eq!(events.len(), 4);
    events[1].payload["amount"] = json!(9000);
    for at in 1..events.len() {
        let previous = events[at - 1].chain.clone();
        events[at].chain = eventfold::chain::chain_hash(&previous, &events[at]);
        let document = eventfold::stored::encode(&events[at]).expect("encodes");
        dynamodb
            .put_item()
            .table_name(&table)
            .set_item(Some(
                eventfold::aws::item::from_document(&document).expect("an item"),
            ))
            .send()
            .await
            .expect("rewritten");
    }

    let caught = run(&api.env, &["verify", "--all"]);
    let said = text(&caught.stdout);
    assert_eq!(caught.status.code(), Some(1), "{said}");
    assert!(said.contains("0 broken"), "every chain holds: {said}");
    for finding in [
        format!("DELETED Account-{deleted}: anchored at version 3, now gone"),
        format!("CUT Account-{cut}: anchored at version 4, now ends at 2"),
        format!("REWRITTEN Account-{rewritten}: the event at version 4 is not the one anchored"),
    ] {
        assert!(said.contains(&finding), "{finding}\n{said}");
    }
    assert!(
        !said.contains("anchored every"),
        "nothing tampered is anchored: {said}"
    );
    assert!(text(&caught.stderr).contains("3 tampered streams"));

    // The genuine anchor stored again under a newer name: its signed time gives it away.
    let (_, genuine) = s3("GET", format!("{bucket_url}/{key}?versionId={version}")).await;
    let put = |name: &'static str, body: String| {
        let signed = signed.clone();
        let url = format!("{bucket_url}/anchors/{name}");
        async move {
            use base64::Engine;
            use sha2::Digest;
            let checksum = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(body.as_bytes()));
            let answer = signed
                .send(
                    "s3",
                    "PUT",
                    &url,
                    &[
                        ("content-type", "application/json"),
                        ("x-amz-sdk-checksum-algorithm", "SHA256"),
                        ("x-amz-checksum-sha256", &checksum),
                    ],
                    body.into_bytes(),
                )
                .await
                .expect("S3 answers");
            assert!(answer.status().is_success(), "{}", answer.status());
        }
    };
    put("0000000000001-replayed.json", genuine).await;
    let replayed = run(&api.env, &["verify", "--all"]);
    assert_ne!(replayed.status.code(), Some(0));
    assert!(
        text(&replayed.stderr).contains("an older anchor replayed as the latest"),
        "{}",
        text(&replayed.stderr)
    );

    // A newer anchor over today's heads, not signed by the stack's key.
    let heads: Vec<eventfold_cli::ops::anchor::Head> = Vec::new();
    let forged = json!({
        "anchored_at": "2099-01-01T00:00:00.000000Z",
        "heads": heads,
        "root": hex::encode(eventfold_cli::ops::anchor::merkle_root(&heads)),
        "key_id": "a key of the forger's",
        "signature": "MEUCIQDforged",
    })
    .to_string();
    put("0000000000000-forged.json", forged).await;
    let refused = run(&api.env, &["verify", "--all"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        text(&refused.stderr).contains("is not signed by its key: it was forged"),
        "{}",
        text(&refused.stderr)
    );
    api.stop().await;
}
