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
    /// `!Sub "text with ${X} and ${X.Attr}"`
    Sub(String),
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
                    "!Sub" => Ok(Self::Sub(inner.to_owned())),
                    other => Err(err(format!("unsupported intrinsic {other}"))),
                }
            }
            Value::String(s) => Ok(Self::Literal(s.clone())),
            Value::Number(n) => Ok(Self::Literal(n.to_string())),
            Value::Bool(b) => Ok(Self::Literal(b.to_string())),
            other => Err(err(format!("expected a reference, got {other:?}"))),
        }
    }

    /// The logical id referred to, if any (for `!Sub`, the first one it names).
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Ref(id) | Self::GetAtt(id, _) => Some(id),
            Self::Sub(text) => sub_names(text)
                .find(|name| !name.starts_with("AWS::"))
                .map(|name| name.split('.').next().unwrap_or(name)),
            Self::Literal(_) => None,
        }
    }
}

/// The `${…}` names of a `!Sub` string, in order.
pub fn sub_names(text: &str) -> impl Iterator<Item = &str> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
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
    /// How often a schedule invokes it (a SAM `Schedule` event's `rate(…)`).
    pub schedules: Vec<std::time::Duration>,
    pub policies: Vec<PolicyStatement>,
}

/// Who may call a route, as its `AuthorizationType` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAuth {
    /// `NONE`: anyone.
    None,
    /// `AWS_IAM`: a SigV4-signed request.
    Iam,
    /// `JWT`: a token the authorizer (logical id) accepts, holding one of `scopes` if any.
    Jwt {
        authorizer: String,
        scopes: Vec<String>,
    },
}

/// An HTTP API route and the function behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub logical_id: String,
    pub method: String,
    /// With `{param}` placeholders, as API Gateway writes them.
    pub path: String,
    pub function: String,
    /// Who may call it.
    pub auth: RouteAuth,
}

/// A JWT authorizer of the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizerSpec {
    pub logical_id: String,
    /// `JwtConfiguration.Issuer`.
    pub issuer: Reference,
    /// `JwtConfiguration.Audience`.
    pub audiences: Vec<Reference>,
}

/// A Cognito user pool, with the groups declared in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPoolSpec {
    pub logical_id: String,
    /// `GroupName`s of the pool's `AWS::Cognito::UserPoolGroup` resources.
    pub groups: Vec<String>,
}

/// A Cognito app client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPoolClientSpec {
    pub logical_id: String,
    /// The pool (logical id).
    pub pool: String,
    /// `ExplicitAuthFlows`.
    pub auth_flows: Vec<String>,
}

/// An S3 bucket, with its default Object Lock retention if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: String,
    /// `ObjectLockEnabled`.
    pub object_lock: bool,
    /// The default retention: mode (`GOVERNANCE`, `COMPLIANCE`) and days (a reference: a
    /// parameter, say).
    pub retention: Option<(String, Reference)>,
}

/// A KMS key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsKeySpec {
    pub logical_id: String,
    /// `KeySpec` (`SYMMETRIC_DEFAULT` unless said).
    pub key_spec: String,
    /// `KeyUsage` (`ENCRYPT_DECRYPT` unless said).
    pub key_usage: String,
}

