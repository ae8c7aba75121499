//! `infra/template.yaml`, read as the single source of truth for local resources: tables,
//! queues, functions with their event sources and environment, and HTTP routes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use serde_norway::Value;

/// A template that could not be read or does not have the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("infra/template.yaml: {0}")]
pub struct TemplateError(String);

fn err(message: impl Into<String>) -> TemplateError {
    TemplateError(message.into())
}

/// A CloudFormation value that refers to another resource or a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `!Ref X`
    Ref(String),
    /// `!GetAtt X.Attr`
    GetAtt(String, String),
    /// A literal.
    Literal(String),
}

impl Reference {
    fn parse(value: &Value) -> Result<Self, TemplateError> {
        match value {
            Value::Tagged(tagged) => {
                let inner = tagged
                    .value
                    .as_str()
                    .ok_or_else(|| err("intrinsic without a string"))?;
                match tagged.tag.to_string().as_str() {
                    "!Ref" => Ok(Self::Ref(inner.to_owned())),
                    "!GetAtt" => {
                        let (resource, attribute) = inner
                            .split_once('.')
                            .ok_or_else(|| err(format!("!GetAtt {inner} has no attribute")))?;
                        Ok(Self::GetAtt(resource.to_owned(), attribute.to_owned()))
                    }
                    other => Err(err(format!("unsupported intrinsic {other}"))),
                }
            }
            Value::String(s) => Ok(Self::Literal(s.clone())),
            Value::Number(n) => Ok(Self::Literal(n.to_string())),
            Value::Bool(b) => Ok(Self::Literal(b.to_string())),
            other => Err(err(format!("expected a reference, got {other:?}"))),
        }
    }

    /// The logical id referred to, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Ref(id) | Self::GetAtt(id, _) => Some(id),
            Self::Literal(_) => None,
        }
    }
}

/// A DynamoDB table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// Key attributes and their types (`S`, `N`, `B`).
    pub attributes: BTreeMap<String, String>,
    pub hash_key: String,
    pub range_key: Option<String>,
    pub stream_view_type: Option<String>,
    pub ttl_attribute: Option<String>,
}

/// An SQS queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout: Option<u32>,
    /// Dead-letter queue (logical id) and the receives before a message moves there.
    pub redrive: Option<(String, u32)>,
}

/// A DynamoDB Streams event source mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSource {
    /// The table whose stream is read.
    pub table: String,
    pub starting_position: String,
    pub batch_size: usize,
    pub maximum_batching_window_seconds: u64,
    /// Filter patterns (any match lets a record through).
    pub filters: Vec<Json>,
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    /// `-1` is unbounded, as on AWS.
    pub maximum_retry_attempts: i64,
    pub maximum_record_age_seconds: i64,
    /// Queue (logical id) that receives a description of each batch that failed every retry.
    pub on_failure: Option<String>,
}

/// An SQS event source mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSource {
    pub queue: String,
    pub batch_size: usize,
    pub maximum_batching_window_seconds: u64,
    pub report_batch_item_failures: bool,
}

/// One IAM statement of a function's inline policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStatement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<Reference>,
}

/// A Lambda function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub environment: BTreeMap<String, Reference>,
    pub stream_sources: Vec<StreamSource>,
    pub queue_sources: Vec<QueueSource>,
    pub policies: Vec<PolicyStatement>,
}

/// An HTTP API route and the function behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub logical_id: String,
    pub method: String,
    /// With `{param}` placeholders, as API Gateway writes them.
    pub path: String,
    pub function: String,
    /// `AuthorizationType: NONE`: callers need no credentials.
    pub public: bool,
}

