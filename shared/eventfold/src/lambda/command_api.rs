//! The command function over a route table: an application lists its routes (method and
//! path, body type, how to run the command, how to answer), and the runtime does the rest.
//!
//! By construction, for every route:
//! - the body is parsed strictly (415, 400) and a command only ever sees a valid one;
//! - the idempotency fingerprint covers the route, every path parameter, the body and
//!   `If-Match`, so a key reused on another resource or with another body is refused, never
//!   answered with the first result;
//! - the answer carries `ETag` (the first stream written), `Idempotency-Key`, and
//!   `Idempotent-Replayed` on a repeat; refusals are problem+json, with `Retry-After` where a
//!   retry can cure them;
//! - the command is bounded by the invocation's deadline;
//! - one metrics record per command, its outcome typed from what happened (never read back
//!   from a status code), with its execution's stats.
//!
//! ```
//! use eventfold::lambda::command_api::{Command, CommandApi, Refused, Reply};
//! use eventfold::prelude::*;
//! use eventfold::testing::toy::{Counter, CounterCommand, CounterError};
//! use std::sync::Arc;
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Add {
//!     n: u64,
//! }
//!
//! async fn add(service: CommandService, cmd: Command<Add>) -> Result<Executed<()>, Refused<CounterError>> {
//!     let stream = Counter::stream_id(&cmd.entity_id("id")?);
//!     let target = Target::new(stream).if_match(cmd.if_match);
//!     Ok(service
//!         .execute_one::<Counter, _>(&cmd.context, target, &CounterCommand::Add(cmd.body.n), ())
//!         .await?)
//! }
//!
//! let api = CommandApi::new(CommandService::new(Arc::new(MemoryStore::new())))
//!     .route("POST /counters/{id}/additions", add, |cmd, done| {
//!         let stream = Counter::stream_id(&cmd.entity_id("id")?);
//!         Ok(Reply::ok(serde_json::json!({ "version": done.version_of(&stream) })))
//!     });
//! assert_eq!(api.route_keys().collect::<Vec<_>>(), ["POST /counters/{id}/additions"]);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::http::{
    ApiRequest, IntoProblem, Problem, etag, json_response, kinds, mark_replayed, set_header,
};
use super::metrics::{Metric, Metrics, millis};
use crate::command::{CommandContext, CommandError, Executed, Outcome};
use crate::identity::{Denied, authenticated};
use crate::ids::EntityId;

/// The metrics each command's record carries (with the dimension `Outcome`).
pub const METRICS: &[&str] = &[
    "Commands",
    "CommandLatency",
    "ConflictsRetried",
    "AppendLatency",
    "EventsFoldedPastSnapshot",
    "SnapshotsRefused",
];

/// A request to one route, parsed: its body, path parameters, `If-Match`, and the context its
/// command runs in.
#[derive(Debug)]
pub struct Command<B> {
    /// The body, parsed into the route's type.
    pub body: B,
    /// The path parameters, as matched.
    pub path: BTreeMap<String, String>,
    /// `If-Match: "<version>"`, if sent.
    pub if_match: Option<u64>,
    /// Id, fingerprint, caller metadata and deadline.
    pub context: CommandContext,
}

impl<B> Command<B> {
    /// A path parameter parsed as an entity id (400 if it is not one).
    pub fn entity_id(&self, name: &str) -> Result<EntityId, Problem> {
        EntityId::parse(self.path.get(name).map_or("", String::as_str)).map_err(|e| e.to_problem())
    }
}

/// Why a route's command did not run: input refused before it ran, or the command's own error.
#[derive(Debug)]
pub enum Refused<E: std::error::Error + 'static> {
    /// The input is not valid (a path parameter, say); nothing ran.
    Invalid(Problem),
    /// The command service's answer.
    Command(CommandError<E>),
}

impl<E: std::error::Error + 'static> From<Problem> for Refused<E> {
    fn from(problem: Problem) -> Self {
        Self::Invalid(problem)
    }
}

impl<E: std::error::Error + 'static> From<CommandError<E>> for Refused<E> {
    fn from(error: CommandError<E>) -> Self {
        Self::Command(error)
    }
}

/// The success answer of a route: its status, body and `Location`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    status: u16,
    body: Value,
    location: Option<String>,
}

