//! Template and code cannot drift: a service's template checked against what its functions'
//! code says it needs ([`Contract`]s and routes). The same checks hold the bank, the example
//! and every service `eventfold new` writes:
//!
//! - the library's tables have the keys, stream and TTL the library uses, and every table is
//!   named by some function;
//! - each function of the template has a contract and each contract a function;
//! - the routes in the template are the routes in the code;
//! - the events table's stream has at most two readers, exactly the stream runtimes, each
//!   mapping with partial batch responses, bisection, bounded retries and record age, and an
//!   on-failure destination;
//! - each function gets exactly the environment it reads, and each library variable names a
//!   resource of the right kind;
//! - each function may call exactly what its runtime calls (least privilege), and nothing may
//!   rewrite or delete an event;
//! - each queue a function consumes redrives to a dead-letter queue of its kind, and stays
//!   invisible for six times the consumer's timeout;
//! - the dashboard names real resources, shows only metrics the functions emit, every function
//!   and every alarm.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::names::{commands, env, events, snapshots, subject_keys};
use serde_norway::Value;

use crate::local::template::{FunctionSpec, Reference, Template};

/// A function's side of the check: its binary (the template's `BuildProperties.Binary`), its
/// contract, and the routes it serves (`"POST /books"`; none for a consumer).
#[derive(Clone, Debug)]
pub struct Function {
    /// The cargo binary.
    pub binary: String,
    /// What it needs.
    pub contract: Contract,
    /// The route keys it serves.
    pub routes: BTreeSet<String>,
}

impl Function {
    /// A function without routes.
    pub fn new(binary: &str, contract: Contract) -> Self {
        Self {
            binary: binary.to_owned(),
            contract,
            routes: BTreeSet::new(),
        }
    }

    /// With the routes it serves.
    #[must_use]
    pub fn routes<'a>(mut self, routes: impl IntoIterator<Item = &'a str>) -> Self {
        self.routes = routes.into_iter().map(str::to_owned).collect();
        self
    }
}

/// What the check found: each a sentence naming the resource and what is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift(pub Vec<String>);

impl Drift {
    /// Nothing drifted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn say(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            writeln!(f, "- {problem}")?;
        }
        Ok(())
    }
}

/// The stream reader's permissions on the events table's stream (Lambda's poller lists streams,
/// an action without resource-level permissions).
const STREAM_READER: [&str; 3] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
];
/// What Lambda's SQS poller calls for a function.
const QUEUE_CONSUMER: [&str; 4] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
];

/// Checks the template at `path` against the functions' code.
pub fn check_file(path: &Path, functions: &[Function]) -> Drift {
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => return Drift(vec![format!("cannot read {}: {e}", path.display())]),
    };
    check(&source, functions)
}

/// Checks template text against the functions' code.
pub fn check(source: &str, functions: &[Function]) -> Drift {
    let mut drift = Drift::default();
    let template = match Template::parse(source) {
        Ok(template) => template,
        Err(e) => {
            drift.say(e.to_string());
            return drift;
        }
    };
    let by_binary: BTreeMap<&str, &Function> =
        functions.iter().map(|f| (f.binary.as_str(), f)).collect();
    let mut paired = Vec::new();
    for spec in &template.functions {
        match by_binary.get(spec.binary.as_str()) {
            Some(function) => paired.push((spec, *function)),
            None => drift.say(format!(
                "{} runs {}, which no function's code declares",
                spec.logical_id, spec.binary
            )),
        }
    }
    for function in functions {
        if template.function_by_binary(&function.binary).is_none() {
            drift.say(format!(
                "{} is in the code, not in the template",
                function.binary
            ));
        }
    }
    tables(&template, &mut drift);
    routes(&template, &paired, &mut drift);
    stream_readers(&template, &paired, &mut drift);
    for (spec, function) in &paired {
        environment(&template, spec, function.contract, &mut drift);
        permissions(&template, spec, function.contract, &mut drift);
    }
    queues(&template, &mut drift);
    match serde_norway::from_str::<Value>(source) {
        Ok(root) => dashboard(&template, &root, &paired, &mut drift),
        Err(e) => drift.say(format!("the template is not YAML: {e}")),
    }
    drift
}

