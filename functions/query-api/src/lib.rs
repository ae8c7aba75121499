//! GET routes of the HTTP API (API Gateway payload v2): the projection row, state folded from
//! events (with time travel), raw events page by page, and integrity verification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::encodings::Body;
use eventfold::metrics::{Metric, Metrics};
use sha2::{Digest, Sha256};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use bank::api::OPENAPI_JSON;
use bank::domain::account::AccountStatus;
use bank::names::env as bank_env;
use bank::read_model::{AccountRow, AccountView, account_row};
use bank::service::BankingService;
use eventfold::command::CommandService;
use eventfold::config::Config;
use eventfold::envelope::{RecordedEvent, format_timestamp};
use eventfold::http::{ApiRequest, IntoProblem, Problem, etag, json_response, kinds, set_header};
use eventfold::names::env;
use eventfold::projection::ReadModelStore;
use eventfold::snapshot::DynamoSnapshots;
use eventfold::store::{AsOf, EventStore};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

/// Largest page of raw events.
pub const MAX_PAGE: usize = 1000;
/// Largest `from` accepted: the largest integer JSON clients represent exactly (2^53 - 1).
pub const MAX_FROM: u64 = (1 << 53) - 1;
/// How long `min_version` waits for the read model before folding the events instead.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_millis(300);
/// How often the read model is looked at meanwhile.
const READ_YOUR_WRITES_POLL: Duration = Duration::from_millis(50);
/// Which of the two answered `GET /accounts/{id}`: `read-model` or `fold`.
pub const SOURCE_HEADER: &str = "eventfold-source";
/// The `Function` dimension of this function's metrics outside Lambda (deployed, it is the
/// function's name).
pub const FUNCTION: &str = "query-api";

/// Page size when `limit` is absent.
pub const DEFAULT_PAGE: usize = 100;

const GET_ACCOUNT: &str = "GET /accounts/{id}";
const GET_ACCOUNT_STATE: &str = "GET /accounts/{id}/state";
const GET_STREAM_EVENTS: &str = "GET /streams/{stream_id}/events";
const VERIFY_STREAM: &str = "GET /streams/{stream_id}/verify";
const OPENAPI: &str = "GET /openapi.json";

/// The routes this function serves (checked against the template and the OpenAPI document).
pub const ROUTES: &[&str] = &[
    GET_ACCOUNT,
    GET_ACCOUNT_STATE,
    GET_STREAM_EVENTS,
    VERIFY_STREAM,
    OPENAPI,
];

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[
    env::EVENTS_TABLE,
    env::SNAPSHOTS_TABLE,
    bank_env::ACCOUNTS_TABLE,
];

/// Everything a request needs, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    service: BankingService,
    read_model: Arc<dyn ReadModelStore>,
    metrics: Metrics,
}

impl App {
    /// An app over a banking service and a read model (tests pass memory ones).
    pub fn new(service: BankingService, read_model: Arc<dyn ReadModelStore>) -> Self {
        Self {
            service,
            read_model,
            metrics: Metrics::for_lambda(FUNCTION),
        }
    }

    /// The same app, its metrics written to `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The app over DynamoDB, configured from the environment.
    pub async fn from_env() -> Result<Self, Error> {
        let (config, sdk) = Config::load_for_lambda(REQUIRED_ENV).await?;
        Ok(Self::from_config(
            &config,
            aws_sdk_dynamodb::Client::new(&sdk),
        ))
    }

