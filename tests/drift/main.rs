//! Code and template cannot drift: the checks every service passes (eventfold_cli::drift), and
//! the bank's own: its read-model table's key, function crates, routes in code, template and
//! OpenAPI, the dashboard's first metrics.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bank::names::accounts;
use eventfold::names::{commands, events, snapshots};
use eventfold_cli::drift;
use eventfold_cli::local::template::Template;

fn template() -> Template {
    Template::load(&eventfold_tests::template_path()).unwrap()
}

/// A command service over memory stores, to ask the functions which routes they serve.
fn memory_commands() -> eventfold::command::CommandService {
    eventfold::command::CommandService::new(std::sync::Arc::new(
        eventfold::store::MemoryStore::new(),
    ))
}

#[test]
fn tables_have_the_keys_the_code_uses() {
    let t = template();
    let table = |id: &str| t.table(id).unwrap_or_else(|| panic!("{id} missing"));
    let events_table = table("EventsTable");
    assert_eq!(events_table.hash_key, events::STREAM_ID);
    assert_eq!(events_table.range_key.as_deref(), Some(events::VERSION));
    assert_eq!(events_table.attributes[events::STREAM_ID], "S");
    assert_eq!(events_table.attributes[events::VERSION], "N");
    assert_eq!(
        events_table.stream_view_type.as_deref(),
        Some("NEW_IMAGE"),
        "consumers decode NEW_IMAGE"
    );
    let commands_table = table("CommandsTable");
    assert_eq!(
        (
            commands_table.hash_key.as_str(),
            commands_table.range_key.as_deref()
        ),
        (commands::COMMAND_ID, None)
    );
    assert_eq!(commands_table.attributes[commands::COMMAND_ID], "S");
    assert_eq!(
        commands_table.ttl_attribute.as_deref(),
        Some(commands::EXPIRES_AT)
    );
    let snapshots_table = table("SnapshotsTable");
    assert_eq!(
        (
            snapshots_table.hash_key.as_str(),
            snapshots_table.attributes[snapshots::STREAM_ID].as_str()
        ),
        (snapshots::STREAM_ID, "S")
    );
    let accounts_table = table("AccountsTable");
    assert_eq!(
        (
            accounts_table.hash_key.as_str(),
            accounts_table.attributes[accounts::ACCOUNT_ID].as_str()
        ),
        (accounts::ACCOUNT_ID, "S")
    );
    let keys_table = table("SubjectKeysTable");
    assert_eq!(
        (
            keys_table.hash_key.as_str(),
            keys_table.attributes[eventfold::names::subject_keys::SUBJECT].as_str()
        ),
        (eventfold::names::subject_keys::SUBJECT, "S")
    );
    let feed_table = table("FeedTable");
    assert_eq!(
        (
            feed_table.hash_key.as_str(),
            feed_table.range_key.as_deref(),
            feed_table.attributes[eventfold::names::feed::PK].as_str(),
            feed_table.attributes[eventfold::names::feed::SK].as_str(),
        ),
        (
            eventfold::names::feed::PK,
            Some(eventfold::names::feed::SK),
            "S",
            "N"
        )
    );
    assert_eq!(t.tables.len(), 7, "every table is used by the code");
}

#[test]
fn every_function_crate_has_a_function_and_vice_versa() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let crates: BTreeSet<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let functions: BTreeSet<String> = template()
        .functions
        .iter()
        .map(|f| f.binary.clone())
        .collect();
    assert_eq!(crates, functions);
    let workspace =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .unwrap();
    for name in &crates {
        assert!(
            workspace.contains(&format!("\"functions/{name}\"")),
            "{name} is a workspace member"
        );
    }
}

