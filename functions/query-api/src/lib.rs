//! GET routes of the HTTP API (API Gateway payload v2): the projection row, state folded from
//! events (with time travel), raw events page by page, and integrity verification.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use eventfold::StreamId;
use eventfold::command::CommandService;
use eventfold::config::Config;
use eventfold::domain::account::AccountStatus;
use eventfold::envelope::{RecordedEvent, format_timestamp};
use eventfold::http::{
    ApiRequest, OPENAPI_JSON, Problem, ProblemKind, etag, json_response, set_header,
};
use eventfold::ids::validate_entity_id;
use eventfold::names::env;
use eventfold::projection::accounts::{AccountsReadModel, DynamoAccounts};
use eventfold::service::BankingService;
use eventfold::snapshot::DynamoSnapshots;
use eventfold::store::{AsOf, EventStore};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

/// Largest page of raw events.
pub const MAX_PAGE: usize = 1000;
/// Largest `from` accepted: the largest integer JSON clients represent exactly (2^53 - 1).
pub const MAX_FROM: u64 = (1 << 53) - 1;
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
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE, env::ACCOUNTS_TABLE];

/// Everything a request needs, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    service: BankingService,
    read_model: Arc<dyn AccountsReadModel>,
}

impl App {
    /// An app over a banking service and a read model (tests pass memory ones).
    pub fn new(service: BankingService, read_model: Arc<dyn AccountsReadModel>) -> Self {
        Self {
            service,
            read_model,
        }
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
        let read_model = Arc::new(DynamoAccounts::new(client, &config.accounts_table));
        Self::new(
            BankingService::new(CommandService::new(store).with_snapshots(snapshots)),
            read_model,
        )
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        eventfold::http::respond(request, async |request| self.route(request).await).await
    }

    async fn route(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        match request.route_key() {
            GET_ACCOUNT => self.account_row(request).await,
            GET_ACCOUNT_STATE => self.account_state(request).await,
            GET_STREAM_EVENTS => self.stream_events(request).await,
            VERIFY_STREAM => self.verify(request).await,
            OPENAPI => {
                let document: Value = serde_json::from_str(OPENAPI_JSON)
                    .map_err(|e| Problem::new(ProblemKind::Internal, e.to_string()))?;
                Ok(json_response(200, &document))
            }
            other => Err(Problem::new(
                ProblemKind::RouteNotFound,
                format!("the query API has no route {other:?}"),
            )),
        }
    }

    async fn account_row(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        let id = account_id(request)?;
        let row = self
            .read_model
            .account(&id)
            .await
            .map_err(|e| Problem::from(&e))?
            .ok_or_else(|| not_found(format!("no account {id} in the read model (yet)")))?;
        let mut response = json_response(
            200,
            &json!({
                "id": row.account_id,
                "owner": row.owner,
                "currency": row.currency,
                "balance": row.balance,
                "status": row.status,
                "version": row.version,
                "updated_at": row.updated_at,
            }),
        );
        set_header(&mut response, "etag", &etag(row.version));
        Ok(response)
    }

    async fn account_state(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let id = account_id(request)?;
        let as_of = request.query("as_of").map(parse_as_of).transpose()?;
        let loaded = self
            .service
            .account_state(&id, as_of)
            .await
            .map_err(|e| Problem::from(&e))?;
        if loaded.state.status == AccountStatus::Unopened {
            return Err(not_found(format!("no account {id}")));
        }
        let state = loaded.state;
        let mut response = json_response(
            200,
            &json!({
                "id": id,
                "owner": state.owner,
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
        let stream_id = stream_id(request)?;
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
            .map_err(|e| Problem::from(&e))?;
        if page.events.is_empty()
            && store
                .read_head(&stream_id)
                .await
                .map_err(|e| Problem::from(&e))?
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
        let stream_id = stream_id(request)?;
        let store = self.service.commands().store();
        let verification = store
            .verify_stream(&stream_id)
            .await
            .map_err(|e| Problem::from(&e))?;
        if matches!(
            verification,
            eventfold::Verification::Intact { events: 0, .. }
        ) {
            return Err(not_found(format!("no stream {stream_id}")));
        }
        let body = serde_json::to_value(&verification)
            .map_err(|e| Problem::new(ProblemKind::Internal, e.to_string()))?;
        Ok(json_response(200, &body))
    }
}

/// The Lambda entry point.
pub async fn handle(
    app: &App,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(app.respond(event.payload).await)
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
    Problem::new(ProblemKind::InvalidRequest, detail)
}

fn not_found(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::NotFound, detail)
}

fn account_id(request: &ApiRequest) -> Result<String, Problem> {
    let id = request.path_param("id").unwrap_or_default();
    validate_entity_id(id).map_err(|e| invalid(e.to_string()))?;
    Ok(id.to_owned())
}

fn stream_id(request: &ApiRequest) -> Result<StreamId, Problem> {
    StreamId::parse(request.path_param("stream_id").unwrap_or_default())
        .map_err(|e| invalid(e.to_string()))
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