/// The table a function's variable names, if it names one.
fn named_table<'a>(spec: &'a FunctionSpec, variable: &str) -> Option<&'a str> {
    match spec.environment.get(variable)? {
        Reference::Ref(id) => Some(id),
        _ => None,
    }
}

/// A table the library reads and writes: (the variable naming it, hash key, range key, whether
/// it needs a `NEW_IMAGE` stream, TTL attribute).
type LibraryTable = (
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    Option<&'static str>,
);

fn tables(template: &Template, drift: &mut Drift) {
    let named = |variable: &str| -> BTreeSet<&str> {
        template
            .functions
            .iter()
            .filter_map(|f| named_table(f, variable))
            .collect()
    };
    let library: [LibraryTable; 4] = [
        (
            env::EVENTS_TABLE,
            events::STREAM_ID,
            Some(events::VERSION),
            true,
            None,
        ),
        (
            env::COMMANDS_TABLE,
            commands::COMMAND_ID,
            None,
            false,
            Some(commands::EXPIRES_AT),
        ),
        (
            env::SNAPSHOTS_TABLE,
            snapshots::STREAM_ID,
            None,
            false,
            None,
        ),
        (
            env::SUBJECT_KEYS_TABLE,
            subject_keys::SUBJECT,
            None,
            false,
            None,
        ),
    ];
    for (variable, hash, range, stream, ttl) in library {
        let ids = named(variable);
        if ids.len() > 1 {
            drift.say(format!("{variable} names different tables: {ids:?}"));
        }
        for id in ids {
            let Some(table) = template.table(id) else {
                drift.say(format!("{variable} names {id}, which is not a table"));
                continue;
            };
            let kinds = [(hash, "S")]
                .into_iter()
                .chain(range.map(|r| (r, if r == events::VERSION { "N" } else { "S" })));
            if table.hash_key != hash || table.range_key.as_deref() != range {
                drift.say(format!(
                    "{id} is keyed ({}, {:?}); the library keys it ({hash}, {range:?})",
                    table.hash_key, table.range_key
                ));
            }
            for (attribute, kind) in kinds {
                if table.attributes.get(attribute).map(String::as_str) != Some(kind) {
                    drift.say(format!("{id}: {attribute} must be of type {kind}"));
                }
            }
            if stream && table.stream_view_type.as_deref() != Some("NEW_IMAGE") {
                drift.say(format!(
                    "{id} needs a NEW_IMAGE stream: the consumers decode it"
                ));
            }
            if table.ttl_attribute.as_deref() != ttl {
                drift.say(format!(
                    "{id}'s TTL attribute is {:?}, the library's {ttl:?}",
                    table.ttl_attribute
                ));
            }
        }
    }
    for table in &template.tables {
        let used = template.functions.iter().any(|f| {
            f.environment
                .values()
                .any(|r| r.target() == Some(table.logical_id.as_str()))
        });
        if !used {
            drift.say(format!("{} is named by no function", table.logical_id));
        }
    }
}

fn routes(template: &Template, paired: &[(&FunctionSpec, &Function)], drift: &mut Drift) {
    for (spec, function) in paired {
        let in_template: BTreeSet<String> = template
            .routes
            .iter()
            .filter(|r| r.function == spec.logical_id)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        for missing in function.routes.difference(&in_template) {
            drift.say(format!(
                "{} serves {missing}, which the template does not route",
                spec.logical_id
            ));
        }
        for extra in in_template.difference(&function.routes) {
            drift.say(format!(
                "the template routes {extra} to {}, which does not serve it",
                spec.logical_id
            ));
        }
    }
}