#[test]
fn the_openapi_document_describes_exactly_the_routes_served() {
    let served: BTreeSet<String> = functions().into_iter().flat_map(|f| f.routes).collect();
    let openapi: serde_json::Value = serde_json::from_str(bank::api::OPENAPI_JSON).unwrap();
    let mut documented = BTreeSet::new();
    for (path, operations) in openapi["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert_eq!(documented, served);
}

/// The document's links (the flows a client and schemathesis' stateful phase follow) name real
/// operations and set exactly their path parameters.
#[test]
fn openapi_links_name_real_operations_and_their_path_parameters() {
    let openapi: serde_json::Value = serde_json::from_str(bank::api::OPENAPI_JSON).unwrap();
    let resolve = |value: &serde_json::Value| -> serde_json::Value {
        value["$ref"]
            .as_str()
            .and_then(|r| openapi.pointer(r.trim_start_matches('#')).cloned())
            .unwrap_or_else(|| value.clone())
    };
    let mut path_parameters = BTreeMap::new();
    let mut links = Vec::new();
    for operations in openapi["paths"].as_object().unwrap().values() {
        for operation in operations.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            let names: BTreeSet<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(resolve)
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            path_parameters.insert(id.clone(), names);
            for response in operation["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links.push((id.clone(), name.clone(), link.clone()));
                }
            }
        }
    }
    assert!(links.len() >= 10, "the flows are documented");
    for (from, name, link) in links {
        let target = link["operationId"].as_str().unwrap();
        let wanted = path_parameters
            .get(target)
            .unwrap_or_else(|| panic!("{from} link {name}: no operation {target}"));
        let given: BTreeSet<String> = link["parameters"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(&given, wanted, "{from} link {name} → {target}");
        for expression in link["parameters"].as_object().unwrap().values() {
            let text = expression.as_str().unwrap();
            assert!(
                text.contains("$response.body#/") || text.contains("$request.path."),
                "{from} link {name}: {text}"
            );
        }
    }
}

/// Every function binary of the bank with its contract and routes, as its code declares them.
fn functions() -> Vec<drift::Function> {
    let commands = command_api::api(bank::service::BankingService::new(
        memory_commands(),
        bank::testing::claim_key(),
    ));
    let queries = query_api::api(
        memory_commands(),
        std::sync::Arc::new(eventfold::projection::MemoryReadModel::new("account_id")),
        bank::testing::subject_keys(),
        std::sync::Arc::new(eventfold::feed::MemoryFeed::new(4)),
    );
    vec![
        drift::Function::new("command-api", command_api::CONTRACT).routes(commands.route_keys()),
        drift::Function::new("query-api", query_api::CONTRACT).routes(queries.route_keys()),
        drift::Function::new("project-accounts", project_accounts::CONTRACT),
        drift::Function::new("publish-events", publish_events::CONTRACT),
        drift::Function::new("snapshot-streams", snapshot_streams::CONTRACT),
        drift::Function::new("react-standing-orders", react_standing_orders::CONTRACT),
    ]
}

/// The checks every service's template passes (eventfold_cli::drift): stream readers and
/// their mappings, environment, least-privilege IAM, no rewriting of events, queues and
/// dead-letter queues, the dashboard.
#[test]
fn the_template_is_what_the_functions_code_needs() {
    let drift = drift::check_file(&eventfold_tests::template_path(), &functions());
    assert!(
        drift.is_empty(),
        "the template drifted from the code:\n{drift}"
    );
}

#[test]
fn the_events_stream_is_read_by_the_projector_and_the_publisher() {
    let readers: Vec<String> = template()
        .functions
        .iter()
        .flat_map(|f| {
            f.stream_sources
                .iter()
                .filter(|s| s.table == "EventsTable")
                .map(|_| f.logical_id.clone())
        })
        .collect();
    assert_eq!(
        readers,
        vec!["ProjectAccountsFunction", "PublishEventsFunction"]
    );
}

