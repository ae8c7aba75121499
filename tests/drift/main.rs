//! Code and template cannot drift: tables and key attributes, functions and crates, routes in
//! code, template and OpenAPI, the events stream's readers, environment, and IAM exactly as
//! the code needs it.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bank::names::accounts;
use eventfold::names::{commands, events, snapshots};
use eventfold_cli::local::template::{Reference, Template};

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
    assert_eq!(t.tables.len(), 4, "every table is used by the code");
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
fn routes_in_code_template_and_openapi_agree() {
    let t = template();
    let commands = command_api::api(bank::service::BankingService::new(memory_commands()));
    let queries = query_api::api(
        memory_commands(),
        std::sync::Arc::new(eventfold::projection::MemoryReadModel::new("account_id")),
    );
    let command_routes: Vec<&str> = commands.route_keys().collect();
    let query_routes: Vec<&str> = queries.route_keys().collect();
    let by_function: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("command-api", command_routes.as_slice()),
        ("query-api", query_routes.as_slice()),
    ]);
    let mut in_code = BTreeSet::new();
    for route in &t.routes {
        let function = t
            .functions
            .iter()
            .find(|f| f.logical_id == route.function)
            .unwrap();
        let key = format!("{} {}", route.method, route.path);
        assert!(
            by_function
                .get(function.binary.as_str())
                .is_some_and(|routes| routes.contains(&key.as_str())),
            "{key} is routed to {} which does not serve it",
            function.binary
        );
        in_code.insert(key);
    }
    let served: BTreeSet<String> = by_function
        .values()
        .flat_map(|r| r.iter().map(|k| (*k).to_owned()))
        .collect();
    assert_eq!(in_code, served, "every route served is in the API, once");
    let openapi: serde_json::Value = serde_json::from_str(bank::api::OPENAPI_JSON).unwrap();
    let mut documented = BTreeSet::new();
    for (path, operations) in openapi["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert_eq!(
        documented, served,
        "the OpenAPI document describes exactly the routes served"
    );
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

#[test]
fn the_events_stream_has_at_most_two_readers() {
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
    assert!(readers.len() <= 2, "{readers:?}");
    assert_eq!(
        readers,
        vec!["ProjectAccountsFunction", "PublishEventsFunction"]
    );
    for function in template()
        .functions
        .iter()
        .filter(|f| !f.stream_sources.is_empty())
    {
        for source in &function.stream_sources {
            assert!(
                source.report_batch_item_failures && source.bisect_on_error,
                "{}",
                function.logical_id
            );
            assert!(source.maximum_retry_attempts >= 0 && source.maximum_record_age_seconds > 0);
            assert!(
                source.on_failure.is_some(),
                "{} has an on-failure destination",
                function.logical_id
            );
        }
    }
}

#[test]
fn functions_get_exactly_the_environment_they_read() {
    let required: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("command-api", command_api::REQUIRED_ENV),
        ("query-api", query_api::REQUIRED_ENV),
        ("project-accounts", project_accounts::REQUIRED_ENV),
        ("publish-events", publish_events::REQUIRED_ENV),
        ("snapshot-streams", snapshot_streams::REQUIRED_ENV),
    ]);
    for function in &template().functions {
        let needed: BTreeSet<&str> = required[function.binary.as_str()].iter().copied().collect();
        let given: BTreeSet<&str> = function
            .environment
            .keys()
            .map(String::as_str)
            .filter(|name| *name != eventfold::names::env::SNAPSHOT_EVERY)
            .collect();
        assert_eq!(given, needed, "{}", function.logical_id);
    }
}

/// (action, resource) pairs; a resource is a logical id with `.Arn`/`.StreamArn`, or `*`.
fn grants(function: &str) -> BTreeSet<(String, String)> {
    let spec = template()
        .functions
        .into_iter()
        .find(|f| f.logical_id == function)
        .unwrap();
    let mut grants = BTreeSet::new();
    for statement in &spec.policies {
        for action in &statement.actions {
            for resource in &statement.resources {
                let resource = match resource {
                    Reference::GetAtt(id, attribute) => format!("{id}.{attribute}"),
                    Reference::Ref(id) => id.clone(),
                    Reference::Literal(text) => text.clone(),
                };
                grants.insert((action.clone(), resource));
            }
        }
    }
    grants
}

