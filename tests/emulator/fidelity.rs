//! Where the emulator's deployment differs from AWS, pinned: each test asserts today's gap, so
//! the day MiniStack closes one a test fails and says what to update (README, "Local, two
//! ways"; the template's local parameters). Failure semantics of event source mappings are
//! what the local runner is for; the deployed stack proves the template's wiring.

use std::path::PathBuf;
use std::time::Duration;

use eventfold_tests::{deployed, emulator_endpoint};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `tests/fidelity/aws.py` with the SAM CLI's Python; its one JSON document.
fn aws(args: &[&str]) -> Value {
    let output = std::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/fidelity/aws.py"))
        .args(args)
        .env("AWS_ENDPOINT_URL", emulator_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("the SAM CLI's Python (make tools)");
    assert!(
        output.status.success(),
        "aws.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from aws.py")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn scratch_template(name: &str, body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&path, body).expect("template written");
    path
}

#[test]
fn metric_math_alarms_are_refused() {
    let name = unique("math");
    let template = scratch_template(
        &name,
        r#"Resources:
  RateAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics:
        - Id: errors
          ReturnData: false
          MetricStat: {Metric: {Namespace: AWS/ApiGateway, MetricName: 5xx}, Period: 300, Stat: Sum}
        - Id: rate
          Expression: "100 * errors"
          ReturnData: true
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanThreshold
"#,
    );
    let outcome = aws(&["create-stack", &name, template.to_str().expect("path")]);
    assert!(
        outcome["status"] != json!("CREATE_COMPLETE")
            && outcome["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("metric math"),
        "MiniStack now deploys metric-math alarms: drop ApiErrorRateAlarm=Disabled from \
         scripts/deploy_local.py and the README's gap list. {outcome}"
    );
}

#[test]
fn code_must_come_from_s3_not_a_local_path() {
    let name = unique("path");
    let template = scratch_template(
        &name,
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    \
         Properties: {Runtime: provided.al2023, Handler: bootstrap, CodeUri: .}\n",
    );
    let outcome = aws(&["change-set", &name, template.to_str().expect("path")]);
    assert!(
        outcome["status"] == json!("REFUSED")
            && outcome["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("S3"),
        "MiniStack now packages local CodeUri paths: deploy_local.py could hand it the \
         template as it is. {outcome}"
    );
}

#[tokio::test]
async fn the_deployed_stack_keeps_but_ignores_architecture_and_stage_throttling() {
    let outputs = &deployed::stack().outputs;
    let functions = aws(&["call", "lambda", "list_functions", "{}"]);
    let command_api = functions["Functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| {
            f["FunctionName"].as_str().is_some_and(|n| {
                n.starts_with(outputs["StackName"].as_str()) && n.contains("CommandApiFunction")
            })
        })
        .expect("the command function")
        .clone();
    assert_eq!(command_api["Architectures"], json!(["arm64"]));
    assert_ne!(
        std::env::consts::ARCH,
        "aarch64",
        "on an arm64 host this says nothing"
    );
    // The arm64 function runs the host's x86_64 build: it answers.
    let answer = deployed::api().await.get("/openapi.json").await;
    assert_eq!(
        answer.status, 200,
        "MiniStack may now honour Architectures: package arm64 builds"
    );
    let stage = aws(&[
        "call",
        "apigatewayv2",
        "get_stage",
        &json!({"ApiId": outputs["HttpApiId"], "StageName": "$default"}).to_string(),
    ]);
    assert!(
        stage["DefaultRouteSettings"]["ThrottlingRateLimit"].is_null(),
        "MiniStack now keeps stage throttling (the template sets 500/s): {stage}"
    );
}

/// The stand-in functions' invocations, from their log.
fn invocations(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn put(table: &str, keys: &[&str]) {
    let requests: Vec<Value> = keys
        .iter()
        .map(|k| json!({"PutRequest": {"Item": {"k": {"S": k}}}}))
        .collect();
    let answer = aws(&[
        "call",
        "dynamodb",
        "batch_write_item",
        &json!({"RequestItems": {table: requests}}).to_string(),
    ]);
    assert!(answer.get("Error").is_none(), "{answer}");
}

#[tokio::test]
async fn stream_mappings_ignore_failure_settings_windows_and_concurrency() {
    let name = unique("fid");
    let log = std::env::temp_dir().join(format!("{name}.jsonl"));
    let stack = aws(&["stub-stack", &name, log.to_str().expect("path")]);
    assert_eq!(stack["status"], json!("CREATE_COMPLETE"), "{stack}");
    let outputs = &stack["outputs"];
    let table = |key: &str| outputs[key].as_str().expect("table").to_owned();
    let concurrency = aws(&[
        "call",
        "lambda",
        "get_function_concurrency",
        &json!({"FunctionName": outputs["WindowFunction"]}).to_string(),
    ]);
    assert!(
        concurrency["ReservedConcurrentExecutions"].is_null(),
        "MiniStack now keeps ReservedConcurrentExecutions: {concurrency}"
    );
    let written = now_seconds();
    put(&table("PairTable"), &["p1", "p2", "p3"]);
    put(&table("FailTable"), &["f1", "f2", "f3", "f4"]);
    put(&table("WindowTable"), &["w1"]);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let seen = invocations(&log);
    let of =
        |name: &str| -> Vec<&Value> { seen.iter().filter(|i| i["name"] == json!(name)).collect() };

    // A batch window of 5 s: the emulator invokes at once.
    let window = of("window");
    let first = window.first().expect("the window function ran");
    let delay = first["start"].as_f64().unwrap_or_default() - written;
    assert!(
        delay < 3.0,
        "MiniStack now waits for MaximumBatchingWindowInSeconds ({delay:.1} s)"
    );

    // ReportBatchItemFailures: the reported record is never delivered again.
    let reported: Vec<&Value> = of("reporter")
        .iter()
        .flat_map(|i| i["keys"].as_array().into_iter().flatten())
        .filter(|k| **k == json!("p1"))
        .collect();
    assert_eq!(
        reported.len(),
        1,
        "MiniStack now redelivers records reported in batchItemFailures: {seen:?}"
    );

    // Two readers of one stream are invoked one at a time, never together.
    let mut spans: Vec<(f64, f64)> = of("reporter")
        .iter()
        .chain(of("slow").iter())
        .map(|i| {
            (
                i["start"].as_f64().unwrap_or_default(),
                i["end"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(spans.len() >= 2, "{seen:?}");
    assert!(
        spans.windows(2).all(|w| w[1].0 >= w[0].1 - 0.01),
        "MiniStack now invokes stream readers concurrently: {spans:?}"
    );

    // A failing batch: retried past MaximumRetryAttempts (1), never halved (bisect), and
    // nothing sent to the on-failure queue.
    let failing = of("failing");
    assert!(
        failing.len() > 2,
        "MiniStack now stops at MaximumRetryAttempts: {failing:?}"
    );
    assert!(
        failing
            .iter()
            .all(|i| i["keys"].as_array().map_or(0, Vec::len) == 4),
        "MiniStack now bisects failing batches: {failing:?}"
    );
    let dead = aws(&[
        "call",
        "sqs",
        "get_queue_attributes",
        &json!({"QueueUrl": outputs["FailureQueueUrl"], "AttributeNames": ["ApproximateNumberOfMessages"]})
            .to_string(),
    ]);
    assert_eq!(
        dead["Attributes"]["ApproximateNumberOfMessages"],
        json!("0"),
        "MiniStack now sends on-failure records when retries run out: {dead}"
    );
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A table CloudFormation made with `DeletionProtectionEnabled: !Ref Parameter` is described
/// with the parameter's string ("false"), not a boolean: the Rust SDK refuses the whole
/// `DescribeTable` answer. Operator commands use it only for an ETA, and go on without one.
#[test]
fn a_deployed_table_describes_deletion_protection_as_a_string() {
    let outputs = &deployed::stack().outputs;
    let described = aws(&[
        "call",
        "dynamodb",
        "describe_table",
        &json!({"TableName": outputs["EventsTableName"]}).to_string(),
    ]);
    let protection = &described["Table"]["DeletionProtectionEnabled"];
    assert!(
        protection.is_string(),
        "MiniStack now describes deletion protection as a boolean ({protection}): the \
         rebuild's ETA works on a deployed stack again"
    );
}
