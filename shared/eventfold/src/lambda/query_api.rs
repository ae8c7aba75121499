//! The query function over a route table: the raw events of a stream page by page, its
//! integrity check, an aggregate's state folded as of a version or an instant, a read-model
//! row with read-your-writes (`min_version`), static documents, and routes of one's own.
//!
//! Built in for every route: problem+json refusals, an `ETag` on every 200 (the version where
//! there is one, else a hash of the body) and `304` for an `If-None-Match` naming it, and one
//! metrics record per read (route, source, status).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::{ApiRequest, IntoProblem, Problem, etag, json_response, kinds, set_header};
use super::metrics::{Metric, Metrics, millis};
use crate::aggregate::Aggregate;
use crate::chain::Verification;
use crate::command::{CommandService, Loaded};
use crate::envelope::{RecordedEvent, format_timestamp};
use crate::ids::{EntityId, StreamId};
use crate::projection::{Projection, Projector};
use crate::store::{AsOf, EventStore};

/// Largest page of raw events.
pub const MAX_PAGE: usize = 1000;
/// Page size when `limit` is absent.
pub const DEFAULT_PAGE: usize = 100;
/// Largest `from` or `min_version` accepted: the largest integer JSON clients represent
/// exactly (2^53 - 1).
pub const MAX_VERSION: u64 = (1 << 53) - 1;
/// How long `min_version` waits for the read model before folding the events instead.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_millis(300);
/// How often the read model is looked at meanwhile.
const READ_YOUR_WRITES_POLL: Duration = Duration::from_millis(50);
/// Which of the two answered a row: `read-model` or `fold`.
pub const SOURCE_HEADER: &str = "eventfold-source";

/// The metrics each read's record carries (with `Route`, `Source` and `Status`).
pub const METRICS: &[&str] = &["Reads", "ReadLatency"];

/// A read's answer, and where it came from (a metrics dimension).
#[derive(Debug)]
pub struct Answer {
    response: ApiGatewayV2httpResponse,
    source: &'static str,
}

impl Answer {
    /// A JSON answer, from `source`.
    pub fn json(body: &Value, source: &'static str) -> Self {
        Self {
            response: json_response(200, body),
            source,
        }
    }

