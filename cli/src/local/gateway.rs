//! The local API Gateway: HTTP requests become API Gateway HTTP API (payload v2) events for the
//! function the template routes them to, and the function's response becomes the HTTP
//! response — status, headers, cookies, and base64 bodies decoded — as API Gateway does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as EventBody;
use base64::Engine;
use bytes::Bytes;
use eventfold::lambda::http::{PROBLEM_JSON, Problem, gateway_event, kinds, percent_decode};
use eventfold::problem::ProblemType;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::identity::jwt::{JwtAuthorizer, Refusal};
use crate::local::functions::HttpHandler;
use crate::local::head::{self, HeadRefusal};
use crate::local::template::{RouteAuth, RouteSpec};

/// API Gateway's payload limit for HTTP APIs (10 MB); bigger requests get 413 here as there.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// A route and the function that serves it.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: String,
    segments: Vec<Segment>,
    pub path: String,
    /// Who may call it (the template's `AuthorizationType`).
    pub auth: RouteAuth,
    pub handler: Arc<dyn HttpHandler>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Route {
    /// A route from the template, served by `handler`.
    pub fn new(spec: &RouteSpec, handler: Arc<dyn HttpHandler>) -> Self {
        let segments = spec
            .path
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self {
            method: spec.method.clone(),
            segments,
            path: spec.path.clone(),
            auth: spec.auth.clone(),
            handler,
        }
    }

    /// The route key API Gateway puts in the event.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters if `path` matches, percent-decoded.
    fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if method != self.method {
            return None;
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => {
                    params.insert(name.clone(), percent_decode(part)?);
                }
            }
        }
        Some(params)
    }

    /// How specific the route is: literal segments win over parameters, as in API Gateway.
    fn specificity(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }
}

/// How long a client may take to send its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole head (also how long an idle connection is kept).
    pub head_timeout: Duration,
    /// The body, once the head is in.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head_timeout: head::HEAD_TIMEOUT,
            body_timeout: head::BODY_TIMEOUT,
        }
    }
}

/// The routing table, and the authorizers its routes name.
#[derive(Clone, Debug, Default)]
pub struct Gateway {
    routes: Vec<Route>,
    authorizers: BTreeMap<String, Arc<JwtAuthorizer>>,
    limits: Limits,
}

