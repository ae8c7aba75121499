//! POST routes of the HTTP API (API Gateway payload v2).
//!
//! Each route parses its request into the bank's types (400/415 otherwise), calls one
//! [`BankingService`] method, and says the typed result in HTTP: JSON on success,
//! `application/problem+json` otherwise. A repeated command's result comes from the commands
//! table and is rendered by the same code, so it answers identically. The handler never
//! returns an error to the Lambda runtime for anything a client sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::encodings::Body;
use eventfold::command::ExecutionStats;
use eventfold::metrics::{Metric, Metrics};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use bank::api::{CloseAccount, MoveMoney, OpenAccount, RegisterUser, TransferMoney};
use bank::domain::account::AccountCommand;
use bank::service::{BankResult, BankingService, Created, Transferred};
use eventfold::EntityId;
use eventfold::command::{CommandService, Executed};
use eventfold::config::Config;
use eventfold::http::{
    ApiRequest, IntoProblem, Problem, etag, json_response, kinds, mark_replayed, set_header,
};
use eventfold::names::env;
use eventfold::snapshot::DynamoSnapshots;
use eventfold::store::EventStore;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::json;

const REGISTER_USER: &str = "POST /users";
const OPEN_ACCOUNT: &str = "POST /accounts";
const DEPOSIT: &str = "POST /accounts/{id}/deposits";
const WITHDRAW: &str = "POST /accounts/{id}/withdrawals";
const CLOSE_ACCOUNT: &str = "POST /accounts/{id}/close";
const TRANSFER: &str = "POST /transfers";

/// The `Function` dimension of this function's metrics outside Lambda (deployed, it is the
/// function's name).
pub const FUNCTION: &str = "command-api";

/// The routes this function serves (checked against the template and the OpenAPI document).
pub const ROUTES: &[&str] = &[
    REGISTER_USER,
    OPEN_ACCOUNT,
    DEPOSIT,
    WITHDRAW,
    CLOSE_ACCOUNT,
    TRANSFER,
];

/// The environment variables this function reads (checked against the template).
pub const REQUIRED_ENV: &[&str] = &[env::EVENTS_TABLE, env::COMMANDS_TABLE, env::SNAPSHOTS_TABLE];

/// Everything a request needs, built once per process.
#[derive(Clone, Debug)]
pub struct App {
    service: BankingService,
    metrics: Metrics,
}

/// What one command's execution reported, for its metrics record.
#[derive(Debug, Default)]
struct Observed(Mutex<Option<ExecutionStats>>);

impl Observed {
    fn note<R>(&self, executed: &Executed<R>) {
        if let Ok(mut stats) = self.0.lock() {
            *stats = Some(executed.stats);
        }
    }
}

type Answer = Result<ApiGatewayV2httpResponse, Problem>;