fn stream_readers(template: &Template, paired: &[(&FunctionSpec, &Function)], drift: &mut Drift) {
    let events_tables: BTreeSet<&str> = template
        .functions
        .iter()
        .filter_map(|f| named_table(f, env::EVENTS_TABLE))
        .collect();
    let mut readers = 0;
    for (spec, function) in paired {
        let reads = spec
            .stream_sources
            .iter()
            .filter(|s| events_tables.contains(s.table.as_str()))
            .count();
        readers += reads;
        let runtime = function.contract.runtime;
        if runtime.reads_the_stream() && reads != 1 {
            drift.say(format!(
                "{} ({runtime:?}) must read the events stream once, not {reads} times",
                spec.logical_id
            ));
        }
        let polls = matches!(runtime, Runtime::FeedConsumer | Runtime::Reactor);
        if polls && spec.schedules.is_empty() {
            drift.say(format!(
                "{} ({runtime:?}) polls the feed until its deadline: it needs a schedule \
                 (a Schedule event, rate(1 minute)) or it never runs",
                spec.logical_id
            ));
        }
        if polls && spec.timeout_seconds < 30 {
            drift.say(format!(
                "{} ({runtime:?}) needs a Timeout of 30 s or more to poll between schedules",
                spec.logical_id
            ));
        }
        if !polls && !spec.schedules.is_empty() {
            drift.say(format!(
                "{} ({runtime:?}) has a schedule its runtime does not handle",
                spec.logical_id
            ));
        }
        if !runtime.reads_the_stream() && reads > 0 {
            drift.say(format!(
                "{} ({runtime:?}) reads the events stream it does not handle",
                spec.logical_id
            ));
        }
        for source in &spec.stream_sources {
            if !(source.report_batch_item_failures && source.bisect_on_error) {
                drift.say(format!(
                    "{}: the stream mapping must report batch item failures and bisect",
                    spec.logical_id
                ));
            }
            if source.maximum_retry_attempts < 0 || source.maximum_record_age_seconds <= 0 {
                drift.say(format!(
                    "{}: the stream mapping must bound retries and record age",
                    spec.logical_id
                ));
            }
            if source.on_failure.is_none() {
                drift.say(format!(
                    "{}: the stream mapping needs an on-failure destination",
                    spec.logical_id
                ));
            }
        }
    }
    if readers > 2 {
        drift.say(format!(
            "the events stream has {readers} readers; DynamoDB Streams throttles past two"
        ));
    }
}

fn environment(template: &Template, spec: &FunctionSpec, contract: Contract, drift: &mut Drift) {
    let needed: BTreeSet<&str> = contract.environment().into_iter().collect();
    let optional: Vec<&str> = contract
        .runtime
        .tuning()
        .iter()
        .copied()
        .filter(|v| !needed.contains(v))
        .collect();
    let given: BTreeSet<&str> = spec
        .environment
        .keys()
        .map(String::as_str)
        .filter(|v| !optional.contains(v))
        .collect();
    for missing in needed.difference(&given) {
        drift.say(format!(
            "{} reads {missing}, which the template does not set",
            spec.logical_id
        ));
    }
    for extra in given.difference(&needed) {
        drift.say(format!(
            "{} is given {extra}, which it does not read",
            spec.logical_id
        ));
    }
    for (variable, reference) in &spec.environment {
        let Some(target) = reference.target() else {
            continue;
        };
        let is_queue = template.queue(target).is_some();
        let is_table = template.table(target).is_some();
        let wants_queue = variable.ends_with("_QUEUE_URL");
        let wants_table = variable.ends_with("_TABLE");
        if (wants_queue && !is_queue) || (wants_table && !is_table) {
            drift.say(format!(
                "{}: {variable} names {target}, not a {}",
                spec.logical_id,
                if wants_queue { "queue" } else { "table" }
            ));
        }
    }
}

/// (action, resource) pairs; a resource is a logical id with `.Arn`/`.StreamArn`, or `*`.
pub fn grants(spec: &FunctionSpec) -> BTreeSet<(String, String)> {
    let mut grants = BTreeSet::new();
    for statement in &spec.policies {
        for action in &statement.actions {
            for resource in &statement.resources {
                let resource = match resource {
                    Reference::GetAtt(id, attribute) => format!("{id}.{attribute}"),
                    Reference::Ref(id) => id.clone(),
                    Reference::Sub(text) | Reference::Literal(text) => text.clone(),
                };
                grants.insert((action.clone(), resource));
            }
        }
    }
    grants
}