/// Everything the local environment needs from the template.
#[derive(Clone, Debug, Default)]
pub struct Template {
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub functions: Vec<FunctionSpec>,
    pub routes: Vec<RouteSpec>,
    /// JWT authorizers.
    pub authorizers: Vec<AuthorizerSpec>,
    /// Cognito user pools and their app clients.
    pub user_pools: Vec<UserPoolSpec>,
    pub user_pool_clients: Vec<UserPoolClientSpec>,
    /// KMS keys.
    pub kms_keys: Vec<KmsKeySpec>,
    /// S3 buckets.
    pub buckets: Vec<BucketSpec>,
    /// Parameter values: the defaults, or what the template was loaded with.
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
    /// Reads and interprets a template file, its parameters at their defaults.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Self::load_with(path, &BTreeMap::new())
    }

    /// Reads and interprets a template file with some parameters set.
    pub fn load_with(
        path: &Path,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        Self::parse_with(&text, parameters)
    }

    /// Interprets template text, its parameters at their defaults.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        Self::parse_with(source, &BTreeMap::new())
    }

    /// Interprets template text with some parameters set: conditions are decided, and every
    /// `!If` is replaced by the branch its condition takes (`AWS::NoValue` drops the key).
    pub fn parse_with(
        source: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let root: Value =
            serde_norway::from_str(source).map_err(|e| err(format!("not YAML: {e}")))?;
        let mut template = Self::default();
        if let Some(declared) = get(&root, "Parameters").and_then(Value::as_mapping) {
            for (name, spec) in declared {
                if let (Some(name), Some(default)) =
                    (name.as_str(), text_value(get(spec, "Default")))
                {
                    template.parameters.insert(name.to_owned(), default);
                }
            }
        }
        for (name, value) in parameters {
            if !template.parameters.contains_key(name) {
                return Err(err(format!("no parameter {name}")));
            }
            template.parameters.insert(name.clone(), value.clone());
        }
        let conditions = Conditions::decide(
            get(&root, "Conditions").and_then(Value::as_mapping),
            &template.parameters,
        )?;
        let mut root = root;
        if let Some(resources) = get_mut(&mut root, "Resources") {
            conditions.apply(resources)?;
        }
        let resources = get(&root, "Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| err("no Resources"))?;
        let mut groups = Vec::new();
        let mut integrations = BTreeMap::new();
        let mut raw_routes = Vec::new();
        let mut mappings = Vec::new();
        for (id, resource) in resources {
            let id = id
                .as_str()
                .ok_or_else(|| err("non-string logical id"))?
                .to_owned();
            let kind = text(resource, "Type").ok_or_else(|| err(format!("{id} has no Type")))?;
            if let Some(condition) = text(resource, "Condition")
                && !conditions.holds(&condition)?
            {
                continue;
            }
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
                "AWS::ApiGatewayV2::Authorizer"
                    if text(&properties, "AuthorizerType").as_deref() == Some("JWT") =>
                {
                    let jwt = get(&properties, "JwtConfiguration")
                        .ok_or_else(|| err(format!("{id}: no JwtConfiguration")))?;
                    let issuer = get(jwt, "Issuer")
                        .map(Reference::parse)
                        .transpose()?
                        .ok_or_else(|| err(format!("{id}: no Issuer")))?;
                    let audiences = seq(jwt, "Audience")
                        .map(Reference::parse)
                        .collect::<Result<_, _>>()?;
                    template.authorizers.push(AuthorizerSpec {
                        logical_id: id.clone(),
                        issuer,
                        audiences,
                    });
                }
                "AWS::Cognito::UserPool" => template.user_pools.push(UserPoolSpec {
                    logical_id: id.clone(),
                    groups: Vec::new(),
                }),
                "AWS::Cognito::UserPoolClient" => {
                    template.user_pool_clients.push(UserPoolClientSpec {
                        logical_id: id.clone(),
                        pool: pool_of(&id, &properties)?,
                        auth_flows: seq(&properties, "ExplicitAuthFlows")
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect(),
                    });
                }
                "AWS::Cognito::UserPoolGroup" => {
                    let name = text(&properties, "GroupName")
                        .ok_or_else(|| err(format!("{id}: no GroupName")))?;
                    groups.push((pool_of(&id, &properties)?, name));
                }
                "AWS::S3::Bucket" => {
                    let retention = get(&properties, "ObjectLockConfiguration")
                        .and_then(|c| get(c, "Rule"))
                        .and_then(|r| get(r, "DefaultRetention"));
                    let retention = match retention {
                        Some(r) => Some((
                            text(r, "Mode").ok_or_else(|| err(format!("{id}: no Mode")))?,
                            get(r, "Days")
                                .map(Reference::parse)
                                .transpose()?
                                .ok_or_else(|| err(format!("{id}: no Days")))?,
                        )),
                        None => None,
                    };
                    template.buckets.push(BucketSpec {
                        logical_id: id.clone(),
                        object_lock: flag(&properties, "ObjectLockEnabled"),
                        retention,
                    });
                }
                "AWS::KMS::Key" => template.kms_keys.push(KmsKeySpec {
                    logical_id: id.clone(),
                    key_spec: text(&properties, "KeySpec")
                        .unwrap_or_else(|| "SYMMETRIC_DEFAULT".into()),
                    key_usage: text(&properties, "KeyUsage")
                        .unwrap_or_else(|| "ENCRYPT_DECRYPT".into()),
                }),
                _ => {}
            }
        }
        for (pool, group) in groups {
            template
                .user_pools
                .iter_mut()
                .find(|p| p.logical_id == pool)
                .ok_or_else(|| err(format!("group {group} of an unknown pool {pool}")))?
                .groups
                .push(group);
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
            let auth = match text(&properties, "AuthorizationType").as_deref() {
                None | Some("NONE") => RouteAuth::None,
                Some("AWS_IAM") => RouteAuth::Iam,
                Some("JWT") => RouteAuth::Jwt {
                    authorizer: get(&properties, "AuthorizerId")
                        .map(Reference::parse)
                        .transpose()?
                        .and_then(|r| r.target().map(str::to_owned))
                        .ok_or_else(|| err(format!("{id}: a JWT route without AuthorizerId")))?,
                    scopes: seq(&properties, "AuthorizationScopes")
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect(),
                },
                Some(other) => {
                    return Err(err(format!("{id}: unsupported AuthorizationType {other}")));
                }
            };
            template.routes.push(RouteSpec {
                logical_id: id,
                method: method.to_owned(),
                path: path.to_owned(),
                function: function.clone(),
                auth,
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

    /// A JWT authorizer by logical id.
    pub fn authorizer(&self, logical_id: &str) -> Option<&AuthorizerSpec> {
        self.authorizers.iter().find(|a| a.logical_id == logical_id)
    }

    /// A user pool by logical id.
    pub fn user_pool(&self, logical_id: &str) -> Option<&UserPoolSpec> {
        self.user_pools.iter().find(|p| p.logical_id == logical_id)
    }
}

/// The pool (logical id) a Cognito resource's `UserPoolId` refers to.
fn pool_of(id: &str, properties: &Value) -> Result<String, TemplateError> {
    get(properties, "UserPoolId")
        .map(Reference::parse)
        .transpose()?
        .and_then(|r| r.target().map(str::to_owned))
        .ok_or_else(|| err(format!("{id}: UserPoolId must be !Ref a pool")))
}

fn get_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    value.as_mapping_mut().and_then(|m| m.get_mut(key))
}

/// The template's conditions, decided for its parameter values.
struct Conditions(BTreeMap<String, bool>);

impl Conditions {
    fn decide(
        declared: Option<&serde_norway::Mapping>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let mut decided = BTreeMap::new();
        let declared: Vec<(String, &Value)> = declared
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.as_str()?.to_owned(), value)))
            .collect();
        // A condition may name another (`!Condition`): decide in rounds until all are known.
        let mut pending = declared;
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for (name, value) in pending {
                match evaluate(value, parameters, &decided) {
                    Ok(Some(result)) => {
                        decided.insert(name, result);
                    }
                    Ok(None) => waiting.push((name, value)),
                    Err(error) => return Err(err(format!("condition {name}: {}", error.0))),
                }
            }
            if waiting.len() == before {
                return Err(err("conditions refer to each other in a cycle"));
            }
            pending = waiting;
        }
        Ok(Self(decided))
    }

    /// Whether the condition `name` holds.
    fn holds(&self, name: &str) -> Result<bool, TemplateError> {
        self.0
            .get(name)
            .copied()
            .ok_or_else(|| err(format!("no condition {name}")))
    }

    /// Replaces every `!If` under `value` by the branch taken; a branch of `!Ref AWS::NoValue`
    /// removes the key that held it.
    fn apply(&self, value: &mut Value) -> Result<(), TemplateError> {
        match value {
            Value::Mapping(map) => {
                let mut dropped = Vec::new();
                for (key, item) in map.iter_mut() {
                    self.apply(item)?;
                    if is_no_value(item) {
                        dropped.push(key.clone());
                    }
                }
                for key in dropped {
                    map.remove(&key);
                }
            }
            Value::Sequence(items) => {
                for item in items.iter_mut() {
                    self.apply(item)?;
                }
                items.retain(|item| !is_no_value(item));
            }
            Value::Tagged(tagged) if tagged.tag == "If" => {
                let branches = tagged
                    .value
                    .as_sequence()
                    .filter(|b| b.len() == 3)
                    .ok_or_else(|| err("!If takes [condition, then, else]"))?;
                let condition = branches[0]
                    .as_str()
                    .ok_or_else(|| err("!If's condition is not a name"))?;
                let taken = self.holds(condition)?;
                let mut chosen = branches[if taken { 1 } else { 2 }].clone();
                self.apply(&mut chosen)?;
                *value = chosen;
            }
            Value::Tagged(tagged) => self.apply(&mut tagged.value)?,
            _ => {}
        }
        Ok(())
    }
}

