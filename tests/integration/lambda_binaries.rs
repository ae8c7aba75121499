//! The functions' own binaries — their `main`, which nothing else runs — started as Lambda
//! starts a `provided.al2023` bootstrap: the template's environment resolved to this test's
//! resources, a Lambda Runtime API on 127.0.0.1, one invocation each.

use std::time::Duration;

use bytes::Bytes;
use eventfold::store::EventStore;
use eventfold_cli::local::coldstart;
use eventfold_tests::{TestEnv, emulator_endpoint, template};
use serde_json::Value;

#[tokio::test]
async fn every_function_binary_boots_from_its_template_environment_and_answers() {
    let binaries = eventfold_tests::function_binaries();
    let env = TestEnv::new().await;
    let endpoint = emulator_endpoint();
    let mut booted = Vec::new();
    for function in &template().functions {
        let environment =
            coldstart::lambda_environment(&env.resources, function, &endpoint).unwrap();
        let event = match function.binary.as_str() {
            "command-api" => coldstart::http_event(
                "POST /accounts",
                "/accounts",
                None,
                Some(r#"{"owner":"Boot","currency":"EUR"}"#),
            )
            .unwrap(),
            "query-api" => {
                coldstart::http_event("GET /openapi.json", "/openapi.json", None, None).unwrap()
            }
            "react-standing-orders" => Bytes::from_static(
                br#"{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}"#,
            ),
            _ => Bytes::from_static(br#"{"Records":[]}"#),
        };
        // A reactor polls until 5 s before its deadline, whatever the schedule sends: 8 s to it
        // is 3 s of polling.
        let timeout = Duration::from_secs(if function.binary == "react-standing-orders" {
            8
        } else {
            30
        });
        let run = coldstart::run(
            &binaries.join(&function.binary),
            &environment,
            &[event],
            timeout,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", function.logical_id));
        let response: Value = serde_json::from_slice(&run.responses[0]).unwrap();
        match function.binary.as_str() {
            "command-api" => {
                // The account the binary opened is in this test's events table.
                assert_eq!(response["statusCode"], 201, "{response}");
                let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
                let id = body["id"].as_str().unwrap();
                let events = env
                    .store(eventfold::store::StoreSettings::default())
                    .read_all(
                        &eventfold::StreamId::parse(&format!("Account-{id}")).unwrap(),
                        1,
                    )
                    .await
                    .unwrap();
                assert_eq!(events.len(), 1);
            }
            "query-api" => assert_eq!(response["statusCode"], 200, "{response}"),
            "react-standing-orders" => assert_eq!(
                response,
                serde_json::json!({"applied": 0, "parked": 0, "held": 0, "redriven": 0}),
                "nothing to react to in a new environment"
            ),
            _ => assert_eq!(response, serde_json::json!({"batchItemFailures": []})),
        }
        assert!(run.peak_rss_kib > 0, "{}", function.logical_id);
        booted.push(function.binary.clone());
    }
    booted.sort();
    assert_eq!(
        booted,
        [
            "command-api",
            "project-accounts",
            "publish-events",
            "query-api",
            "react-standing-orders",
            "snapshot-streams"
        ]
    );
}