impl Reply {
    /// `200 OK` with `body`.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            location: None,
        }
    }

    /// `201 Created` with `body`.
    pub fn created(body: Value) -> Self {
        Self {
            status: 201,
            body,
            location: None,
        }
    }

    /// The same answer with a `Location` header.
    #[must_use]
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// What one answered request came to, for its metrics record.
struct Answered {
    response: ApiGatewayV2httpResponse,
    outcome: Outcome,
    stats: Option<crate::command::ExecutionStats>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Handler<S> = Box<dyn Fn(S, &ApiRequest, BodyRule) -> BoxFuture<'_, Answered> + Send + Sync>;

/// Whether a route's body may be absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyRule {
    Required,
    Optional,
}

struct Route<S> {
    key: &'static str,
    body: BodyRule,
    scope: Option<&'static str>,
    handler: Handler<S>,
}

/// The command function: a route table over a service `S` (cloned into each command, so keep
/// it cheap to clone: a command service is).
pub struct CommandApi<S> {
    service: S,
    routes: Vec<Route<S>>,
    scope: Option<&'static str>,
    metrics: Metrics,
}

impl<S> fmt::Debug for CommandApi<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandApi")
            .field(
                "routes",
                &self.routes.iter().map(|r| r.key).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> CommandApi<S> {
    /// A function over `service`, with no routes yet, its metrics on standard output under the
    /// Lambda function's name.
    pub fn new(service: S) -> Self {
        Self {
            service,
            routes: Vec::new(),
            scope: None,
            metrics: Metrics::for_lambda("command-api"),
        }
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The routes added from here on need an authenticated principal holding `scope` (401
    /// without one, 403 without the scope), checked before the body is read; the template's
    /// authorizer checks the same, and this holds wherever the function is invoked from.
    #[must_use]
    pub fn scope(mut self, scope: &'static str) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Adds a route that takes a JSON body of type `B`: `handle` runs the command, `answer`
    /// says its success in HTTP.
    #[must_use]
    pub fn route<B, R, E, H, Fut, A>(mut self, key: &'static str, handle: H, answer: A) -> Self
    where
        B: DeserializeOwned + Serialize + Send + Sync + 'static,
        R: Send + Sync + 'static,
        E: IntoProblem + std::error::Error + Send + Sync + 'static,
        H: Fn(S, Command<B>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Executed<R>, Refused<E>>> + Send + 'static,
        A: Fn(&CommandHead, &Executed<R>) -> Result<Reply, Problem> + Send + Sync + 'static,
    {
        let handle = Arc::new(handle);
        let answer = Arc::new(answer);
        let handler: Handler<S> = Box::new(move |service, request, body| {
            let (handle, answer) = (handle.clone(), answer.clone());
            Box::pin(async move {
                let parsed = match parse::<B>(request, key, body) {
                    Ok(parsed) => parsed,
                    Err(problem) => return refused(request, problem, Outcome::Invalid),
                };
                let head = CommandHead {
                    path: parsed.path.clone(),
                    if_match: parsed.if_match,
                };
                match handle(service, parsed).await {
                    Ok(executed) => match answer(&head, &executed) {
                        Ok(reply) => Answered {
                            response: success(reply, &executed),
                            outcome: executed.outcome(),
                            stats: Some(executed.stats),
                        },
                        Err(problem) => refused(request, problem, Outcome::Internal),
                    },
                    Err(Refused::Invalid(problem)) => refused(request, problem, Outcome::Invalid),
                    Err(Refused::Command(error)) => {
                        let outcome = error.outcome();
                        refused(request, error.to_problem(), outcome)
                    }
                }
            })
        });
        self.routes.push(Route {
            key,
            body: BodyRule::Required,
            scope: self.scope,
            handler,
        });
        self
    }

    /// The last route added may be sent without a body (or with whitespace only): it then
    /// reads as `{}`.
    #[must_use]
    pub fn body_optional(mut self) -> Self {
        if let Some(route) = self.routes.last_mut() {
            route.body = BodyRule::Optional;
        }
        self
    }

    /// The routes served, `METHOD /path`.
    pub fn route_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.iter().map(|r| r.key)
    }

    /// Each route with the scope it needs.
    pub fn route_scopes(&self) -> impl Iterator<Item = (&'static str, Option<&'static str>)> + '_ {
        self.routes.iter().map(|r| (r.key, r.scope))
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let mut answered = None;
        let response = super::http::respond(request, async |request| {
            let Some(route) = self.routes.iter().find(|r| r.key == request.route_key()) else {
                return Err(Problem::new(
                    kinds::ROUTE_NOT_FOUND,
                    format!("the command API has no route {:?}", request.route_key()),
                ));
            };
            let done = match admit(request, route.scope) {
                Ok(()) => (route.handler)(self.service.clone(), request, route.body).await,
                Err(denied) => refused(request, denied.to_problem(), Outcome::Denied),
            };
            let response = done.response.clone();
            answered = Some(done);
            Ok(response)
        })
        .await;
        self.record(answered.as_ref(), started);
        response
    }

    /// One metrics record per command: its outcome, latency, and how its execution went.
    fn record(&self, answered: Option<&Answered>, started: Instant) {
        let outcome = answered.map_or(Outcome::Invalid, |a| a.outcome);
        let mut metrics = vec![
            Metric::count("Commands", 1),
            Metric::millis("CommandLatency", [millis(started.elapsed())]),
        ];
        if let Some(stats) = answered.and_then(|a| a.stats).filter(|s| s.attempts > 0) {
            metrics.push(Metric::count(
                "ConflictsRetried",
                stats.attempts.saturating_sub(1) as usize,
            ));
            metrics.push(Metric::millis(
                "AppendLatency",
                [millis(stats.append_latency)],
            ));
            metrics.push(Metric::count(
                "EventsFoldedPastSnapshot",
                stats.events_folded,
            ));
            metrics.push(Metric::count("SnapshotsRefused", stats.snapshots_refused));
        }
        self.metrics
            .emit(&[("Outcome", outcome.as_str())], &metrics);
    }

    /// The Lambda entry point: API Gateway event in, response out, never an error for bad
    /// input.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Error> {
        Ok(self.respond(ApiRequest::from_lambda(event)).await)
    }
}

/// What an answer may look at besides the execution: the path parameters and `If-Match`.
#[derive(Clone, Debug)]
pub struct CommandHead {
    /// The path parameters, as matched.
    pub path: BTreeMap<String, String>,
    /// `If-Match`, if sent.
    pub if_match: Option<u64>,
}

impl CommandHead {
    /// A path parameter parsed as an entity id (400 if it is not one).
    pub fn entity_id(&self, name: &str) -> Result<EntityId, Problem> {
        EntityId::parse(self.path.get(name).map_or("", String::as_str)).map_err(|e| e.to_problem())
    }
}

/// Whether the caller may use a route that needs `scope`.
pub(crate) fn admit(request: &ApiRequest, scope: Option<&str>) -> Result<(), Denied> {
    match scope {
        None => Ok(()),
        Some(scope) => authenticated(request.principal().as_ref())?.require_scope(scope),
    }
}

/// Parses a request into its route's command: body, path, `If-Match`, and the context whose
/// fingerprint covers all of them and the route.
fn parse<B: DeserializeOwned + Serialize>(
    request: &ApiRequest,
    key: &str,
    rule: BodyRule,
) -> Result<Command<B>, Problem> {
    let body: B = if rule == BodyRule::Optional && request.has_no_body()? {
        serde_json::from_value(json!({}))
            .map_err(|e| Problem::new(kinds::INVALID_REQUEST, e.to_string()))?
    } else {
        request.json()?
    };
    let if_match = request.if_match()?;
    let path = request.path_params();
    let context = request.command_context(
        key,
        &json!({ "path": path, "if_match": if_match, "body": body }),
    )?;
    Ok(Command {
        body,
        path,
        if_match,
        context,
    })
}

fn refused(request: &ApiRequest, problem: Problem, outcome: Outcome) -> Answered {
    if problem.status() >= 500 {
        tracing::error!(
            problem = problem.kind.slug,
            cause = problem.cause.as_deref().unwrap_or("unknown"),
            "request failed"
        );
    }
    Answered {
        response: super::http::problem_response(&problem, request.path()),
        outcome,
        stats: None,
    }
}

/// A success: the reply with the first written stream's version as `ETag`, marked if it is a
/// replay.
fn success<R>(reply: Reply, executed: &Executed<R>) -> ApiGatewayV2httpResponse {
    let mut response = json_response(reply.status, &reply.body);
    if let Some(first) = executed.streams.first() {
        set_header(&mut response, "etag", &etag(first.last_version));
        tracing::info!(stream = %first.stream_id, version = first.last_version,
            replayed = executed.replayed, "command executed");
    }
    if let Some(location) = &reply.location {
        set_header(&mut response, "location", location);
    }
    mark_replayed(&mut response, executed.replayed);
    response
}
