//! HTTP over API Gateway (HTTP API, payload v2): strict request parsing, problem+json answers,
//! `Idempotency-Key`, `If-Match`/`ETag`, correlation ids and deadlines.
//!
//! A handler wraps each event in an [`ApiRequest`], routes it, and lets [`respond`] turn its
//! `Result<response, Problem>` into the answer: a problem becomes `application/problem+json`,
//! a 5xx logs its cause, every answer echoes the correlation id, and every answer to a command
//! carries the command's `Idempotency-Key` (the client's, or one generated here), so a client
//! whose answer was lost can retry safely.

mod event;
mod json;

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

pub use event::{gateway_event, percent_decode};
pub use json::from_slice_strict;

pub use crate::problem::{DEFAULT_PROBLEM_BASE, IntoProblem, Problem, ProblemType, kinds};

use crate::command::{CommandContext, request_fingerprint};
use crate::envelope::EventMetadata;
use crate::identity::Principal;
use crate::ids::{CommandId, EntityId, StreamId};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `X-Correlation-Id`: taken from the client or generated, echoed, stored with events.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// `Idempotency-Key`: the command id.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// `Idempotent-Replayed: true` marks the answer to a repeated command.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The media type of problem answers.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// What is left of a Lambda's time for answering once a command gives up.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// A request as the handlers see it.
#[derive(Debug)]
pub struct ApiRequest {
    inner: ApiGatewayV2httpRequest,
    correlation_id: String,
    /// The command id of a POST: the client's valid key or a generated one; `None` if the
    /// client's key is malformed (the request is then refused, and no key echoed).
    command_id: Option<CommandId>,
    /// Whether the command id was generated here (the client sent none).
    generated_id: bool,
    deadline: Option<Instant>,
}

impl ApiRequest {
    /// Wraps an API Gateway event, taking or making its correlation id and command id.
    pub fn new(inner: ApiGatewayV2httpRequest) -> Self {
        let header = |name: &str| inner.headers.get(name).and_then(|v| v.to_str().ok());
        let correlation_id = header(CORRELATION_HEADER)
            .filter(|v| is_token(v, 128))
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let command_id = match inner.headers.get(IDEMPOTENCY_HEADER) {
            None => Some(CommandId::generate()),
            Some(value) => value.to_str().ok().and_then(|key| CommandId::new(key).ok()),
        };
        Self {
            generated_id: !inner.headers.contains_key(IDEMPOTENCY_HEADER),
            inner,
            correlation_id,
            command_id,
            deadline: None,
        }
    }

    /// The request of a Lambda invocation, due by the invocation's deadline less
    /// [`DEADLINE_MARGIN`] (see [`deadline_from_lambda`]).
    pub fn from_lambda(event: lambda_runtime::LambdaEvent<ApiGatewayV2httpRequest>) -> Self {
        let deadline = deadline_from_lambda(&event.context);
        Self::new(event.payload).with_deadline(deadline)
    }

    /// Sets when the answer is due (see [`deadline_from_lambda`]).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// `METHOD /path/{param}` as API Gateway matched it.
    pub fn route_key(&self) -> &str {
        self.inner
            .route_key
            .as_deref()
            .or(self.inner.request_context.route_key.as_deref())
            .unwrap_or_default()
    }

    /// Whether the request is a command (a POST), which carries an idempotency key.
    pub fn is_command(&self) -> bool {
        self.route_key().starts_with("POST ")
    }

    /// The path as requested.
    pub fn path(&self) -> &str {
        self.inner.raw_path.as_deref().unwrap_or_default()
    }