/// Everything the local environment needs from the template.
#[derive(Clone, Debug, Default)]
pub struct Template {
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub functions: Vec<FunctionSpec>,
    pub routes: Vec<RouteSpec>,
    /// Parameter defaults.
    pub parameters: BTreeMap<String, String>,
    /// Every resource's type, by logical id.
    pub resource_types: BTreeMap<String, String>,
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn text(value: &Value, key: &str) -> Option<String> {
    get(value, key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn number(value: &Value, key: &str) -> Option<i64> {
    get(value, key).and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

fn flag(value: &Value, key: &str) -> bool {
    get(value, key).and_then(Value::as_bool).unwrap_or(false)
}

fn seq<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    get(value, key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter())
        .into_iter()
        .flatten()
}

fn as_u32(value: i64, what: &str) -> Result<u32, TemplateError> {
    u32::try_from(value).map_err(|_| err(format!("{what} out of range: {value}")))
}

impl Template {
    /// Reads and interprets a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Interprets template text.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let root: Value =
            serde_norway::from_str(source).map_err(|e| err(format!("not YAML: {e}")))?;
        let mut template = Self::default();
        if let Some(parameters) = get(&root, "Parameters").and_then(Value::as_mapping) {
            for (name, spec) in parameters {
                if let (Some(name), Some(default)) =
                    (name.as_str(), text_value(get(spec, "Default")))
                {
                    template.parameters.insert(name.to_owned(), default);
                }
            }
        }
        let resources = get(&root, "Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| err("no Resources"))?;
        let mut integrations = BTreeMap::new();
        let mut raw_routes = Vec::new();
        let mut mappings = Vec::new();
        for (id, resource) in resources {
            let id = id
                .as_str()
                .ok_or_else(|| err("non-string logical id"))?
                .to_owned();
            let kind = text(resource, "Type").ok_or_else(|| err(format!("{id} has no Type")))?;
            template.resource_types.insert(id.clone(), kind.clone());
            let properties = get(resource, "Properties").cloned().unwrap_or(Value::Null);
            match kind.as_str() {
                "AWS::DynamoDB::Table" => template.tables.push(parse_table(&id, &properties)?),
                "AWS::SQS::Queue" => template.queues.push(parse_queue(&id, &properties)?),
                "AWS::Serverless::Function" => {
                    template
                        .functions
                        .push(parse_function(&id, resource, &properties)?);
                }
                "AWS::ApiGatewayV2::Integration" => {
                    let uri = get(&properties, "IntegrationUri")
                        .map(Reference::parse)
                        .transpose()?
                        .and_then(|r| r.target().map(str::to_owned))
                        .ok_or_else(|| err(format!("{id} has no IntegrationUri")))?;
                    integrations.insert(id.clone(), uri);
                }
                "AWS::ApiGatewayV2::Route" => raw_routes.push((id.clone(), properties)),
                "AWS::Lambda::EventSourceMapping" => mappings.push((id.clone(), properties)),
                _ => {}
            }
        }
        for (id, properties) in mappings {
            let function = get(&properties, "FunctionName")
                .map(Reference::parse)
                .transpose()?
                .and_then(|r| r.target().map(str::to_owned))
                .ok_or_else(|| err(format!("{id}: FunctionName must be !Ref a function")))?;
            let source = get(&properties, "EventSourceArn")
                .map(Reference::parse)
                .transpose()?
                .ok_or_else(|| err(format!("{id}: no EventSourceArn")))?;
            let spec = template
                .functions
                .iter_mut()
                .find(|f| f.logical_id == function)
                .ok_or_else(|| err(format!("{id}: no function {function}")))?;
            match source {
                Reference::GetAtt(_, attribute) if attribute == "StreamArn" => {
                    let mut with_stream = properties.clone();
                    if let Value::Mapping(map) = &mut with_stream {
                        map.insert(
                            Value::from("Stream"),
                            get(&properties, "EventSourceArn")
                                .cloned()
                                .unwrap_or(Value::Null),
                        );
                    }
                    spec.stream_sources
                        .push(parse_stream_source(&id, &with_stream)?);
                }
                Reference::GetAtt(_, attribute) if attribute == "Arn" => {
                    let mut with_queue = properties.clone();
                    if let Value::Mapping(map) = &mut with_queue {
                        map.insert(
                            Value::from("Queue"),
                            get(&properties, "EventSourceArn")
                                .cloned()
                                .unwrap_or(Value::Null),
                        );
                    }
                    spec.queue_sources
                        .push(parse_queue_source(&id, &with_queue)?);
                }
                other => return Err(err(format!("{id}: unsupported event source {other:?}"))),
            }
        }
        for (id, properties) in raw_routes {
            let key = text(&properties, "RouteKey")
                .ok_or_else(|| err(format!("{id} has no RouteKey")))?;
            let (method, path) = key
                .split_once(' ')
                .ok_or_else(|| err(format!("{id}: route key {key:?} is not 'METHOD /path'")))?;
            let target = match get(&properties, "Target") {
                Some(Value::Tagged(tagged)) => tagged.value.as_str().unwrap_or_default().to_owned(),
                _ => String::new(),
            };
            let integration = target
                .strip_prefix("integrations/${")
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| {
                    err(format!(
                        "{id}: target {target:?} is not integrations/${{X}}"
                    ))
                })?;
            let function = integrations
                .get(integration)
                .ok_or_else(|| err(format!("{id}: no integration {integration}")))?;
            let public = text(&properties, "AuthorizationType").as_deref() == Some("NONE");
            template.routes.push(RouteSpec {
                logical_id: id,
                method: method.to_owned(),
                path: path.to_owned(),
                function: function.clone(),
                public,
            });
        }
        Ok(template)
    }

    /// A table by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// A function by its cargo binary name.
    pub fn function_by_binary(&self, binary: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.binary == binary)
    }
}

fn text_value(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_table(id: &str, properties: &Value) -> Result<TableSpec, TemplateError> {
    let mut attributes = BTreeMap::new();
    for attribute in seq(properties, "AttributeDefinitions") {
        let name = text(attribute, "AttributeName")
            .ok_or_else(|| err(format!("{id}: attribute without name")))?;
        let kind = text(attribute, "AttributeType")
            .ok_or_else(|| err(format!("{id}: attribute without type")))?;
        attributes.insert(name, kind);
    }
    let mut hash_key = None;
    let mut range_key = None;
    for key in seq(properties, "KeySchema") {
        let name = text(key, "AttributeName");
        match text(key, "KeyType").as_deref() {
            Some("HASH") => hash_key = name,
            Some("RANGE") => range_key = name,
            _ => return Err(err(format!("{id}: bad KeySchema"))),
        }
    }
    let ttl = get(properties, "TimeToLiveSpecification")
        .filter(|spec| flag(spec, "Enabled"))
        .and_then(|spec| text(spec, "AttributeName"));
    Ok(TableSpec {
        logical_id: id.to_owned(),
        attributes,
        hash_key: hash_key.ok_or_else(|| err(format!("{id}: no HASH key")))?,
        range_key,
        stream_view_type: get(properties, "StreamSpecification")
            .and_then(|s| text(s, "StreamViewType")),
        ttl_attribute: ttl,
    })
}

fn parse_queue(id: &str, properties: &Value) -> Result<QueueSpec, TemplateError> {
    let redrive = match get(properties, "RedrivePolicy") {
        Some(policy) => {
            let target = get(policy, "deadLetterTargetArn")
                .map(Reference::parse)
                .transpose()?
                .and_then(|r| r.target().map(str::to_owned))
                .ok_or_else(|| err(format!("{id}: RedrivePolicy without a target")))?;
            let max = number(policy, "maxReceiveCount")
                .ok_or_else(|| err(format!("{id}: no maxReceiveCount")))?;
            Some((target, as_u32(max, "maxReceiveCount")?))
        }
        None => None,
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        fifo: flag(properties, "FifoQueue"),
        content_based_deduplication: flag(properties, "ContentBasedDeduplication"),
        visibility_timeout: number(properties, "VisibilityTimeout")
            .map(|v| as_u32(v, "VisibilityTimeout"))
            .transpose()?,
        redrive,
    })
}

fn parse_function(
    id: &str,
    resource: &Value,
    properties: &Value,
) -> Result<FunctionSpec, TemplateError> {
    let binary = get(resource, "Metadata")
        .and_then(|m| get(m, "BuildProperties"))
        .and_then(|b| text(b, "Binary"))
        .ok_or_else(|| err(format!("{id}: no Metadata.BuildProperties.Binary")))?;
    let mut environment = BTreeMap::new();
    if let Some(variables) = get(properties, "Environment")
        .and_then(|e| get(e, "Variables"))
        .and_then(Value::as_mapping)
    {
        for (name, value) in variables {
            let name = name
                .as_str()
                .ok_or_else(|| err(format!("{id}: bad variable name")))?;
            environment.insert(name.to_owned(), Reference::parse(value)?);
        }
    }
    let mut policies = Vec::new();
    for policy in seq(properties, "Policies") {
        for statement in seq(policy, "Statement") {
            let actions = seq(statement, "Action")
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            let resources = match get(statement, "Resource") {
                Some(Value::Sequence(items)) => items
                    .iter()
                    .map(Reference::parse)
                    .collect::<Result<_, _>>()?,
                Some(single) => vec![Reference::parse(single)?],
                None => Vec::new(),
            };
            policies.push(PolicyStatement {
                sid: text(statement, "Sid").unwrap_or_default(),
                actions,
                resources,
            });
        }
    }
    let mut stream_sources = Vec::new();
    let mut queue_sources = Vec::new();
    if let Some(events) = get(properties, "Events").and_then(Value::as_mapping) {
        for (name, event) in events {
            let event_props = get(event, "Properties").cloned().unwrap_or(Value::Null);
            match text(event, "Type").as_deref() {
                Some("DynamoDB") => stream_sources.push(parse_stream_source(id, &event_props)?),
                Some("SQS") => queue_sources.push(parse_queue_source(id, &event_props)?),
                other => {
                    return Err(err(format!(
                        "{id}: event {name:?} of unsupported type {other:?}"
                    )));
                }
            }
        }
    }
    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        memory_mb: as_u32(
            number(properties, "MemorySize").unwrap_or(128),
            "MemorySize",
        )?,
        timeout_seconds: as_u32(number(properties, "Timeout").unwrap_or(3), "Timeout")?,
        environment,
        stream_sources,
        queue_sources,
        policies,
    })
}

