//! POST routes of the HTTP API (API Gateway payload v2).
//!
//! Each route parses and validates its body, calls one [`BankingService`] method, and maps
//! the result to a response: JSON on success, `application/problem+json` otherwise. The
//! handler never returns an error to the Lambda runtime for anything a client sent.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use eventfold::command::{CommandContext, CommandService, Executed};
use eventfold::config::Config;
use eventfold::domain::account::{AccountCommand, is_valid_owner};
use eventfold::domain::money::{Currency, MAX_AMOUNT, is_valid_amount};
use eventfold::domain::user::is_valid_name;
use eventfold::envelope::EventMetadata;
use eventfold::http::{
    ApiRequest, IDEMPOTENCY_HEADER, Problem, ProblemKind, REPLAYED_HEADER, StoredResponse, etag,
    is_token, parse_if_match, set_header,
};
use eventfold::ids::validate_entity_id;
use eventfold::names::env;
use eventfold::service::{BankingService, ServiceError};
use eventfold::snapshot::DynamoSnapshots;
use eventfold::store::{EventStore, WrittenStream};
use eventfold::{CommandId, chain::write_canonical_json};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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
    pub async fn respond(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        eventfold::http::respond(request, async |request| self.route(request).await).await
    }

    async fn route(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        match request.route_key() {
            REGISTER_USER => self.register_user(request).await,
            OPEN_ACCOUNT => self.open_account(request).await,
            DEPOSIT => {
                let AmountBody { amount } = parse_amount(request)?;
                self.account_command(request, AccountCommand::Deposit { amount })
                    .await
            }
            WITHDRAW => {
                let AmountBody { amount } = parse_amount(request)?;
                self.account_command(request, AccountCommand::Withdraw { amount })
                    .await
            }
            CLOSE_ACCOUNT => {
                if !request.body()?.iter().all(u8::is_ascii_whitespace) {
                    let (CloseBody {}, _) = request.json::<CloseBody>()?;
                }
                self.account_command(request, AccountCommand::Close).await
            }
            TRANSFER => self.transfer(request).await,
            other => Err(Problem::new(
                ProblemKind::RouteNotFound,
                format!("the command API has no route {other:?}"),
            )),
        }
    }

    async fn register_user(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let (body, raw) = request.json::<RegisterUserBody>()?;
        if !is_valid_name(&body.name) {
            return Err(invalid(
                "name must be 1-200 characters without control characters",
            ));
        }
        let context = command_context(request, &raw)?;
        let user_id = new_id();
        let respond = |streams: &[WrittenStream]| {
            StoredResponse::json(
                201,
                json!({ "id": user_id, "version": last_version(streams, 0) }),
            )
            .header("etag", etag(last_version(streams, 0)))
            .to_value()
        };
        let executed = self
            .service
            .register_user(&context, &user_id, &body.email, &body.name, &respond)
            .await;
        answer(executed)
    }

    async fn open_account(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let (body, raw) = request.json::<OpenAccountBody>()?;
        if !is_valid_owner(&body.owner) {
            return Err(invalid(
                "owner must be 1-200 characters without control characters",
            ));
        }
        let currency = Currency::parse(&body.currency).map_err(|e| invalid(e.to_string()))?;
        let context = command_context(request, &raw)?;
        let account_id = new_id();
        let respond = |streams: &[WrittenStream]| {
            let version = last_version(streams, 0);
            StoredResponse::json(201, json!({ "id": account_id, "version": version }))
                .header("location", format!("/accounts/{account_id}"))
                .header("etag", etag(version))
                .to_value()
        };
        let command = AccountCommand::Open {
            owner: body.owner,
            currency,
        };
        let executed = self
            .service
            .account_command(&context, &account_id, None, &command, &respond)
            .await;
        answer(executed)
    }

    async fn account_command(
        &self,
        request: &ApiRequest,
        command: AccountCommand,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let account_id = path_id(request, "id")?;
        let if_match = parse_if_match(request.header("if-match"))?;
        let raw = json!({ "command": format!("{command:?}"), "if_match": if_match });
        let context = command_context(request, &raw)?;
        let respond = |streams: &[WrittenStream]| {
            let version = last_version(streams, 0);
            StoredResponse::json(200, json!({ "id": account_id, "version": version }))
                .header("etag", etag(version))
                .to_value()
        };
        let executed = self
            .service
            .account_command(&context, &account_id, if_match, &command, &respond)
            .await;
        answer(executed)
    }

    async fn transfer(&self, request: &ApiRequest) -> Result<ApiGatewayV2httpResponse, Problem> {
        let (body, raw) = request.json::<TransferBody>()?;
        for id in [&body.from, &body.to] {
            validate_entity_id(id).map_err(|e| invalid(e.to_string()))?;
        }
        check_amount(body.amount)?;
        let if_match = parse_if_match(request.header("if-match"))?;
        let context = command_context(request, &json!({ "body": raw, "if_match": if_match }))?;
        let transfer_id = new_id();
        let respond = |streams: &[WrittenStream]| {
            let from_version = last_version(streams, 0);
            StoredResponse::json(
                201,
                json!({
                    "id": transfer_id,
                    "from": { "id": body.from, "version": from_version },
                    "to": { "id": body.to, "version": last_version(streams, 1) },
                }),
            )
            .header("etag", etag(from_version))
            .to_value()
        };
        let executed = self
            .service
            .transfer(
                &context,
                &transfer_id,
                &body.from,
                &body.to,
                body.amount,
                if_match,
                &respond,
            )
            .await;
        answer(executed)
    }
}