fn expected(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
        .collect()
}

const STREAM_READER: [(&str, &str); 4] = [
    ("dynamodb:DescribeStream", "EventsTable.StreamArn"),
    ("dynamodb:GetRecords", "EventsTable.StreamArn"),
    ("dynamodb:GetShardIterator", "EventsTable.StreamArn"),
    ("dynamodb:ListStreams", "*"),
];

#[test]
fn each_function_may_call_exactly_what_its_code_calls() {
    // Appends are PutItem (alone or inside TransactWriteItems, which IAM checks per item);
    // loads are Query; Exact appends without a known head read one item; replays GetItem.
    assert_eq!(
        grants("CommandApiFunction"),
        expected(&[
            ("dynamodb:Query", "EventsTable.Arn"),
            ("dynamodb:GetItem", "EventsTable.Arn"),
            ("dynamodb:PutItem", "EventsTable.Arn"),
            ("dynamodb:GetItem", "CommandsTable.Arn"),
            ("dynamodb:PutItem", "CommandsTable.Arn"),
            ("dynamodb:GetItem", "SnapshotsTable.Arn"),
        ])
    );
    assert_eq!(
        grants("QueryApiFunction"),
        expected(&[
            ("dynamodb:Query", "EventsTable.Arn"),
            ("dynamodb:GetItem", "AccountsTable.Arn"),
            ("dynamodb:GetItem", "SnapshotsTable.Arn"),
        ])
    );
    let mut projector = expected(&[
        ("dynamodb:Query", "EventsTable.Arn"),
        ("dynamodb:GetItem", "AccountsTable.Arn"),
        ("dynamodb:PutItem", "AccountsTable.Arn"),
        ("dynamodb:UpdateItem", "AccountsTable.Arn"),
        ("sqs:SendMessage", "ProjectorDeadLetterQueue.Arn"),
    ]);
    projector.extend(expected(&STREAM_READER));
    assert_eq!(grants("ProjectAccountsFunction"), projector);
    let mut publisher = expected(&[
        ("sqs:SendMessage", "EventsQueue.Arn"),
        ("sqs:SendMessage", "SnapshotQueue.Arn"),
        ("sqs:SendMessage", "PublisherDeadLetterQueue.Arn"),
    ]);
    publisher.extend(expected(&STREAM_READER));
    assert_eq!(grants("PublishEventsFunction"), publisher);
    assert_eq!(
        grants("SnapshotStreamsFunction"),
        expected(&[
            ("dynamodb:Query", "EventsTable.Arn"),
            ("dynamodb:GetItem", "SnapshotsTable.Arn"),
            ("dynamodb:PutItem", "SnapshotsTable.Arn"),
            ("sqs:ReceiveMessage", "SnapshotQueue.Arn"),
            ("sqs:DeleteMessage", "SnapshotQueue.Arn"),
            ("sqs:GetQueueAttributes", "SnapshotQueue.Arn"),
            ("sqs:ChangeMessageVisibility", "SnapshotQueue.Arn"),
        ])
    );
}

#[test]
fn nothing_may_rewrite_or_delete_events() {
    for function in template().functions {
        for (action, resource) in grants(&function.logical_id) {
            let on_events = resource.starts_with("EventsTable") || resource == "*";
            assert!(
                !(on_events
                    && [
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:BatchWriteItem",
                        "dynamodb:*"
                    ]
                    .contains(&action.as_str())),
                "{} may {action} on {resource}",
                function.logical_id
            );
        }
    }
}

#[test]
fn queues_redrive_to_dead_letter_queues() {
    let t = template();
    for id in ["EventsQueue", "SnapshotQueue"] {
        let queue = t.queue(id).unwrap();
        let (dlq, receives) = queue
            .redrive
            .clone()
            .unwrap_or_else(|| panic!("{id} has no redrive"));
        assert!(t.queue(&dlq).is_some() && receives >= 1, "{id}");
        assert_eq!(
            t.queue(&dlq).unwrap().fifo,
            queue.fifo,
            "{id}: a FIFO queue needs a FIFO dead-letter queue"
        );
    }
    assert!(t.queue("EventsQueue").unwrap().fifo);
    let snapshot = t.function_by_binary("snapshot-streams").unwrap();
    let visibility = t
        .queue("SnapshotQueue")
        .unwrap()
        .visibility_timeout
        .unwrap();
    assert!(
        visibility >= 6 * snapshot.timeout_seconds,
        "AWS advises 6x the function timeout"
    );
}