fn parse_stream_source(id: &str, properties: &Value) -> Result<StreamSource, TemplateError> {
    let table = get(properties, "Stream")
        .map(Reference::parse)
        .transpose()?
        .and_then(|r| r.target().map(str::to_owned))
        .ok_or_else(|| err(format!("{id}: stream event without Stream")))?;
    let mut filters = Vec::new();
    if let Some(criteria) = get(properties, "FilterCriteria") {
        for filter in seq(criteria, "Filters") {
            let pattern = text(filter, "Pattern")
                .ok_or_else(|| err(format!("{id}: filter without Pattern")))?;
            filters.push(
                serde_json::from_str(&pattern)
                    .map_err(|e| err(format!("{id}: filter is not JSON: {e}")))?,
            );
        }
    }
    let on_failure = get(properties, "DestinationConfig")
        .and_then(|d| get(d, "OnFailure"))
        .and_then(|o| get(o, "Destination"))
        .map(Reference::parse)
        .transpose()?
        .and_then(|r| r.target().map(str::to_owned));
    let batch_size = number(properties, "BatchSize").unwrap_or(100);
    Ok(StreamSource {
        table,
        starting_position: text(properties, "StartingPosition").unwrap_or_else(|| "LATEST".into()),
        batch_size: usize::try_from(batch_size).map_err(|_| err(format!("{id}: bad BatchSize")))?,
        maximum_batching_window_seconds: u64::from(as_u32(
            number(properties, "MaximumBatchingWindowInSeconds").unwrap_or(0),
            "MaximumBatchingWindowInSeconds",
        )?),
        filters,
        report_batch_item_failures: seq(properties, "FunctionResponseTypes")
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
        bisect_on_error: flag(properties, "BisectBatchOnFunctionError"),
        maximum_retry_attempts: number(properties, "MaximumRetryAttempts").unwrap_or(-1),
        maximum_record_age_seconds: number(properties, "MaximumRecordAgeInSeconds").unwrap_or(-1),
        on_failure,
    })
}