    /// The correlation id (from `X-Correlation-Id`, or generated).
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// API Gateway's request id.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_context.request_id.as_deref()
    }

    /// The principal the authorizer vouched for: a JWT's issuer, subject and scopes (from
    /// the `scope` and `scp` claims, the scopes API Gateway matched, and the groups of a
    /// Cognito user in `cognito:groups`: a group named like a scope grants it), or the IAM
    /// caller. `None` when the route has no authorizer.
    pub fn principal(&self) -> Option<Principal> {
        let authorizer = self.inner.request_context.authorizer.as_ref()?;
        if let Some(jwt) = &authorizer.jwt
            && let Some(subject) = jwt.claims.get("sub")
        {
            let mut scopes: Vec<String> = jwt.scopes.clone().unwrap_or_default();
            for claim in ["scope", "scp", "cognito:groups"] {
                if let Some(listed) = jwt.claims.get(claim) {
                    scopes.extend(scope_list(listed));
                }
            }
            let issuer = jwt.claims.get("iss").cloned().unwrap_or_default();
            return Some(Principal::jwt(issuer, subject.clone(), scopes));
        }
        authorizer
            .iam
            .as_ref()
            .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
            .map(Principal::iam)
    }

    /// A header's value, if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A path parameter.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.inner.path_parameters.get(name).map(String::as_str)
    }

    /// Every path parameter, as matched.
    pub fn path_params(&self) -> std::collections::BTreeMap<String, String> {
        self.inner
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A path parameter parsed as an entity id (400 if it is not one).
    pub fn entity_id(&self, name: &str) -> Result<EntityId, Problem> {
        EntityId::parse(self.path_param(name).unwrap_or_default()).map_err(|e| e.to_problem())
    }

    /// A path parameter parsed as a stream id (400 if it is not one).
    pub fn stream_id(&self, name: &str) -> Result<StreamId, Problem> {
        StreamId::parse(self.path_param(name).unwrap_or_default()).map_err(|e| e.to_problem())
    }

    /// A query string parameter (the first, if repeated).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.inner.query_string_parameters.first(name)
    }

    /// The body bytes, base64-decoded if API Gateway encoded them.
    pub fn body(&self) -> Result<Vec<u8>, Problem> {
        let Some(body) = &self.inner.body else {
            return Ok(Vec::new());
        };
        let bytes = if self.inner.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| Problem::new(kinds::MALFORMED_JSON, "the body is not valid base64"))?
        } else {
            body.clone().into_bytes()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Problem::new(
                kinds::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Whether the body is empty or only whitespace.
    pub fn has_no_body(&self) -> Result<bool, Problem> {
        Ok(self.body()?.iter().all(u8::is_ascii_whitespace))
    }

    /// Parses the body as a JSON object into `T`: 400 if there is none, 415 unless it is
    /// `application/json`, 400 for text that is not JSON or has a key twice, 400 for wrong
    /// types, unknown fields (with `deny_unknown_fields`) or values its types refuse.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let bytes = self.body()?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::new(
                kinds::MALFORMED_JSON,
                "this request needs a JSON body",
            ));
        }
        self.require_json_content_type()?;
        let value = from_slice_strict(&bytes).map_err(|e| {
            Problem::new(
                kinds::MALFORMED_JSON,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        // serde would read an array into a struct positionally; the API takes objects only.
        if !value.is_object() {
            return Err(Problem::new(
                kinds::INVALID_REQUEST,
                "the body must be a JSON object",
            ));
        }
        T::deserialize(&value).map_err(|e| Problem::new(kinds::INVALID_REQUEST, e.to_string()))
    }

    /// 415 unless the `Content-Type` is `application/json`, optionally with a UTF-8 charset.
    pub fn require_json_content_type(&self) -> Result<(), Problem> {
        let value = self.header(CONTENT_TYPE.as_str()).unwrap_or_default();
        let mut parts = value.split(';').map(str::trim);
        let media_type_ok = parts
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case("application/json"));
        let parameters_ok = parts.all(|p| {
            p.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("charset")
                    && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        });
        if media_type_ok && parameters_ok {
            Ok(())
        } else {
            Err(Problem::new(
                kinds::UNSUPPORTED_MEDIA_TYPE,
                "a body must be sent as Content-Type: application/json",
            )
            .with("accept", "application/json"))
        }
    }

    /// The command id: the client's `Idempotency-Key`, or one generated for this request.
    pub fn command_id(&self) -> Result<&CommandId, Problem> {
        self.command_id.as_ref().ok_or_else(|| {
            Problem::new(
                kinds::INVALID_REQUEST,
                "Idempotency-Key must be 1-128 printable ASCII characters",
            )
        })
    }

    /// When the answer is due, if the runtime said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The context of a command: its id, the fingerprint of its parsed request (its kind and
    /// canonical JSON, so a retry across a deploy matches), the caller as event metadata, and
    /// the deadline.
    pub fn command_context<T: Serialize>(
        &self,
        kind: &str,
        parsed: &T,
    ) -> Result<CommandContext, Problem> {
        let principal = self.principal();
        // A key lives in its principal's namespace (a generated one too: the client may
        // retry with it, as its own).
        let command_id = match &principal {
            Some(principal) => self.command_id()?.within(&principal.tag()),
            None => self.command_id()?.clone(),
        };
        let fingerprint = request_fingerprint(kind, parsed).map_err(|e| e.to_problem())?;
        let mut context =
            CommandContext::new(command_id, fingerprint).with_metadata(EventMetadata {
                correlation_id: Some(self.correlation_id.clone()),
                causation_id: self.request_id().map(str::to_owned),
                command_id: None,
                actor: principal.as_ref().map(|p| p.subject().to_owned()),
            });
        context.deadline = self.deadline;
        context.fresh_id = self.generated_id;
        context.principal = principal;
        Ok(context)
    }

    /// `If-Match: "<version>"`: the version the client pins, if any.
    pub fn if_match(&self) -> Result<Option<u64>, Problem> {
        parse_if_match(self.header("if-match"))
    }
}