    /// The same answer, tagged with a version as its `ETag`.
    #[must_use]
    pub fn versioned(mut self, version: u64) -> Self {
        set_header(&mut self.response, "etag", &etag(version));
        self
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Handler =
    Box<dyn for<'a> Fn(&'a ApiRequest) -> BoxFuture<'a, Result<Answer, Problem>> + Send + Sync>;

/// The query function: GET routes, each a handler.
pub struct QueryApi {
    routes: Vec<(&'static str, Handler)>,
    metrics: Metrics,
}

impl fmt::Debug for QueryApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryApi")
            .field("routes", &self.route_keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for QueryApi {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryApi {
    /// A function with no routes yet, its metrics on standard output.
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            metrics: Metrics::for_lambda("query-api"),
        }
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Adds a route of one's own.
    #[must_use]
    pub fn route<F>(mut self, key: &'static str, handler: F) -> Self
    where
        F: for<'a> Fn(&'a ApiRequest) -> BoxFuture<'a, Result<Answer, Problem>>
            + Send
            + Sync
            + 'static,
    {
        self.routes.push((key, Box::new(handler)));
        self
    }

    /// `GET /streams/{stream_id}/events?from=&limit=` and `GET /streams/{stream_id}/verify`.
    #[must_use]
    pub fn streams(self, store: Arc<dyn EventStore>) -> Self {
        let verifying = store.clone();
        self.route("GET /streams/{stream_id}/events", move |request| {
            let store = store.clone();
            Box::pin(async move { events_page(store.as_ref(), request).await })
        })
        .route("GET /streams/{stream_id}/verify", move |request| {
            let store = verifying.clone();
            Box::pin(async move { verify(store.as_ref(), request).await })
        })
    }

    /// `key` answers the state of `A` under the path's `{id}`, folded from its events: now
    /// (through its snapshot), or `?as_of=<version or RFC 3339 instant>`. `view` renders it,
    /// `None` meaning there is no such entity (404).
    #[must_use]
    pub fn state<A: Aggregate>(
        self,
        key: &'static str,
        commands: CommandService,
        view: fn(&EntityId, &Loaded<A>) -> Option<Value>,
    ) -> Self {
        self.route(key, move |request| {
            let commands = commands.clone();
            Box::pin(async move {
                let id = request.entity_id("id")?;
                let as_of = request.query("as_of").map(parse_as_of).transpose()?;
                let stream_id = A::stream_id(&id);
                let loaded = match as_of {
                    Some(as_of) => commands.load_as_of::<A>(&stream_id, as_of).await,
                    None => commands.load::<A>(&stream_id).await,
                }
                .map_err(|e| e.to_problem())?;
                let body = view(&id, &loaded).ok_or_else(|| not_found(format!("no {id}")))?;
                Ok(Answer::json(&body, "fold").versioned(loaded.version))
            })
        })
    }

    /// `key` answers the read-model row of the path's `{id}`; with `?min_version=N`, once the
    /// row is at N or later, waiting [`READ_YOUR_WRITES_WAIT`] for it, and otherwise as the
    /// projector will make it (the stored row caught up from the events by the projection
    /// itself), said in `Eventfold-Source`. `stream` names the stream the row follows; `view`
    /// renders the row at its version.
    #[must_use]
    pub fn row<P: Projection>(
        self,
        key: &'static str,
        projector: Arc<Projector<P>>,
        stream: fn(&EntityId) -> StreamId,
        view: fn(&EntityId, u64, &P::Row) -> Value,
    ) -> Self {
        self.route(key, move |request| {
            let projector = projector.clone();
            Box::pin(async move {
                let id = request.entity_id("id")?;
                let min_version = request
                    .query("min_version")
                    .map(|text| parse_version(text, "min_version"))
                    .transpose()?;
                let deadline = Instant::now() + READ_YOUR_WRITES_WAIT;
                let (row, source) = loop {
                    let row = projector
                        .row(id.as_str())
                        .await
                        .map_err(|e| e.to_problem())?;
                    let caught_up = match (&row, min_version) {
                        (_, None) => true,
                        (Some((version, _)), Some(wanted)) => *version >= wanted,
                        (None, Some(_)) => false,
                    };
                    if caught_up {
                        break (row, "read-model");
                    }
                    if Instant::now() >= deadline {
                        let folded = projector
                            .row_at_head(id.as_str(), &stream(&id))
                            .await
                            .map_err(|e| e.to_problem())?;
                        break (folded, "fold");
                    }
                    tokio::time::sleep(READ_YOUR_WRITES_POLL).await;
                };
                let (version, row) =
                    row.ok_or_else(|| not_found(format!("no {id} in the read model (yet)")))?;
                let mut answer = Answer::json(&view(&id, version, &row), source).versioned(version);
                set_header(&mut answer.response, SOURCE_HEADER, source);
                Ok(answer)
            })
        })
    }

    /// `key` answers a fixed JSON document (an OpenAPI description, say).
    #[must_use]
    pub fn document(self, key: &'static str, json: &'static str) -> Self {
        self.route(key, move |_| {
            Box::pin(async move {
                let document: Value = serde_json::from_str(json)
                    .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
                Ok(Answer::json(&document, "document"))
            })
        })
    }

    /// The routes served, `METHOD /path`.
    pub fn route_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.iter().map(|(key, _)| *key)
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let route = request.route_key().to_owned();
        let mut source = "none";
        let response = super::http::respond(request, async |request| {
            let Some((_, handler)) = self.routes.iter().find(|(k, _)| *k == request.route_key())
            else {
                return Err(Problem::new(
                    kinds::ROUTE_NOT_FOUND,
                    format!("the query API has no route {:?}", request.route_key()),
                ));
            };
            let answer = handler(request).await?;
            source = answer.source;
            Ok(conditional(request, answer.response))
        })
        .await;
        let status = match response.status_code {
            200 => "ok",
            304 => "not-modified",
            400..=499 => "refused",
            _ => "failed",
        };
        self.metrics.emit(
            &[
                ("Route", route.as_str()),
                ("Source", source),
                ("Status", status),
            ],
            &[
                Metric::count("Reads", 1),
                Metric::millis("ReadLatency", [millis(started.elapsed())]),
            ],
        );
        response
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, Error> {
        Ok(self.respond(ApiRequest::from_lambda(event)).await)
    }
}

/// A stream's events, a page at a time.
async fn events_page(store: &dyn EventStore, request: &ApiRequest) -> Result<Answer, Problem> {
    let stream_id = request.stream_id("stream_id")?;
    let from = match request.query("from") {
        None => 1,
        Some(text) => parse_version(text, "from")?,
    };
    let limit = match request.query("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=MAX_PAGE).contains(v))
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}")))?,
    };
    let page = store
        .read_stream(&stream_id, from, limit)
        .await
        .map_err(|e| e.to_problem())?;
    if page.events.is_empty()
        && store
            .read_head(&stream_id)
            .await
            .map_err(|e| e.to_problem())?
            .is_none()
    {
        return Err(not_found(format!("no stream {stream_id}")));
    }
    let events: Vec<Value> = page.events.iter().map(envelope_json).collect();
    Ok(Answer::json(
        &json!({ "events": events, "next": page.next }),
        "events",
    ))
}

/// A stream's integrity check.
async fn verify(store: &dyn EventStore, request: &ApiRequest) -> Result<Answer, Problem> {
    let stream_id = request.stream_id("stream_id")?;
    let verification = store
        .verify_stream(&stream_id)
        .await
        .map_err(|e| e.to_problem())?;
    if matches!(verification, Verification::Intact { events: 0, .. }) {
        return Err(not_found(format!("no stream {stream_id}")));
    }
    let body = serde_json::to_value(&verification)
        .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
    Ok(Answer::json(&body, "events"))
}

/// A GET's answer made conditional: every 200 carries an `ETag` (the version where there is
/// one, else a hash of the body), and `If-None-Match` naming it gets a 304 without a body.
fn conditional(
    request: &ApiRequest,
    mut response: ApiGatewayV2httpResponse,
) -> ApiGatewayV2httpResponse {
    if response.status_code != 200 {
        return response;
    }
    let tag = match response.headers.get("etag").and_then(|v| v.to_str().ok()) {
        Some(tag) => tag.to_owned(),
        None => {
            let body = match &response.body {
                Some(Body::Text(text)) => text.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            let tag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..20]);
            set_header(&mut response, "etag", &tag);
            tag
        }
    };
    let matches = request.header("if-none-match").is_some_and(|value| {
        value
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag)
    });
    if matches {
        response.status_code = 304;
        response.body = None;
        response.headers.remove("content-type");
    }
    response
}