/// What the function's runtime calls, on the resources its template wires to it.
fn expected_grants(spec: &FunctionSpec, contract: Contract) -> BTreeSet<(String, String)> {
    let mut expected = BTreeSet::new();
    let mut allow = |action: &str, resource: String| {
        expected.insert((action.to_owned(), resource));
    };
    for (variable, actions) in contract.runtime.grants() {
        if let Some(target) = spec.environment.get(*variable).and_then(Reference::target) {
            for action in *actions {
                allow(action, format!("{target}.Arn"));
            }
        }
    }
    for variable in contract.read_models {
        if let Some(target) = spec.environment.get(*variable).and_then(Reference::target) {
            for action in contract.runtime.read_model_grants() {
                allow(action, format!("{target}.Arn"));
            }
        }
    }
    for source in &spec.stream_sources {
        for action in STREAM_READER {
            allow(action, format!("{}.StreamArn", source.table));
        }
        allow("dynamodb:ListStreams", "*".to_owned());
        if let Some(destination) = &source.on_failure {
            allow("sqs:SendMessage", format!("{destination}.Arn"));
        }
    }
    for source in &spec.queue_sources {
        for action in QUEUE_CONSUMER {
            allow(action, format!("{}.Arn", source.queue));
        }
    }
    expected
}

fn permissions(template: &Template, spec: &FunctionSpec, contract: Contract, drift: &mut Drift) {
    let granted = grants(spec);
    let expected = expected_grants(spec, contract);
    for (action, resource) in granted.difference(&expected) {
        drift.say(format!(
            "{} may {action} on {resource}, which its code never calls",
            spec.logical_id
        ));
    }
    for (action, resource) in expected.difference(&granted) {
        drift.say(format!(
            "{} calls {action} on {resource} without the permission",
            spec.logical_id
        ));
    }
    let events_tables: BTreeSet<String> = template
        .functions
        .iter()
        .filter_map(|f| named_table(f, env::EVENTS_TABLE))
        .map(str::to_owned)
        .collect();
    for (action, resource) in &granted {
        let on_events = resource == "*"
            || events_tables
                .iter()
                .any(|t| resource.split('.').next() == Some(t.as_str()));
        let rewrites = [
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:*",
            "*",
        ]
        .contains(&action.as_str());
        if on_events && rewrites {
            drift.say(format!(
                "{} may {action} on {resource}: nothing may rewrite or delete an event",
                spec.logical_id
            ));
        }
    }
}

fn queues(template: &Template, drift: &mut Drift) {
    for function in &template.functions {
        for source in &function.queue_sources {
            let Some(queue) = template.queue(&source.queue) else {
                drift.say(format!(
                    "{} consumes {}, which is not a queue",
                    function.logical_id, source.queue
                ));
                continue;
            };
            if queue
                .visibility_timeout
                .is_none_or(|v| v < 6 * function.timeout_seconds)
            {
                drift.say(format!(
                    "{}'s visibility timeout must be at least 6 times {}'s timeout ({} s)",
                    queue.logical_id, function.logical_id, function.timeout_seconds
                ));
            }
        }
    }
    let published: BTreeSet<&str> = template
        .functions
        .iter()
        .filter_map(|f| {
            f.environment
                .get(env::EVENTS_QUEUE_URL)
                .and_then(Reference::target)
        })
        .collect();
    let consumed: BTreeSet<&str> = template
        .functions
        .iter()
        .flat_map(|f| f.queue_sources.iter().map(|s| s.queue.as_str()))
        .collect();
    for id in published.iter().chain(&consumed) {
        let Some(queue) = template.queue(id) else {
            continue;
        };
        if published.contains(id) && !queue.fifo {
            drift.say(format!(
                "{id} receives events in stream order: it must be FIFO"
            ));
        }
        match &queue.redrive {
            None => drift.say(format!("{id} has no dead-letter queue")),
            Some((dead, receives)) => match template.queue(dead) {
                None => drift.say(format!("{id} redrives to {dead}, which is not a queue")),
                Some(dlq) if dlq.fifo != queue.fifo => {
                    drift.say(format!(
                        "{id} and its dead-letter queue {dead} must both be FIFO or neither"
                    ));
                }
                Some(_) if *receives < 1 => {
                    drift.say(format!("{id}: maxReceiveCount must be at least 1"));
                }
                Some(_) => {}
            },
        }
    }
}