/// A command's deadline from the Lambda context: its deadline less [`DEADLINE_MARGIN`], so a
/// command that gives up still answers before Lambda stops the function. `None` when the
/// context has none (tests).
pub fn deadline_from_lambda(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let left = Duration::from_millis(context.deadline.saturating_sub(now_ms));
    Some(Instant::now() + left.saturating_sub(DEADLINE_MARGIN))
}

/// Answers one request through `route`, never failing: a problem becomes problem+json (its
/// cause logged if it is a 5xx), the correlation id is echoed, an answer to a command carries
/// its `Idempotency-Key`, and every log line of the request carries both.
///
/// ```
/// use eventfold::lambda::http::{Problem, json_response, kinds, respond};
/// use eventfold::testing::request::request;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let route = async |request: &eventfold::lambda::http::ApiRequest| {
///     match request.query("name") {
///         Some(name) => Ok(json_response(200, &serde_json::json!({ "hello": name }))),
///         None => Err(Problem::new(kinds::INVALID_REQUEST, "say who")),
///     }
/// };
/// let answered = respond(request("GET", "/hello").query("name", "ada").api_request(), route).await;
/// assert_eq!(answered.status_code, 200);
/// assert!(answered.headers.contains_key("x-correlation-id"));
/// let refused = respond(request("GET", "/hello").api_request(), route).await;
/// assert_eq!(refused.status_code, 400);
/// assert_eq!(refused.headers["content-type"], "application/problem+json");
/// # }
/// ```
pub async fn respond(
    request: ApiRequest,
    route: impl AsyncFnOnce(&ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem>,
) -> ApiGatewayV2httpResponse {
    let command_id = request
        .is_command()
        .then(|| request.command_id.as_ref().map(ToString::to_string))
        .flatten();
    let span = tracing::info_span!(
        "request",
        correlation_id = %request.correlation_id(),
        command_id = command_id.as_deref().unwrap_or_default(),
        route = %request.route_key(),
    );
    async {
        let mut response = match route(&request).await {
            Ok(response) => response,
            Err(problem) => {
                if problem.status() >= 500 {
                    tracing::error!(
                        problem = problem.kind.slug,
                        cause = problem.cause.as_deref().unwrap_or("unknown"),
                        "request failed"
                    );
                }
                problem_response(&problem, request.path())
            }
        };
        set_header(&mut response, CORRELATION_HEADER, request.correlation_id());
        if let Some(key) = &command_id {
            set_header(&mut response, IDEMPOTENCY_HEADER, key);
        }
        tracing::info!(status = response.status_code, "handled");
        response
    }
    .instrument(span)
    .await
}

/// The scopes of a `scope` or `scp` claim as API Gateway passes it: space-separated, or a
/// JSON array flattened to text (`[a b]`).
fn scope_list(listed: &str) -> impl Iterator<Item = String> + '_ {
    listed
        .trim_matches(|c| c == '[' || c == ']')
        .split([' ', ','])
        .map(|s| s.trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Printable ASCII without spaces, 1..=max characters.
pub fn is_token(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The `application/problem+json` answer of a problem; `instance` is the request path.
pub fn problem_response(problem: &Problem, instance: &str) -> ApiGatewayV2httpResponse {
    let mut response = json_response(problem.status(), &problem.body(instance));
    set_header(&mut response, CONTENT_TYPE.as_str(), PROBLEM_JSON);
    if let Some(seconds) = problem.retry_after {
        set_header(&mut response, "retry-after", &seconds.to_string());
    }
    response
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_string()));
    set_header(&mut response, CONTENT_TYPE.as_str(), "application/json");
    response
}

/// Sets a header, ignoring names or values that are not valid HTTP.
pub fn set_header(response: &mut ApiGatewayV2httpResponse, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        response.headers.insert(name, value);
    }
}

/// Marks the answer to a repeated command.
pub fn mark_replayed(response: &mut ApiGatewayV2httpResponse, replayed: bool) {
    if replayed {
        set_header(response, REPLAYED_HEADER, "true");
    }
}

/// Parses `If-Match: "<version>"` (quotes optional, weak tags refused).
pub fn parse_if_match(value: Option<&str>) -> Result<Option<u64>, Problem> {
    let Some(value) = value else { return Ok(None) };
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let digits = !unquoted.is_empty()
        && unquoted.len() <= 19
        && unquoted.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| unquoted.parse::<u64>().ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            Problem::new(
                kinds::INVALID_REQUEST,
                "If-Match must be a version in quotes, like \"3\"",
            )
        })
}

/// An entity tag for a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}