fn parse_queue_source(id: &str, properties: &Value) -> Result<QueueSource, TemplateError> {
    let queue = get(properties, "Queue")
        .map(Reference::parse)
        .transpose()?
        .and_then(|r| r.target().map(str::to_owned))
        .ok_or_else(|| err(format!("{id}: SQS event without Queue")))?;
    let batch_size = number(properties, "BatchSize").unwrap_or(10);
    Ok(QueueSource {
        queue,
        batch_size: usize::try_from(batch_size).map_err(|_| err(format!("{id}: bad BatchSize")))?,
        maximum_batching_window_seconds: u64::from(as_u32(
            number(properties, "MaximumBatchingWindowInSeconds").unwrap_or(0),
            "MaximumBatchingWindowInSeconds",
        )?),
        report_batch_item_failures: seq(properties, "FunctionResponseTypes")
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        let template = Template::load(&path).expect("template parses");
        let events = template.table("EventsTable").expect("events table");
        assert_eq!(events.hash_key, "stream_id");
        assert_eq!(events.range_key.as_deref(), Some("version"));
        assert_eq!(events.stream_view_type.as_deref(), Some("NEW_IMAGE"));
        let projector = template
            .function_by_binary("project-accounts")
            .expect("projector");
        assert_eq!(projector.stream_sources.len(), 1);
        assert_eq!(projector.stream_sources[0].table, "EventsTable");
        assert!(
            template
                .routes
                .iter()
                .any(|r| r.method == "POST" && r.path == "/accounts")
        );
    }
}