/// The dashboard body with every `${Name}` replaced by `sub-Name`, each name checked.
fn dashboard_body(root: &Value, drift: &mut Drift) -> Option<serde_json::Value> {
    let resources = root.get("Resources")?.as_mapping()?;
    let dashboard = resources
        .values()
        .find(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::CloudWatch::Dashboard"));
    let Some(dashboard) = dashboard else {
        drift.say("the template has no dashboard");
        return None;
    };
    let body = match dashboard
        .get("Properties")
        .and_then(|p| p.get("DashboardBody"))
    {
        Some(Value::Tagged(tagged)) if tagged.tag == "Sub" => tagged.value.as_str()?.to_owned(),
        other => {
            drift.say(format!("the DashboardBody is not a !Sub string: {other:?}"));
            return None;
        }
    };
    let mut substituted = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}').map(|e| e + start) else {
            drift.say("the dashboard has an unclosed ${");
            return None;
        };
        let name = &rest[start + 2..end];
        let resource = name.split('.').next().unwrap_or_default();
        if !resource.starts_with("AWS::") && !resources.contains_key(Value::from(resource)) {
            drift.say(format!(
                "the dashboard names {name}, which is not in the template"
            ));
        }
        substituted.push_str(&format!("sub-{}", name.replace(['.', ':'], "-")));
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    match serde_json::from_str(&substituted) {
        Ok(body) => Some(body),
        Err(e) => {
            drift.say(format!("the dashboard body is not JSON: {e}"));
            None
        }
    }
}

fn dashboard(
    template: &Template,
    root: &Value,
    paired: &[(&FunctionSpec, &Function)],
    drift: &mut Drift,
) {
    let Some(body) = dashboard_body(root, drift) else {
        return;
    };
    let runtimes: BTreeMap<&str, Runtime> = paired
        .iter()
        .map(|(spec, f)| (spec.logical_id.as_str(), f.contract.runtime))
        .collect();
    let mut shown: BTreeSet<&str> = BTreeSet::new();
    let mut alarms = BTreeSet::new();
    let empty = Vec::new();
    for widget in body["widgets"].as_array().unwrap_or(&empty) {
        for alarm in widget["properties"]["alarms"].as_array().unwrap_or(&empty) {
            alarms.insert(alarm.as_str().unwrap_or_default().to_owned());
        }
        let mut previous: Option<(String, String)> = None;
        for line in widget["properties"]["metrics"].as_array().unwrap_or(&empty) {
            let line = line.as_array().unwrap_or(&empty);
            let current = match line.first().and_then(serde_json::Value::as_str) {
                Some("...") => previous.clone(),
                Some("Eventfold") => {
                    let name = line.get(1).and_then(|v| v.as_str()).unwrap_or_default();
                    if line.get(2).and_then(|v| v.as_str()) != Some("Function") {
                        drift.say(format!(
                            "the dashboard's {name} must be read by its Function"
                        ));
                    }
                    let function = line
                        .get(3)
                        .and_then(|v| v.as_str())
                        .and_then(|v| v.strip_prefix("sub-"))
                        .unwrap_or_default();
                    Some((name.to_owned(), function.to_owned()))
                }
                _ => None,
            };
            if let Some((name, function)) = &current {
                match runtimes.get_key_value(function.as_str()) {
                    Some((id, runtime)) => {
                        if !runtime.metrics().contains(&name.as_str()) {
                            drift.say(format!(
                                "the dashboard shows {name} of {id}, which it does not emit"
                            ));
                        }
                        shown.insert(id);
                    }
                    None => drift.say(format!(
                        "the dashboard shows {name} of {function}, not a function of the code"
                    )),
                }
            }
            previous = current;
        }
    }
    for function in &template.functions {
        if !shown.contains(function.logical_id.as_str()) {
            drift.say(format!(
                "the dashboard shows no metric of {}",
                function.logical_id
            ));
        }
    }
    if let Some(resources) = root.get("Resources").and_then(Value::as_mapping) {
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            let alarm =
                resource.get("Type").and_then(Value::as_str) == Some("AWS::CloudWatch::Alarm");
            if alarm
                && resource.get("Condition").is_none()
                && !alarms.contains(&format!("sub-{id}-Arn"))
            {
                drift.say(format!("the dashboard's alarm widget misses {id}"));
            }
        }
    }
}