fn is_no_value(value: &Value) -> bool {
    matches!(value, Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AWS::NoValue"))
}

/// A condition's value, or `None` while a condition it names is undecided.
fn evaluate(
    value: &Value,
    parameters: &BTreeMap<String, String>,
    decided: &BTreeMap<String, bool>,
) -> Result<Option<bool>, TemplateError> {
    let Value::Tagged(tagged) = value else {
        return Err(err(format!("not a condition function: {value:?}")));
    };
    let operands = || {
        tagged
            .value
            .as_sequence()
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let all = |items: &[Value]| -> Result<Option<Vec<bool>>, TemplateError> {
        let mut results = Vec::new();
        for item in items {
            match evaluate(item, parameters, decided)? {
                Some(result) => results.push(result),
                None => return Ok(None),
            }
        }
        Ok(Some(results))
    };
    let tag = tagged.tag.to_string();
    Ok(match tag.as_str() {
        "!Equals" => match operands() {
            [a, b] => Some(scalar(a, parameters)? == scalar(b, parameters)?),
            _ => return Err(err("!Equals takes two values")),
        },
        "!Not" => all(operands())?.map(|r| !r.first().copied().unwrap_or(false)),
        "!And" => all(operands())?.map(|r| r.iter().all(|b| *b)),
        "!Or" => all(operands())?.map(|r| r.iter().any(|b| *b)),
        "!Condition" => {
            let name = tagged
                .value
                .as_str()
                .ok_or_else(|| err("!Condition takes a name"))?;
            decided.get(name).copied()
        }
        other => return Err(err(format!("unsupported condition function {other}"))),
    })
}

/// A literal, or a parameter's value by `!Ref`.
fn scalar(value: &Value, parameters: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    match Reference::parse(value)? {
        Reference::Literal(text) => Ok(text),
        Reference::Ref(name) => parameters
            .get(&name)
            .cloned()
            .ok_or_else(|| err(format!("!Ref {name} in a condition is not a parameter"))),
        other => Err(err(format!("unsupported value in a condition: {other:?}"))),
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
    let mut schedules = Vec::new();
    if let Some(events) = get(properties, "Events").and_then(Value::as_mapping) {
        for (name, event) in events {
            let event_props = get(event, "Properties").cloned().unwrap_or(Value::Null);
            match text(event, "Type").as_deref() {
                Some("DynamoDB") => stream_sources.push(parse_stream_source(id, &event_props)?),
                Some("SQS") => queue_sources.push(parse_queue_source(id, &event_props)?),
                Some("Schedule" | "ScheduleV2") => {
                    let expression = text(&event_props, "Schedule")
                        .or_else(|| text(&event_props, "ScheduleExpression"))
                        .unwrap_or_default();
                    let every = parse_rate(&expression).ok_or_else(|| {
                        err(format!(
                            "{id}: event {name:?}: {expression:?} is not rate(<n> <unit>)"
                        ))
                    })?;
                    schedules.push(every);
                }
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
        schedules,
        policies,
    })
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(30 seconds)`, `rate(2 hours)`, `rate(1 day)`.
pub fn parse_rate(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(count * seconds))
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

    fn repository_template() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
    }

    #[test]
    fn conditions_decide_each_routes_authorization_and_the_identity_resources() {
        let jwt = Template::load(&repository_template()).expect("parses");
        assert_eq!(jwt.parameters["AuthMode"], "JWT");
        assert!(
            jwt.routes.iter().all(|r| matches!(&r.auth,
                RouteAuth::Jwt { authorizer, scopes } if authorizer == "JwtAuthorizer" && scopes.is_empty())),
            "{:?}",
            jwt.routes
        );
        let authorizer = jwt.authorizer("JwtAuthorizer").expect("the authorizer");
        assert_eq!(
            authorizer.issuer,
            Reference::Sub("https://${UserPool.ProviderName}".into())
        );
        assert_eq!(authorizer.issuer.target(), Some("UserPool"));
        assert_eq!(authorizer.audiences, [Reference::Ref("ApiClient".into())]);
        assert_eq!(
            jwt.user_pool("UserPool").expect("the pool").groups,
            ["bank/read", "bank/write", "bank/operator"]
        );
        assert_eq!(jwt.user_pool_clients[0].pool, "UserPool");
        let keys: BTreeMap<&str, (&str, &str)> = jwt
            .kms_keys
            .iter()
            .map(|k| {
                (
                    k.logical_id.as_str(),
                    (k.key_spec.as_str(), k.key_usage.as_str()),
                )
            })
            .collect();
        assert_eq!(keys["ClaimKey"], ("HMAC_256", "GENERATE_VERIFY_MAC"));
        assert_eq!(keys["AnchorKey"], ("ECC_NIST_P256", "SIGN_VERIFY"));
        assert_eq!(keys["SubjectKey"], ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"));
        let anchors = &jwt.buckets[0];
        assert!(anchors.object_lock);
        assert_eq!(
            anchors.retention,
            Some((
                "COMPLIANCE".into(),
                Reference::Ref("AnchorRetentionDays".into())
            ))
        );

        let parameters = BTreeMap::from([("AuthMode".to_owned(), "IAM".to_owned())]);
        let iam = Template::load_with(&repository_template(), &parameters).expect("parses");
        assert!(iam.routes.iter().all(|r| r.auth == RouteAuth::Iam));
        assert!(
            iam.authorizers.is_empty(),
            "the authorizer's condition is false"
        );
        let unknown = BTreeMap::from([("Nope".to_owned(), "x".to_owned())]);
        assert!(Template::load_with(&repository_template(), &unknown).is_err());
    }

    #[test]
    fn if_no_value_and_condition_functions() {
        let source = r#"
Parameters:
  Mode: {Type: String, Default: a}
Conditions:
  IsA: !Equals [!Ref Mode, a]
  NotA: !Not [!Condition IsA]
  Both: !And [!Condition IsA, !Or [!Condition NotA, !Equals [x, x]]]
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {IntegrationUri: !GetAtt F.Arn}
  R:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      RouteKey: GET /x
      Target: !Sub "integrations/${Api}"
      AuthorizationType: !If [Both, AWS_IAM, NONE]
      AuthorizerId: !If [NotA, !Ref Nothing, !Ref "AWS::NoValue"]
"#;
        let a = Template::parse(source).expect("parses");
        assert_eq!(a.routes[0].auth, RouteAuth::Iam);
        let b = Template::parse_with(source, &BTreeMap::from([("Mode".into(), "b".into())]))
            .expect("parses");
        assert_eq!(b.routes[0].auth, RouteAuth::None);
    }

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