impl Gateway {
    /// A gateway over routes.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Self {
            routes,
            authorizers: BTreeMap::new(),
            limits: Limits::default(),
        }
    }

    /// The same gateway with the JWT authorizers its routes name, by logical id.
    #[must_use]
    pub fn with_authorizers(mut self, authorizers: BTreeMap<String, Arc<JwtAuthorizer>>) -> Self {
        self.authorizers = authorizers;
        self
    }

    /// The same gateway with other time limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The routes served.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Serves HTTP on `listener` until `shutdown` turns true: one request per connection,
    /// whose head is read within the head timeout and the head limits, and whose body within
    /// the body timeout; every refusal is problem+json.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            tokio::spawn(self.clone().serve_connection(stream, peer));
        }
    }

    async fn serve_connection(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let read = match head::read_head(&mut stream, self.limits.head_timeout).await {
            Ok(read) => read,
            Err(HeadRefusal::Answer(problem)) => {
                tracing::debug!(%peer, status = problem.status(), "request head refused");
                head::answer_and_close(&mut stream, &problem).await;
                return;
            }
            Err(HeadRefusal::Gone) => return,
        };
        let head_timeout = self.limits.head_timeout;
        let service = service_fn(move |request| {
            let gateway = self.clone();
            async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
        });
        // The head is complete and checked: hyper parses it at once. One request per
        // connection, so that every request passes the checks above.
        let connection = http1::Builder::new()
            .keep_alive(false)
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .serve_connection(TokioIo::new(head::Rewind::new(read, stream)), service);
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended");
        }
    }

    /// Handles one HTTP request.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let collected = tokio::time::timeout(
            self.limits.body_timeout,
            http_body_util::Limited::new(body, MAX_REQUEST_BYTES).collect(),
        )
        .await;
        let body = match collected {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<LengthLimitError>() => {
                return problem(
                    &path,
                    Problem::new(
                        kinds::PAYLOAD_TOO_LARGE,
                        format!("the body is over {MAX_REQUEST_BYTES} bytes"),
                    ),
                );
            }
            Ok(Err(error)) => {
                return problem(
                    &path,
                    Problem::new(
                        kinds::INVALID_REQUEST,
                        format!("the body could not be read: {error}"),
                    ),
                );
            }
            Err(_) => {
                return problem(
                    &path,
                    Problem::new(
                        head::REQUEST_TIMEOUT,
                        format!(
                            "the body did not arrive within {} ms",
                            self.limits.body_timeout.as_millis()
                        ),
                    ),
                );
            }
        };
        let method = parts.method.as_str().to_owned();
        let Some((route, params)) = self
            .routes
            .iter()
            .find_map(|route| route.matches(&method, &path).map(|params| (route, params)))
        else {
            return self.no_route(&method, &path);
        };
        let authorizer = match self.authorize(&route.auth, &parts.headers).await {
            Ok(authorizer) => authorizer,
            Err(refused) => return problem(&path, refused),
        };
        let mut event = gateway_event(&route.key(), params, &parts, &body, peer);
        event.request_context.authorizer = authorizer;
        match route.handler.invoke(event).await {
            Ok(response) => from_response(response),
            Err(error) => {
                tracing::error!(route = %route.key(), %error, "function error");
                problem(&path, Problem::new(kinds::INTERNAL, "the function failed"))
            }
        }
    }

    /// The authorizer context of a request to a route with `auth`, or the refusal API
    /// Gateway would answer (here as problem+json): 401 without valid credentials, 403
    /// without the route's scope.
    async fn authorize(
        &self,
        auth: &RouteAuth,
        headers: &http::HeaderMap,
    ) -> Result<Option<ApiGatewayRequestAuthorizer>, Problem> {
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match auth {
            RouteAuth::None => Ok(None),
            RouteAuth::Iam => iam_caller(authorization).map(Some).ok_or_else(|| {
                Problem::new(
                    FORBIDDEN_BY_GATEWAY,
                    "this route needs a SigV4-signed request (AWS_IAM)",
                )
            }),
            RouteAuth::Jwt { authorizer, scopes } => {
                let Some(jwt) = self.authorizers.get(authorizer) else {
                    return Err(Problem::new(
                        kinds::INTERNAL,
                        format!("the route names an authorizer {authorizer} the runner has not"),
                    ));
                };
                let now = chrono::Utc::now().timestamp();
                match jwt.authorize(authorization, scopes, now).await {
                    Ok(context) => Ok(Some(context)),
                    Err(Refusal::Unauthorized(why)) => {
                        Err(Problem::new(kinds::UNAUTHENTICATED, why))
                    }
                    Err(Refusal::Forbidden(why)) => Err(Problem::new(kinds::FORBIDDEN, why)),
                }
            }
        }
    }

    /// 405 with `Allow` when the path has routes for other methods, else 404.
    fn no_route(&self, method: &str, path: &str) -> Response<Full<Bytes>> {
        let mut allowed: Vec<&str> = self
            .routes
            .iter()
            .filter(|route| route.matches(&route.method, path).is_some())
            .map(|route| route.method.as_str())
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        if allowed.is_empty() {
            return problem(
                path,
                Problem::new(
                    kinds::ROUTE_NOT_FOUND,
                    format!("no route for {method} {path}"),
                ),
            );
        }
        let allow = allowed.join(", ");
        let mut response = problem(
            path,
            Problem::new(
                kinds::METHOD_NOT_ALLOWED,
                format!("{path} takes {allow}, not {method}"),
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert("allow", value);
        }
        response
    }
}

/// API Gateway's answer to an `AWS_IAM` route called without a signature (403).
const FORBIDDEN_BY_GATEWAY: ProblemType = kinds::FORBIDDEN;

/// The IAM caller of a SigV4-signed request, by the access key its `Authorization` header
/// names. Like the emulator (without its opt-in IAM enforcement), the runner does not check
/// the signature: locally every key is the account's, and the caller is its user.
pub fn iam_caller(authorization: Option<&str>) -> Option<ApiGatewayRequestAuthorizer> {
    let credential = authorization?
        .strip_prefix("AWS4-HMAC-SHA256 ")?
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let access_key = credential.split('/').next().filter(|k| !k.is_empty())?;
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.access_key = Some(access_key.to_owned());
    iam.account_id = Some(LOCAL_ACCOUNT.to_owned());
    iam.caller_id = Some(access_key.to_owned());
    iam.user_arn = Some(format!("arn:aws:iam::{LOCAL_ACCOUNT}:user/{access_key}"));
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    Some(authorizer)
}