impl App {
    /// An app over a banking service (tests pass one over the memory store).
    pub fn new(service: BankingService) -> Self {
        Self {
            service,
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
        let store: Arc<dyn EventStore> = Arc::new(
            config
                .event_store(client.clone())
                .with_commands_table(&config.commands_table),
        );
        let snapshots = Arc::new(DynamoSnapshots::new(client, &config.snapshots_table));
        Self::new(BankingService::new(
            CommandService::new(store).with_snapshots(snapshots),
        ))
    }

    /// Answers one request; never fails.
    pub async fn respond(&self, request: ApiRequest) -> ApiGatewayV2httpResponse {
        let started = Instant::now();
        let observed = Observed::default();
        let response = eventfold::http::respond(request, async |request| {
            self.route(request, &observed).await
        })
        .await;
        self.record(&response, started, &observed);
        response
    }

    /// One metrics record per command: its outcome, latency, and how its execution went.
    fn record(&self, response: &ApiGatewayV2httpResponse, started: Instant, observed: &Observed) {
        let outcome = outcome_of(response);
        let mut metrics = vec![
            Metric::count("Commands", 1),
            Metric::millis("CommandLatency", [millis(started.elapsed())]),
        ];
        if let Some(stats) = observed.0.lock().ok().and_then(|s| *s)
            && stats.attempts > 0
        {
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
        }
        self.metrics.emit(&[("Outcome", outcome)], &metrics);
    }

    async fn route(&self, request: &ApiRequest, observed: &Observed) -> Answer {
        match request.route_key() {
            REGISTER_USER => self.register_user(request, observed).await,
            OPEN_ACCOUNT => self.open_account(request, observed).await,
            DEPOSIT => {
                let MoveMoney { amount } = request.json()?;
                self.on_account(
                    request,
                    observed,
                    AccountCommand::Deposit { amount },
                    amount,
                )
                .await
            }
            WITHDRAW => {
                let MoveMoney { amount } = request.json()?;
                self.on_account(
                    request,
                    observed,
                    AccountCommand::Withdraw { amount },
                    amount,
                )
                .await
            }
            CLOSE_ACCOUNT => {
                // Closing takes no body, or `{}`.
                if !request.has_no_body()? {
                    let CloseAccount {} = request.json()?;
                }
                self.on_account(request, observed, AccountCommand::Close, CloseAccount {})
                    .await
            }
            TRANSFER => self.transfer(request, observed).await,
            other => Err(Problem::new(
                kinds::ROUTE_NOT_FOUND,
                format!("the command API has no route {other:?}"),
            )),
        }
    }

    async fn register_user(&self, request: &ApiRequest, observed: &Observed) -> Answer {
        let body: RegisterUser = request.json()?;
        let context = request.command_context(REGISTER_USER, &body)?;
        let result = self.service.register_user(&context, &body).await;
        created(result, observed, |_| None)
    }

    async fn open_account(&self, request: &ApiRequest, observed: &Observed) -> Answer {
        let body: OpenAccount = request.json()?;
        let context = request.command_context(OPEN_ACCOUNT, &body)?;
        let result = self.service.open_account(&context, &body).await;
        created(result, observed, |id| Some(format!("/accounts/{id}")))
    }

    /// A command on one account; `body` is what the fingerprint covers besides the path.
    async fn on_account(
        &self,
        request: &ApiRequest,
        observed: &Observed,
        command: AccountCommand,
        body: impl serde::Serialize,
    ) -> Answer {
        let account = request.entity_id("id")?;
        let if_match = request.if_match()?;
        let context = request.command_context(request.route_key(), &(&account, body, if_match))?;
        let executed = self
            .service
            .act_on_account(&context, &account, if_match, &command)
            .await
            .map_err(|e| e.to_problem())?;
        observed.note(&executed);
        let version = version_of(&executed, 0)?;
        tracing::info!(stream = %bank::service::account_stream(&account), version,
            replayed = executed.replayed, "command executed");
        Ok(answer(
            200,
            &json!({ "id": account, "version": version }),
            version,
            executed.replayed,
        ))
    }

    async fn transfer(&self, request: &ApiRequest, observed: &Observed) -> Answer {
        let body: TransferMoney = request.json()?;
        let if_match = request.if_match()?;
        let context = request.command_context(TRANSFER, &(&body, if_match))?;
        let executed: Executed<Transferred> = self
            .service
            .transfer(&context, &body, if_match)
            .await
            .map_err(|e| e.to_problem())?;
        observed.note(&executed);
        let (from, to) = (version_of(&executed, 0)?, version_of(&executed, 1)?);
        tracing::info!(stream = %bank::service::account_stream(&body.from), version = from,
            to_stream = %bank::service::account_stream(&body.to), to_version = to,
            replayed = executed.replayed, "command executed");
        Ok(answer(
            201,
            &json!({
                "id": executed.receipt.transfer_id,
                "from": { "id": body.from, "version": from },
                "to": { "id": body.to, "version": to },
            }),
            from,
            executed.replayed,
        ))
    }
}

/// The answer to a command that created something: 201, its id and version, a `Location`.
fn created(
    result: BankResult<Created>,
    observed: &Observed,
    location: impl Fn(&EntityId) -> Option<String>,
) -> Answer {
    let executed = result.map_err(|e| e.to_problem())?;
    observed.note(&executed);
    let version = version_of(&executed, 0)?;
    let id = &executed.receipt.id;
    tracing::info!(stream = %executed.streams[0].stream_id, version,
        replayed = executed.replayed, "command executed");
    let mut response = answer(
        201,
        &json!({ "id": id, "version": version }),
        version,
        executed.replayed,
    );
    if let Some(location) = location(id) {
        set_header(&mut response, "location", &location);
    }
    Ok(response)
}

/// A JSON answer with the new version as its `ETag`, marked if it is a replay.
fn answer(
    status: u16,
    body: &serde_json::Value,
    version: u64,
    replayed: bool,
) -> ApiGatewayV2httpResponse {
    let mut response = json_response(status, body);
    set_header(&mut response, "etag", &etag(version));
    mark_replayed(&mut response, replayed);
    response
}

/// The new version of the `index`-th stream written (targets in order).
fn version_of<R>(executed: &Executed<R>, index: usize) -> Result<u64, Problem> {
    executed
        .streams
        .get(index)
        .map(|s| s.last_version)
        .ok_or_else(|| {
            Problem::new(kinds::INTERNAL, "internal error").with_cause_text(format!(
                "the command wrote {} streams",
                executed.streams.len()
            ))
        })
}

/// The command's outcome, as its answer says it.
fn outcome_of(response: &ApiGatewayV2httpResponse) -> &'static str {
    match response.status_code {
        200..=299 if response.headers.contains_key("idempotent-replayed") => "replayed",
        200..=299 => "written",
        409 => "conflict",
        412 => "precondition-failed",
        404 | 422 => "rejected",
        503 => match &response.body {
            Some(Body::Text(text)) if text.contains("/outcome-unknown") => "outcome-unknown",
            _ => "unavailable",
        },
        500..=599 => "internal",
        _ => "invalid",
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The Lambda entry point: API Gateway event in, response out, never an error for bad input.
pub async fn handle(
    app: &App,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(app.respond(ApiRequest::from_lambda(event)).await)
}