    /// The app over DynamoDB with a client built by the caller.
    pub fn from_config(config: &Config, client: aws_sdk_dynamodb::Client) -> Self {
        // Reads never touch the commands table.
        let store: Arc<dyn EventStore> = Arc::new(config.event_store(client.clone()));
        let snapshots = Arc::new(DynamoSnapshots::new(
            client.clone(),
            &config.snapshots_table,
        ));
        let accounts_table = config.var(bank_env::ACCOUNTS_TABLE).unwrap_or_default();
        let read_model = Arc::new(bank::accounts_read_model(client, accounts_table));
        Self::new(
            BankingService::new(CommandService::new(store).with_snapshots(snapshots)),
            read_model,
        )
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let route = request.route_key().to_owned();
        let response = eventfold::http::respond(request, async |request| {
            let answer = self.route(request).await?;
            Ok(conditional(request, answer))
        })
        .await;
        let source = response
            .headers
            .get(SOURCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let status = match response.status_code {
            200 => "ok",
            304 => "not-modified",
            400..=499 => "refused",
            _ => "failed",
        };
        self.metrics.emit(
            &[
                ("Route", route.as_str()),
                ("Source", source.as_str()),
                ("Status", status),
            ],
            &[
                Metric::count("Reads", 1),
                Metric::millis("ReadLatency", [started.elapsed().as_secs_f64() * 1000.0]),
            ],
        );
        response
    }

    async fn route(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        match request.route_key() {
            GET_ACCOUNT => self.account_row(request).await,
            GET_ACCOUNT_STATE => self.account_state(request).await,
            GET_STREAM_EVENTS => self.stream_events(request).await,
            VERIFY_STREAM => self.verify(request).await,
            OPENAPI => {
                let document: Value = serde_json::from_str(OPENAPI_JSON)
                    .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
                Ok(json_response(200, &document))
            }
            other => Err(Problem::new(
                kinds::ROUTE_NOT_FOUND,
                format!("the query API has no route {other:?}"),
            )),
        }
    }

    /// The read model's row; with `min_version=N`, once the row is at N or later, waiting a
    /// short while for it, and otherwise folded from the events (consistent), said in
    /// `Eventfold-Source`.
    async fn account_row(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        let id = request.entity_id("id")?;
        let min_version = request
            .query("min_version")
            .map(|text| {
                text.parse::<u64>()
                    .ok()
                    .filter(|v| (1..=MAX_FROM).contains(v))
                    .ok_or_else(|| {
                        invalid(format!(
                            "min_version must be an integer from 1 to {MAX_FROM}"
                        ))
                    })
            })
            .transpose()?;
        let deadline = Instant::now() + READ_YOUR_WRITES_WAIT;
        let (row, source) = loop {
            let row = account_row(self.read_model.as_ref(), id.as_str())
                .await
                .map_err(|e| e.to_problem())?;
            let caught_up = match (&row, min_version) {
                (_, None) => true,
                (Some(row), Some(wanted)) => row.version >= wanted,
                (None, Some(_)) => false,
            };
            if caught_up {
                break (row, "read-model");
            }
            if Instant::now() >= deadline {
                break (self.folded_row(&id).await?, "fold");
            }
            tokio::time::sleep(READ_YOUR_WRITES_POLL).await;
        };
        let row =
            row.ok_or_else(|| not_found(format!("no account {id} in the read model (yet)")))?;
        let body = serde_json::to_value(&row)
            .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
        let mut response = json_response(200, &body);
        set_header(&mut response, "etag", &etag(row.version));
        set_header(&mut response, SOURCE_HEADER, source);
        Ok(response)
    }

    /// The row the read model would hold, folded from the account's events.
    async fn folded_row(&self, id: &eventfold::EntityId) -> Result<Option<AccountRow>, Problem> {
        let loaded = self
            .service
            .account_state(id, None)
            .await
            .map_err(|e| e.to_problem())?;
        if loaded.state.status == AccountStatus::Unopened {
            return Ok(None);
        }
        let state = loaded.state;
        Ok(Some(AccountRow {
            id: id.to_string(),
            view: AccountView {
                owner: state.owner.map(|o| o.to_string()).unwrap_or_default(),
                currency: state.currency.map(|c| c.to_string()).unwrap_or_default(),
                balance: state.balance,
                status: state.status.as_str().into(),
                updated_at: loaded
                    .occurred_at
                    .as_ref()
                    .map(format_timestamp)
                    .unwrap_or_default(),
            },
            version: loaded.version,
        }))
    }

    async fn account_state(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let id = request.entity_id("id")?;
        let as_of = request.query("as_of").map(parse_as_of).transpose()?;
        let loaded = self
            .service
            .account_state(&id, as_of)
            .await
            .map_err(|e| e.to_problem())?;
        if loaded.state.status == AccountStatus::Unopened {
            return Err(not_found(format!("no account {id}")));
        }
        let state = loaded.state;
        let mut response = json_response(
            200,
            &json!({
                "id": id,
                "owner": state.owner.as_ref().map(ToString::to_string),
                "currency": state.currency.map(|c| c.to_string()),
                "balance": state.balance,
                "status": state.status.as_str(),
                "version": loaded.version,
            }),
        );
        set_header(&mut response, "etag", &etag(loaded.version));
        Ok(response)
    }

    async fn stream_events(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let stream_id = request.stream_id("stream_id")?;
        let from = match request.query("from") {
            None => 1,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|v| (1..=MAX_FROM).contains(v))
                .ok_or_else(|| invalid(format!("from must be an integer from 1 to {MAX_FROM}")))?,
        };
        let limit = match request.query("limit") {
            None => DEFAULT_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|v| (1..=MAX_PAGE).contains(v))
                .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}")))?,
        };
        let store = self.service.commands().store();
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
        Ok(json_response(
            200,
            &json!({ "events": events, "next": page.next }),
        ))
    }

    async fn verify(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        let stream_id = request.stream_id("stream_id")?;
        let store = self.service.commands().store();
        let verification = store
            .verify_stream(&stream_id)
            .await
            .map_err(|e| e.to_problem())?;
        if matches!(
            verification,
            eventfold::Verification::Intact { events: 0, .. }
        ) {
            return Err(not_found(format!("no stream {stream_id}")));
        }
        let body = serde_json::to_value(&verification)
            .map_err(|e| Problem::new(kinds::INTERNAL, "internal error").caused_by(&e))?;
        Ok(json_response(200, &body))
    }
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

/// The Lambda entry point.
pub async fn handle(
    app: &App,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(app.respond(ApiRequest::from_lambda(event)).await)
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