/// The account of the local environment (the emulator's).
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// The caller of a function invoked directly rather than through the gateway (a cold-start
/// check, a metrics test): an IAM principal of the local account, which holds every scope.
pub const LOCAL_OPERATOR: &str = "arn:aws:iam::000000000000:user/local-operator";

/// The authorizer context of [`LOCAL_OPERATOR`].
pub fn local_operator() -> ApiGatewayRequestAuthorizer {
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.user_arn = Some(LOCAL_OPERATOR.to_owned());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    authorizer
}

/// A problem+json answer of the gateway's own.
fn problem(instance: &str, problem: Problem) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = Response::new(Full::new(Bytes::from(problem.body(instance).to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(PROBLEM_JSON));
    if let Some(seconds) = problem.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// Turns the function's response into HTTP as API Gateway does.
fn from_response(response: ApiGatewayV2httpResponse) -> Response<Full<Bytes>> {
    let bytes = match response.body {
        None => Bytes::new(),
        Some(EventBody::Text(text)) if response.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from)
                .unwrap_or_default()
        }
        Some(EventBody::Text(text)) => Bytes::from(text),
        Some(EventBody::Binary(bytes)) => Bytes::from(bytes),
        Some(EventBody::Empty) => Bytes::new(),
        Some(_) => Bytes::new(),
    };
    let mut http_response = Response::new(Full::new(bytes));
    *http_response.status_mut() =
        StatusCode::from_u16(u16::try_from(response.status_code).unwrap_or(500))
            .unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = http_response.headers_mut();
    for (name, value) in &response.multi_value_headers {
        headers.append(name, value.clone());
    }
    for (name, value) in &response.headers {
        headers.insert(name, value.clone());
    }
    for cookie in response.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append("set-cookie", value);
        }
    }
    if !headers.contains_key("content-type") {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    http_response
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;

    use super::*;

    #[derive(Debug)]
    struct Nothing;

    #[async_trait::async_trait]
    impl HttpHandler for Nothing {
        async fn invoke(
            &self,
            _: ApiGatewayV2httpRequest,
        ) -> Result<ApiGatewayV2httpResponse, String> {
            Err("unused".into())
        }
    }

    #[test]
    fn an_iam_route_takes_the_caller_from_a_sigv4_header_and_nothing_else() {
        let signed = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        let iam = iam_caller(Some(signed))
            .and_then(|a| a.iam)
            .expect("a caller");
        assert_eq!(
            iam.user_arn.as_deref(),
            Some("arn:aws:iam::000000000000:user/AKIDEXAMPLE")
        );
        for refused in [
            None,
            Some("Bearer eyJ"),
            Some("AWS4-HMAC-SHA256 SignedHeaders=host"),
            Some("AWS4-HMAC-SHA256 Credential=/x"),
        ] {
            assert!(iam_caller(refused).is_none(), "{refused:?}");
        }
    }

    fn route(method: &str, path: &str) -> Route {
        Route::new(
            &RouteSpec {
                logical_id: "R".into(),
                method: method.into(),
                path: path.into(),
                function: "F".into(),
                auth: RouteAuth::None,
            },
            Arc::new(Nothing),
        )
    }

    #[test]
    fn routes_match_like_api_gateway() {
        let deposits = route("POST", "/accounts/{id}/deposits");
        let params = deposits
            .matches("POST", "/accounts/a%2Fb/deposits")
            .expect("matches");
        assert_eq!(params["id"], "a/b");
        assert!(deposits.matches("GET", "/accounts/a/deposits").is_none());
        assert!(deposits.matches("POST", "/accounts//deposits").is_none());
        assert!(deposits.matches("POST", "/accounts/a/deposits/x").is_none());
        assert!(
            route("GET", "/openapi.json")
                .matches("GET", "/openapi.json")
                .is_some()
        );
    }
}