/// The Lambda entry point: API Gateway event in, response out, never an error for bad input.
pub async fn handle(
    app: &App,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    Ok(app.respond(event.payload).await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterUserBody {
    email: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountBody {
    owner: String,
    currency: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountBody {
    #[serde(deserialize_with = "minor_units")]
    amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    from: String,
    to: String,
    #[serde(deserialize_with = "minor_units")]
    amount: i64,
}

/// The largest integer an IEEE double holds exactly (2^53).
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

/// An amount in minor units: a JSON integer, or a number with no fractional part (`1200.0`,
/// `1.2e3`), which JSON Schema also counts as an integer — so what the OpenAPI document allows,
/// the API takes. `12.5` is refused here; the range is checked by [`check_amount`].
fn minor_units<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct MinorUnits;

    impl serde::de::Visitor<'_> for MinorUnits {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer number of minor units")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }

        #[allow(clippy::cast_possible_truncation)]
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() <= EXACT_IN_F64 {
                Ok(v as i64) // exact: integral and within f64's exact integers
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }

    deserializer.deserialize_any(MinorUnits)
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidRequest, detail)
}

fn check_amount(amount: i64) -> Result<(), Problem> {
    if is_valid_amount(amount) {
        Ok(())
    } else {
        Err(invalid(format!(
            "amount must be an integer from 1 to {MAX_AMOUNT} minor units"
        )))
    }
}

fn parse_amount(request: &ApiRequest) -> Result<AmountBody, Problem> {
    path_id(request, "id")?;
    let (body, _) = request.json::<AmountBody>()?;
    check_amount(body.amount)?;
    Ok(body)
}

fn path_id(request: &ApiRequest, name: &str) -> Result<String, Problem> {
    let id = request.path_param(name).unwrap_or_default();
    validate_entity_id(id).map_err(|e| invalid(e.to_string()))?;
    Ok(id.to_owned())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn last_version(streams: &[WrittenStream], index: usize) -> u64 {
    streams.get(index).map_or(0, |s| s.last_version)
}

/// Idempotency key, request fingerprint and event metadata for a command.
fn command_context(request: &ApiRequest, body: &Value) -> Result<CommandContext, Problem> {
    let command_id = match request.header(IDEMPOTENCY_HEADER) {
        None => None,
        Some(key) if is_token(key, 128) => {
            Some(CommandId::new(key).map_err(|e| invalid(e.to_string()))?)
        }
        Some(_) => {
            return Err(invalid(
                "Idempotency-Key must be 1-128 printable ASCII characters",
            ));
        }
    };
    // The fingerprint covers the route, the path and the body's meaning (not its formatting).
    let mut canonical = String::new();
    write_canonical_json(body, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(request.route_key().as_bytes());
    hasher.update(b"\n");
    hasher.update(request.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    Ok(CommandContext {
        command_id,
        request_hash: hex::encode(hasher.finalize()),
        metadata: EventMetadata {
            correlation_id: Some(request.correlation_id().to_owned()),
            causation_id: request.request_id().map(str::to_owned),
            command_id: None,
            actor: request.actor(),
        },
    })
}

/// Turns a service result into the response: the stored one, marked if it is a replay.
fn answer(executed: Result<Executed, ServiceError>) -> Result<ApiGatewayV2httpResponse, Problem> {
    let executed = executed.map_err(|e| Problem::from(&e))?;
    let stored = StoredResponse::from_value(&executed.response)
        .ok_or_else(|| Problem::new(ProblemKind::Internal, "stored response does not decode"))?;
    let mut response = stored.into_response();
    if executed.replayed {
        set_header(&mut response, REPLAYED_HEADER, "true");
    }
    Ok(response)
}