#[test]
fn the_dashboard_shows_the_metrics_an_operator_needs_first() {
    let source = std::fs::read_to_string(eventfold_tests::template_path()).unwrap();
    for required in [
        "ConflictsRetried",
        "AppendLatency",
        "EventsProjected",
        "ProjectionLag",
        "EventsFoldedPastSnapshot",
    ] {
        assert!(
            source.contains(&format!("\"Eventfold\", \"{required}\"")),
            "the dashboard misses {required}"
        );
    }
}

/// Reads cannot starve commands nor commands reads: each API function has concurrency of its
/// own, and the routes whose work grows with a stream's length are throttled below the stage.
#[test]
fn api_functions_have_their_own_concurrency_and_heavy_routes_their_own_throttles() {
    let text = std::fs::read_to_string(eventfold_tests::template_path()).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let resources = &root["Resources"];
    for function in [
        "CommandApiFunction",
        "QueryApiFunction",
        "SnapshotStreamsFunction",
    ] {
        assert!(
            !resources[function]["Properties"]["ReservedConcurrentExecutions"].is_null(),
            "{function} has no reserved concurrency"
        );
    }
    let default_rate = root["Parameters"]["ApiThrottlingRateLimit"]["Default"]
        .as_i64()
        .unwrap();
    let settings = resources["HttpApiStage"]["Properties"]["RouteSettings"]
        .as_mapping()
        .expect("route settings");
    let keys: BTreeSet<String> = template()
        .routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    for heavy in [
        "GET /streams/{stream_id}/verify",
        "GET /streams/{stream_id}/events",
        "GET /accounts/{id}/state",
    ] {
        assert!(keys.contains(heavy), "{heavy} is a route");
        let rate = settings
            .get(heavy)
            .and_then(|s| s["ThrottlingRateLimit"].as_i64())
            .unwrap_or_else(|| panic!("{heavy} has no throttle of its own"));
        assert!(
            rate < default_rate,
            "{heavy}: {rate} is not below {default_rate}"
        );
    }
    for key in settings.keys() {
        assert!(keys.contains(key.as_str().unwrap()), "{key:?} is no route");
    }
}