/// An event as the API shows it.
pub fn envelope_json(event: &RecordedEvent) -> Value {
    json!({
        "stream_id": event.stream_id.as_str(),
        "version": event.version,
        "event_id": event.event_id.to_string(),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": format_timestamp(&event.occurred_at),
        "metadata": event.metadata,
        "payload": event.payload,
        "chain": event.chain,
    })
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(kinds::INVALID_REQUEST, detail)
}

fn not_found(detail: impl Into<String>) -> Problem {
    Problem::new(kinds::NOT_FOUND, detail)
}

/// A version in a query: 1 to [`MAX_VERSION`].
fn parse_version(text: &str, name: &str) -> Result<u64, Problem> {
    text.parse::<u64>()
        .ok()
        .filter(|v| (1..=MAX_VERSION).contains(v))
        .ok_or_else(|| invalid(format!("{name} must be an integer from 1 to {MAX_VERSION}")))
}

/// `as_of`: a version (digits) or an RFC 3339 instant.
fn parse_as_of(text: &str) -> Result<AsOf, Problem> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|v| *v >= 1)
            .map(AsOf::Version)
            .ok_or_else(|| invalid("as_of version must be at least 1"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| AsOf::Time(t.with_timezone(&chrono::Utc)))
        .map_err(|_| invalid("as_of must be a version or an RFC 3339 instant"))
}
