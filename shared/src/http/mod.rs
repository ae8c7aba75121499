//! HTTP over API Gateway (HTTP API, payload v2): request access, JSON and problem+json
//! responses, and the single mapping from errors to statuses.

mod problem;

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

pub use problem::{Problem, ProblemKind};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The OpenAPI 3.1 description of the API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A request as the handlers see it.
#[derive(Debug)]
pub struct ApiRequest {
    inner: ApiGatewayV2httpRequest,
    correlation_id: String,
}

impl ApiRequest {
    /// Wraps an API Gateway event, taking or making its correlation id.
    pub fn new(inner: ApiGatewayV2httpRequest) -> Self {
        let correlation_id = inner
            .headers
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_token(v, 128))
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        Self {
            inner,
            correlation_id,
        }
    }

    /// `METHOD /path/{param}` as API Gateway matched it.
    pub fn route_key(&self) -> &str {
        self.inner
            .route_key
            .as_deref()
            .or(self.inner.request_context.route_key.as_deref())
            .unwrap_or_default()
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

    /// The authenticated principal: the JWT subject or the IAM caller, if any.
    pub fn actor(&self) -> Option<String> {
        let authorizer = self.inner.request_context.authorizer.as_ref()?;
        if let Some(jwt) = &authorizer.jwt {
            if let Some(sub) = jwt.claims.get("sub") {
                return Some(sub.clone());
            }
        }
        authorizer
            .iam
            .as_ref()
            .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
    }

    /// A header's value, if it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A path parameter.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.inner.path_parameters.get(name).map(String::as_str)
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
                .map_err(|_| {
                    Problem::new(ProblemKind::MalformedJson, "the body is not valid base64")
                })?
        } else {
            body.clone().into_bytes()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Problem::new(
                ProblemKind::PayloadTooLarge,
                format!(
                    "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Parses the body as JSON into `T`, rejecting unknown fields and wrong types with 400.
    pub fn json<T: DeserializeOwned>(&self) -> Result<(T, Value), Problem> {
        let bytes = self.body()?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::new(
                ProblemKind::MalformedJson,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        // serde would read an array into a struct positionally; the API takes objects only.
        if !value.is_object() {
            return Err(Problem::new(
                ProblemKind::InvalidRequest,
                "the body must be a JSON object",
            ));
        }
        let parsed = T::deserialize(&value)
            .map_err(|e| Problem::new(ProblemKind::InvalidRequest, e.to_string()))?;
        Ok((parsed, value))
    }
}

/// Answers one request through `route`, never failing: a problem becomes problem+json, the
/// correlation id is echoed, and every log line of the request carries it.
pub async fn respond(
    request: ApiGatewayV2httpRequest,
    route: impl AsyncFnOnce(&ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem>,
) -> ApiGatewayV2httpResponse {
    let request = ApiRequest::new(request);
    let span = tracing::info_span!(
        "request",
        correlation_id = %request.correlation_id(),
        route = %request.route_key(),
    );
    async {
        let mut response = match route(&request).await {
            Ok(response) => response,
            Err(problem) => {
                if problem.kind.status() >= 500 {
                    tracing::error!(detail = %problem.detail, "request failed");
                }
                problem.into_response(request.path())
            }
        };
        set_header(&mut response, CORRELATION_HEADER, request.correlation_id());
        tracing::info!(status = response.status_code, "handled");
        response
    }
    .instrument(span)
    .await
}

/// Printable ASCII without spaces, 1..=max characters.
pub fn is_token(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic())
}

/// A response to be stored with a command so a repeat can answer identically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl StoredResponse {
    /// A JSON response with the given status.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: BTreeMap::new(),
            body,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_owned(), value.into());
        self
    }

    /// As stored in the command record.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Back from a command record.
    pub fn from_value(value: &Value) -> Option<Self> {
        Self::deserialize(value).ok()
    }

    /// The API Gateway response.
    pub fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut response = json_response(self.status, &self.body);
        for (name, value) in self.headers {
            set_header(&mut response, &name, &value);
        }
        response
    }
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
                ProblemKind::InvalidRequest,
                "If-Match must be a version in quotes, like \"3\"",
            )
        })
}

/// An entity tag for a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}