/// The template counts refused snapshots by the very line the library logs, on the log group
/// of every function that loads with snapshots, and alarms on any.
#[test]
fn refused_snapshots_are_counted_from_the_line_the_library_logs() {
    let text = std::fs::read_to_string(eventfold_tests::template_path()).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let resources = root["Resources"].as_mapping().unwrap();
    let filters: Vec<&serde_norway::Value> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Logs::MetricFilter"))
        .collect();
    let counted: BTreeSet<String> = filters
        .iter()
        .filter(|f| {
            f["Properties"]["FilterPattern"]
                .as_str()
                .is_some_and(|p| p.trim_matches('"') == eventfold::command::SNAPSHOT_REFUSED)
                && f["Properties"]["MetricTransformations"][0]["MetricName"].as_str()
                    == Some("SnapshotsRefused")
        })
        .filter_map(|f| match &f["Properties"]["LogGroupName"] {
            serde_norway::Value::Tagged(tagged) => tagged.value.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(
        counted,
        BTreeSet::from([
            "CommandApiLogs".to_owned(),
            "QueryApiLogs".to_owned(),
            "SnapshotStreamsLogs".to_owned()
        ])
    );
    for function in template().functions {
        let logs = format!("{}Logs", function.logical_id.trim_end_matches("Function"));
        assert_eq!(
            resources[logs.as_str()]["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{logs}"
        );
    }
    let alarm = &resources["SnapshotRefusedAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"].as_str(), Some("SnapshotsRefused"));
    assert_eq!(alarm["Threshold"].as_i64(), Some(0));
}

/// The text of a scalar, or of a tagged one (`!Sub "…"`, `!Ref X`).
fn scalar(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::Tagged(tagged) => scalar(&tagged.value),
        serde_norway::Value::String(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A statement's actions, or a condition's values, as a set of texts.
fn texts(value: &serde_norway::Value) -> BTreeSet<String> {
    match value {
        serde_norway::Value::Sequence(items) => items.iter().map(scalar).collect(),
        serde_norway::Value::Null => BTreeSet::new(),
        other => BTreeSet::from([scalar(other)]),
    }
}

/// Immutability and keys in the template itself: the events table's resource policy denies
/// every rewriting action to all but the break-glass role; every table, internal queue, log
/// group and the anchor bucket is encrypted with the stack's data key, whose policy lets it be
/// used only through the stack's services by the functions' roles (by the path every function
/// role has), the operator role and the break-glass role.
#[test]
fn events_cannot_be_rewritten_and_the_data_key_admits_only_the_stacks_roles() {
    let text = std::fs::read_to_string(eventfold_tests::template_path()).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let resources = root["Resources"].as_mapping().unwrap();

    let policy = &resources["EventsTable"]["Properties"]["ResourcePolicy"]["PolicyDocument"];
    let statements = policy["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let deny = &statements[0];
    assert_eq!(deny["Effect"].as_str(), Some("Deny"));
    assert_eq!(scalar(&deny["Principal"]), "*");
    let denied = texts(&deny["Action"]);
    for action in [
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTimeToLive",
    ] {
        assert!(denied.contains(action), "{action} is not denied");
    }
    assert_eq!(
        texts(&deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]),
        BTreeSet::from([
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${BreakGlassRoleName}".to_owned()
        ])
    );

    let role_path = scalar(&root["Globals"]["Function"]["RolePath"]);
    assert_eq!(role_path, "/${AWS::StackName}/");
    let key = &resources["DataKey"]["Properties"];
    assert_eq!(key["EnableKeyRotation"].as_bool(), Some(true));
    let role = |name: &str| format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{name}");
    let mut users = BTreeSet::new();
    for statement in key["KeyPolicy"]["Statement"].as_sequence().unwrap() {
        let principal = &statement["Principal"];
        if !principal["Service"].is_null() {
            assert!(
                scalar(&principal["Service"]).starts_with("logs."),
                "{statement:?}"
            );
            continue;
        }
        let actions = texts(&statement["Action"]);
        if scalar(&principal["AWS"]) != "*" {
            // The account administers it; it does not use it.
            for using in [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:*",
            ] {
                assert!(!actions.contains(using), "{using} for the account");
            }
            continue;
        }
        let condition = &statement["Condition"];
        assert_eq!(
            scalar(&condition["StringEquals"]["kms:CallerAccount"]),
            "AWS::AccountId"
        );
        assert!(
            texts(&condition["StringEquals"]["kms:ViaService"])
                .iter()
                .all(|service| ["dynamodb.", "sqs.", "s3."]
                    .iter()
                    .any(|s| service.starts_with(s))),
            "{statement:?}"
        );
        for arn in texts(&condition["ArnLike"]["aws:PrincipalArn"])
            .into_iter()
            .chain(texts(&condition["ArnEquals"]["aws:PrincipalArn"]))
        {
            users.insert(arn);
        }
    }
    assert_eq!(
        users,
        BTreeSet::from([
            role("${AWS::StackName}/*"),
            role("${OperatorRoleName}"),
            role("${BreakGlassRoleName}"),
        ])
    );

    for (id, resource) in resources {
        let id = id.as_str().unwrap();
        let properties = &resource["Properties"];
        let key = match resource["Type"].as_str() {
            Some("AWS::DynamoDB::Table") => &properties["SSESpecification"]["KMSMasterKeyId"],
            Some("AWS::Logs::LogGroup") => &properties["KmsKeyId"],
            // The subscribers' queue and its dead-letter queue keep SQS-managed encryption.
            Some("AWS::SQS::Queue") if !id.starts_with("Events") => &properties["KmsMasterKeyId"],
            Some("AWS::S3::Bucket") => {
                &properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
                    ["KMSMasterKeyID"]
            }
            _ => continue,
        };
        assert!(
            scalar(key).starts_with("DataKey"),
            "{id} is not under the data key: {key:?}"
        );
    }
}
