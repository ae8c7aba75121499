//! POST routes of the HTTP API (API Gateway payload v2).
//!
//! Each route parses its request into the bank's types (400/415 otherwise), calls one
//! [`BankingService`] method, and says the typed result in HTTP: JSON on success,
//! `application/problem+json` otherwise. A repeated command's result comes from the commands
//! table and is rendered by the same code, so it answers identically. The handler never
//! returns an error to the Lambda runtime for anything a client sent.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use bank::api::{CloseAccount, MoveMoney, OpenAccount, RegisterUser, TransferMoney};
use bank::domain::account::AccountCommand;
use bank::service::{BankResult, BankingService, Created, Transferred};
use eventfold::EntityId;
use eventfold::command::{CommandService, Executed};
use eventfold::config::Config;
use eventfold::http::{
    ApiRequest, IntoProblem, Problem, deadline_from_lambda, etag, json_response, kinds,
    mark_replayed, set_header,
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
}

type Answer = Result<ApiGatewayV2httpResponse, Problem>;

impl App {
    /// An app over a banking service (tests pass one over the memory store).
    pub fn new(service: BankingService) -> Self {
        Self { service }
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
        eventfold::http::respond(request, async |request| self.route(request).await).await
    }

    async fn route(&self, request: &ApiRequest) -> Answer {
        match request.route_key() {
            REGISTER_USER => self.register_user(request).await,
            OPEN_ACCOUNT => self.open_account(request).await,
            DEPOSIT => {
                let MoveMoney { amount } = request.json()?;
                self.on_account(request, AccountCommand::Deposit { amount }, amount)
                    .await
            }
            WITHDRAW => {
                let MoveMoney { amount } = request.json()?;
                self.on_account(request, AccountCommand::Withdraw { amount }, amount)
                    .await
            }
            CLOSE_ACCOUNT => {
                // Closing takes no body, or `{}`.
                if !request.has_no_body()? {
                    let CloseAccount {} = request.json()?;
                }
                self.on_account(request, AccountCommand::Close, CloseAccount {})
                    .await
            }
            TRANSFER => self.transfer(request).await,
            other => Err(Problem::new(
                kinds::ROUTE_NOT_FOUND,
                format!("the command API has no route {other:?}"),
            )),
        }
    }

    async fn register_user(&self, request: &ApiRequest) -> Answer {
        let body: RegisterUser = request.json()?;
        let context = request.command_context(REGISTER_USER, &body)?;
        created(self.service.register_user(&context, &body).await, |_| None)
    }

    async fn open_account(&self, request: &ApiRequest) -> Answer {
        let body: OpenAccount = request.json()?;
        let context = request.command_context(OPEN_ACCOUNT, &body)?;
        created(self.service.open_account(&context, &body).await, |id| {
            Some(format!("/accounts/{id}"))
        })
    }

    /// A command on one account; `body` is what the fingerprint covers besides the path.
    async fn on_account(
        &self,
        request: &ApiRequest,
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
        let version = version_of(&executed, 0)?;
        Ok(answer(
            200,
            &json!({ "id": account, "version": version }),
            version,
            executed.replayed,
        ))
    }

    async fn transfer(&self, request: &ApiRequest) -> Answer {
        let body: TransferMoney = request.json()?;
        let if_match = request.if_match()?;
        let context = request.command_context(TRANSFER, &(&body, if_match))?;
        let executed: Executed<Transferred> = self
            .service
            .transfer(&context, &body, if_match)
            .await
            .map_err(|e| e.to_problem())?;
        let (from, to) = (version_of(&executed, 0)?, version_of(&executed, 1)?);
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
fn created(result: BankResult<Created>, location: impl Fn(&EntityId) -> Option<String>) -> Answer {
    let executed = result.map_err(|e| e.to_problem())?;
    let version = version_of(&executed, 0)?;
    let id = &executed.receipt.id;
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

/// The Lambda entry point: API Gateway event in, response out, never an error for bad input.
pub async fn handle(
    app: &App,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let deadline = deadline_from_lambda(&event.context);
    Ok(app
        .respond(ApiRequest::new(event.payload).with_deadline(deadline))
        .await)
}