/// The metric names a function's code emits (`Metric::count("Name"`, `Metric::millis("Name"`).
/// The metrics a function emits: its runtime's (the metrics test holds each runtime to them).
fn emitted_metrics(binary: &str) -> BTreeSet<String> {
    use eventfold::lambda::{command_api, consumers, query_api};
    let metrics: &[&str] = match binary {
        "command-api" => command_api::METRICS,
        "query-api" => query_api::METRICS,
        "project-accounts" => consumers::PROJECTOR_METRICS,
        "publish-events" => consumers::PUBLISHER_METRICS,
        "snapshot-streams" => consumers::SNAPSHOT_METRICS,
        other => panic!("{other} runs no runtime this test knows"),
    };
    metrics.iter().map(|m| (*m).to_owned()).collect()
}

#[test]
fn the_dashboard_shows_metrics_the_functions_emit_and_every_alarm() {
    let source = std::fs::read_to_string(eventfold_tests::template_path()).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(&source).unwrap();
    let resources = root["Resources"].as_mapping().unwrap();
    let body = match &root["Resources"]["Dashboard"]["Properties"]["DashboardBody"] {
        serde_norway::Value::Tagged(tagged) if tagged.tag == "Sub" => {
            tagged.value.as_str().unwrap().to_owned()
        }
        other => panic!("DashboardBody is not a !Sub string: {other:?}"),
    };
    // Every ${Name} or ${Name.Attribute} names a resource or a pseudo parameter.
    let mut substituted = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 2..end];
        let resource = name.split('.').next().unwrap();
        assert!(
            resource.starts_with("AWS::")
                || resources.contains_key(serde_norway::Value::from(resource)),
            "the dashboard names {name}, which is not in the template"
        );
        substituted.push_str(&format!("sub-{}", name.replace(['.', ':'], "-")));
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let body: serde_json::Value =
        serde_json::from_str(&substituted).expect("the dashboard body is JSON");

    let function_crate = |logical_id: &str| {
        template()
            .functions
            .iter()
            .find(|f| f.logical_id == logical_id)
            .map_or_else(
                || panic!("{logical_id} is not a function"),
                |f| f.binary.clone(),
            )
    };
    let mut shown = BTreeSet::new();
    let mut alarms = BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for alarm in widget["properties"]["alarms"]
            .as_array()
            .into_iter()
            .flatten()
        {
            alarms.insert(alarm.as_str().unwrap().to_owned());
        }
        let mut previous: Option<(String, String)> = None;
        for line in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let line = line.as_array().unwrap();
            let current = match line.first().and_then(serde_json::Value::as_str) {
                Some("...") => previous.clone(),
                Some("Eventfold") => {
                    let name = line[1].as_str().unwrap().to_owned();
                    assert_eq!(line[2], "Function", "{name} is read by its Function");
                    let logical_id = line[3]
                        .as_str()
                        .unwrap()
                        .strip_prefix("sub-")
                        .unwrap()
                        .to_owned();
                    Some((name, logical_id))
                }
                _ => None,
            };
            if let Some((name, logical_id)) = &current {
                let binary = function_crate(logical_id);
                assert!(
                    emitted_metrics(&binary).contains(name),
                    "the dashboard shows {name} of {binary}, which {binary} does not emit"
                );
                shown.insert(name.clone());
            }
            previous = current;
        }
    }
    for (id, resource) in resources {
        if resource["Type"] == "AWS::CloudWatch::Alarm" && resource.get("Condition").is_none() {
            let id = id.as_str().unwrap();
            assert!(
                alarms.contains(&format!("sub-{id}-Arn")),
                "the dashboard's alarm widget misses {id}"
            );
        }
    }
    for required in [
        "ConflictsRetried",
        "AppendLatency",
        "EventsProjected",
        "ProjectionLag",
        "EventsFoldedPastSnapshot",
    ] {
        assert!(shown.contains(required), "the dashboard misses {required}");
    }
}
