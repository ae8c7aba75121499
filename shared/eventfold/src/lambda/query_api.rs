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

use super::command_api::admit;
use super::http::{ApiRequest, IntoProblem, Problem, etag, json_response, kinds, set_header};
use super::metrics::{Metric, Metrics, millis};
use crate::aggregate::Aggregate;
use crate::chain::Verification;
use crate::command::{CommandService, HISTORY_TO_FOLD, Loaded};
use crate::envelope::{RecordedEvent, format_timestamp};
use crate::error::StoreError;
use crate::feed::{Cursor, FeedStore, read_feed};
use crate::identity::{Denied, Principal, authenticated};
use crate::ids::{EntityId, StreamId};
use crate::personal::{self, Keyring, SubjectKeys};
use crate::projection::{Projection, Projector};
use crate::store::{AsOf, EventStore};

/// Largest page of raw events.
pub const MAX_PAGE: usize = 1000;
/// Most events one verification request recomputes (`?from=` continues past them), and
/// most events one time-travel request folds: a request's work is bounded however long the
/// stream (10,000 events of ~450 bytes are five 1 MB pages).
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;
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
    routes: Vec<(&'static str, Option<&'static str>, Handler)>,
    scope: Option<&'static str>,
    subject_keys: Option<Arc<dyn SubjectKeys>>,
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
            scope: None,
            subject_keys: None,
            metrics: Metrics::for_lambda("query-api"),
        }
    }

    /// The state and row routes added from here on open the personal values they show with
    /// their subjects' keys (asked once per request); a forgotten subject's show as `null`, as
    /// do all of them without keys.
    #[must_use]
    pub fn with_subject_keys(mut self, keys: Arc<dyn SubjectKeys>) -> Self {
        self.subject_keys = Some(keys);
        self
    }

    /// The same function, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The routes added from here on need an authenticated principal holding `scope` (401
    /// without one, 403 without the scope), checked before the route runs.
    #[must_use]
    pub fn scope(mut self, scope: &'static str) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The routes added from here on need no principal (a public document, say).
    #[must_use]
    pub fn public(mut self) -> Self {
        self.scope = None;
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
        self.routes.push((key, self.scope, Box::new(handler)));
        self
    }

    /// `GET /streams/{stream_id}/events?from=&limit=` and `GET /streams/{stream_id}/verify`,
    /// as `access` allows: the categories it lists, for operators; a category's events for the
    /// principals its rule admits, their metadata redacted; verify for operators only. Anyone
    /// else is told the stream does not exist.
    #[must_use]
    pub fn streams(self, store: Arc<dyn EventStore>, access: StreamAccess) -> Self {
        let verifying = store.clone();
        let access = Arc::new(access);
        let verify_access = access.clone();
        self.route("GET /streams/{stream_id}/events", move |request| {
            let (store, access) = (store.clone(), access.clone());
            Box::pin(async move { events_page(store.as_ref(), &access, request).await })
        })
        .route("GET /streams/{stream_id}/verify", move |request| {
            let (store, access) = (verifying.clone(), verify_access.clone());
            Box::pin(async move { verify(store.as_ref(), &access, request).await })
        })
    }

    /// `GET /feed?after=<cursor>&limit=`: up to `limit` (default [`DEFAULT_PAGE`], at most
    /// [`MAX_PAGE`]) references to appended events in feed order, after the cursor (from the
    /// start without one), and the cursor to read on from (`next`, the same cursor when nothing
    /// was new). An operator's resource: add it behind the operator scope.
    #[must_use]
    pub fn feed(self, feed: Arc<dyn FeedStore>) -> Self {
        self.route("GET /feed", move |request| {
            let feed = feed.clone();
            Box::pin(async move { feed_page(feed.as_ref(), request).await })
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
        self.state_for(key, commands, |_, _: &Loaded<A>| Ok(()), view)
    }

    /// [`state`](Self::state) behind an access rule: `access` sees the principal and the
    /// loaded stream (its id, and an owner its state records, say) before anything is
    /// rendered, at no extra request; its refusal is the answer (404 for what the caller may
    /// not see).
    #[must_use]
    pub fn state_for<A: Aggregate>(
        self,
        key: &'static str,
        commands: CommandService,
        access: fn(&Principal, &Loaded<A>) -> Result<(), Denied>,
        view: fn(&EntityId, &Loaded<A>) -> Option<Value>,
    ) -> Self {
        let guarded = self.scope.is_some();
        let keys = self.subject_keys.clone();
        self.route(key, move |request| {
            let (commands, keys) = (commands.clone(), keys.clone());
            Box::pin(async move {
                let id = request.entity_id("id")?;
                let as_of = request.query("as_of").map(parse_as_of).transpose()?;
                let stream_id = A::stream_id(&id);
                let loaded = match as_of {
                    Some(as_of) => commands
                        .load_as_of_within::<A>(&stream_id, as_of, MAX_EVENTS_PER_REQUEST)
                        .await
                        .map_err(|e| match e {
                            StoreError::TooLarge {
                                what: HISTORY_TO_FOLD,
                                limit,
                                ..
                            } => Problem::new(
                                kinds::HISTORY_TOO_LONG,
                                format!(
                                    "the state as of that point folds more than {limit} events; \
                                     ask for a point at most {limit} events after the stream's \
                                     start or its snapshot"
                                ),
                            ),
                            other => other.to_problem(),
                        })?,
                    None => commands
                        .load::<A>(&stream_id)
                        .await
                        .map_err(|e| e.to_problem())?,
                };
                if guarded {
                    let principal = request.principal();
                    access(authenticated(principal.as_ref())?, &loaded)?;
                }
                let body = view(&id, &loaded).ok_or_else(|| not_found(format!("no {id}")))?;
                let body = shown(keys.as_ref(), body).await?;
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
        self.row_for(key, projector, stream, |_, _| Ok(()), view)
    }

    /// [`row`](Self::row) behind an access rule: `access` sees the principal and the row (an
    /// owner it carries, say) before it is shown, at no extra request.
    #[must_use]
    pub fn row_for<P: Projection>(
        self,
        key: &'static str,
        projector: Arc<Projector<P>>,
        stream: fn(&EntityId) -> StreamId,
        access: fn(&Principal, &P::Row) -> Result<(), Denied>,
        view: fn(&EntityId, u64, &P::Row) -> Value,
    ) -> Self {
        let guarded = self.scope.is_some();
        let keys = self.subject_keys.clone();
        self.route(key, move |request| {
            let (projector, keys) = (projector.clone(), keys.clone());
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
                if guarded {
                    let principal = request.principal();
                    access(authenticated(principal.as_ref())?, &row)?;
                }
                let body = shown(keys.as_ref(), view(&id, version, &row)).await?;
                let mut answer = Answer::json(&body, source).versioned(version);
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
        self.routes.iter().map(|(key, _, _)| *key)
    }

    /// Each route with the scope it needs.
    pub fn route_scopes(&self) -> impl Iterator<Item = (&'static str, Option<&'static str>)> + '_ {
        self.routes.iter().map(|(key, scope, _)| (*key, *scope))
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let route = request.route_key().to_owned();
        let mut source = "none";
        let response = super::http::respond(request, async |request| {
            let Some((_, scope, handler)) = self
                .routes
                .iter()
                .find(|(k, _, _)| *k == request.route_key())
            else {
                return Err(Problem::new(
                    kinds::ROUTE_NOT_FOUND,
                    format!("the query API has no route {:?}", request.route_key()),
                ));
            };
            admit(request, *scope).map_err(|e| e.to_problem())?;
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

/// Who may read which raw streams: operators (a scope) the listed categories, with their
/// metadata; the principals a category's rule admits, that category's streams with their
/// metadata redacted.
#[derive(Clone, Debug)]
pub struct StreamAccess {
    operator_scope: &'static str,
    categories: Vec<&'static str>,
    owned: Vec<(&'static str, StreamRule)>,
}

/// A rule over a stream's first event: whether the principal may read the stream.
pub type StreamRule = fn(&Principal, &RecordedEvent) -> bool;

/// How a caller reads a stream: as an operator (everything) or as one the category's rule
/// admits (metadata redacted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Operator,
    Admitted,
}

impl StreamAccess {
    /// Principals holding `scope` read every stream of `categories`; nobody else reads any.
    pub fn operators(scope: &'static str, categories: &[&'static str]) -> Self {
        Self {
            operator_scope: scope,
            categories: categories.to_vec(),
            owned: Vec::new(),
        }
    }

    /// Principals `rule` admits, looking at a stream's first event, read the streams of
    /// `category` too (the events of an account by its owner, say), their metadata redacted.
    #[must_use]
    pub fn readable_by(mut self, category: &'static str, rule: StreamRule) -> Self {
        self.owned.push((category, rule));
        self
    }

    /// As whom `principal` reads `stream_id`: as an operator, subject to a rule on the first
    /// event (`Err` names the rule), or not at all (404).
    fn reader(
        &self,
        principal: Option<&Principal>,
        stream_id: &StreamId,
    ) -> Result<Result<Reader, StreamRule>, Denied> {
        let principal = authenticated(principal)?;
        let category = stream_id.category();
        if principal.has_scope(self.operator_scope) && self.categories.contains(&category) {
            return Ok(Ok(Reader::Operator));
        }
        self.owned
            .iter()
            .find(|(c, _)| *c == category)
            .map(|(_, rule)| Err(*rule))
            .ok_or(Denied::Hidden)
    }
}

/// An answer's personal values as its reader sees them: opened with their subjects' keys, the
/// forgotten (and, without keys, all) as `null`.
async fn shown(keys: Option<&Arc<dyn SubjectKeys>>, mut body: Value) -> Result<Value, Problem> {
    if let Some(keys) = keys {
        Keyring::new(keys.clone())
            .open(&mut body)
            .await
            .map_err(|e| e.to_problem())?;
    }
    personal::present(&mut body);
    Ok(body)
}

/// A stream's events, a page at a time.
async fn feed_page(feed: &dyn FeedStore, request: &ApiRequest) -> Result<Answer, Problem> {
    let partitions = feed.partitions();
    let after = match request.query("after") {
        None => Cursor::start(partitions),
        Some(text) => Cursor::parse(text, partitions).map_err(|e| invalid(e.to_string()))?,
    };
    let limit = parse_limit(request)?;
    let read = read_feed(feed, &after, limit)
        .await
        .map_err(|e| e.to_problem())?;
    let body = json!({
        "partitions": partitions,
        "entries": read.entries,
        "next": read.next.to_string(),
    });
    Ok(Answer::json(&body, "feed"))
}

fn parse_limit(request: &ApiRequest) -> Result<usize, Problem> {
    match request.query("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|v| (1..=MAX_PAGE).contains(v))
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}"))),
    }
}

async fn events_page(
    store: &dyn EventStore,
    access: &StreamAccess,
    request: &ApiRequest,
) -> Result<Answer, Problem> {
    let stream_id = request.stream_id("stream_id")?;
    let principal = request.principal();
    let reader = access
        .reader(principal.as_ref(), &stream_id)
        .map_err(|e| e.to_problem())?;
    let from = match request.query("from") {
        None => 1,
        Some(text) => parse_version(text, "from")?,
    };
    let limit = parse_limit(request)?;
    // A rule looks at the first event: read with the page when the page does not hold it.
    let (page, first) =
        futures::future::try_join(store.read_stream(&stream_id, from, limit), async {
            match reader {
                Err(_) if from > 1 => store.read_stream(&stream_id, 1, 1).await.map(Some),
                _ => Ok(None),
            }
        })
        .await
        .map_err(|e| e.to_problem())?;
    let reader = match reader {
        Ok(reader) => reader,
        Err(rule) => {
            let first = first
                .as_ref()
                .map_or(page.events.first(), |p| p.events.first());
            let admitted = first.is_some_and(|event| {
                principal
                    .as_ref()
                    .is_some_and(|principal| rule(principal, event))
            });
            if !admitted {
                return Err(not_found(format!("no stream {stream_id}")));
            }
            Reader::Admitted
        }
    };
    if page.events.is_empty()
        && store
            .read_head(&stream_id)
            .await
            .map_err(|e| e.to_problem())?
            .is_none()
    {
        return Err(not_found(format!("no stream {stream_id}")));
    }
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|event| {
            let mut shown = envelope_json(event);
            if reader == Reader::Admitted {
                shown["metadata"] = json!({});
            }
            shown
        })
        .collect();
    Ok(Answer::json(
        &json!({ "events": events, "next": page.next }),
        "events",
    ))
}

/// A stream's integrity check: operators only.
async fn verify(
    store: &dyn EventStore,
    access: &StreamAccess,
    request: &ApiRequest,
) -> Result<Answer, Problem> {
    let stream_id = request.stream_id("stream_id")?;
    let principal = request.principal();
    if access.reader(principal.as_ref(), &stream_id) != Ok(Ok(Reader::Operator)) {
        let denied = authenticated(principal.as_ref())
            .err()
            .unwrap_or(Denied::Hidden);
        return Err(denied.to_problem());
    }
    let from = match request.query("from") {
        None => 1,
        Some(text) => parse_version(text, "from")?,
    };
    let (verification, next) = store
        .verify_range(&stream_id, from, MAX_EVENTS_PER_REQUEST)
        .await
        .map_err(|e| e.to_problem())?;
    if matches!(verification, Verification::Intact { events: 0, .. }) {
        return Err(not_found(format!("no stream {stream_id}")));
    }
    let mut body = serde_json::to_value(&verification)
        .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
    if verification.is_intact() {
        body["next"] = json!(next);
    }
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

/// What a caller is told of a resource that does not exist, or that it may not see: the
/// same answer, so that a refusal says nothing of what exists.
fn not_found(_what: impl Into<String>) -> Problem {
    Denied::Hidden.to_problem()
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
