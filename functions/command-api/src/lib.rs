//! POST routes of the bank's HTTP API: each parses its body into the bank's types, runs one
//! [`BankingService`] method, and says its receipt in JSON; the library's command runtime does
//! the rest (fingerprints, idempotency, ETags, problems, deadlines, metrics).

use std::sync::Arc;

use bank::access;
use bank::api::{
    CancelStandingOrder, CloseAccount, ForgetUser, MoveMoney, OpenAccount, RegisterUser,
    SetStandingOrder, TransferMoney,
};
use bank::domain::account::AccountCommand;
use bank::service::{BankError, BankingService, Created, Transferred, account_stream};
use eventfold::aws::aws_config::SdkConfig;
use eventfold::aws::aws_sdk_dynamodb::Client;
use eventfold::aws::{Config, DynamoSnapshots};
use eventfold::command::{CommandService, Executed};
use eventfold::lambda::command_api::{Command, CommandApi, CommandHead, Refused, Reply};
use eventfold::lambda::contract::{Contract, Runtime};
use eventfold::names::env;
use eventfold::problem::Problem;
use serde_json::json;

/// What this function needs from the template (checked against it): the command runtime, the
/// key email claims are made under, and the keys personal data is sealed with.
pub const CONTRACT: Contract = Contract::new(Runtime::CommandApi).requires(&[
    env::CLAIM_KEY_ID,
    env::SUBJECT_KEYS_TABLE,
    env::SUBJECT_KEY_ID,
    env::SNAPSHOT_KEY_ID,
]);

type Outcome<R> = Result<Executed<R>, Refused<BankError>>;

/// The bank's command routes over a banking service.
pub fn api(bank: BankingService) -> CommandApi<BankingService> {
    CommandApi::new(bank)
        .scope(access::WRITE)
        .route("POST /users", register_user, |_, done| created(done, None))
        .route("POST /accounts", open_account, |_, done| {
            created(done, Some(format!("/accounts/{}", done.receipt.id)))
        })
        .route("POST /accounts/{id}/deposits", deposit, on_account)
        .route("POST /accounts/{id}/withdrawals", withdraw, on_account)
        .route("POST /accounts/{id}/close", close, on_account)
        .body_optional()
        .route(
            "POST /accounts/{id}/standing-orders",
            set_standing_order,
            on_account,
        )
        .route(
            "POST /accounts/{id}/standing-orders/{to}/cancel",
            cancel_standing_order,
            on_account,
        )
        .body_optional()
        .route("POST /transfers", transfer, transferred)
        .route("DELETE /users/{id}", forget_user, forgotten)
        .body_optional()
}

/// The routes over DynamoDB and the KMS claim key, configured from the environment (which
/// [`CONTRACT`] has checked).
pub fn from_config(config: &Config, sdk: &SdkConfig) -> CommandApi<BankingService> {
    let config = &config.clone().with_upcasters(bank::upcasters());
    let client = Client::new(sdk);
    let store = Arc::new(
        config
            .event_store(client.clone())
            .with_commands_table(&config.commands_table),
    );
    let snapshots = Arc::new(DynamoSnapshots::new(client, &config.snapshots_table));
    let claim_key = config
        .claim_key(sdk)
        .expect("the contract requires CLAIM_KEY_ID, checked before this runs");
    let subject_keys = config
        .subject_keys(sdk)
        .expect("the contract requires the subject keys, checked before this runs");
    let snapshot_key = config
        .snapshot_key(sdk)
        .expect("the contract requires the snapshot key, checked before this runs");
    api(BankingService::new(
        CommandService::new(store)
            .with_snapshots(snapshots)
            .with_subject_keys(Arc::new(subject_keys))
            .with_snapshot_key(Arc::new(snapshot_key)),
        Arc::new(claim_key),
    ))
}

async fn register_user(bank: BankingService, cmd: Command<RegisterUser>) -> Outcome<Created> {
    Ok(bank.register_user(&cmd.context, &cmd.body).await?)
}

async fn open_account(bank: BankingService, cmd: Command<OpenAccount>) -> Outcome<Created> {
    Ok(bank.open_account(&cmd.context, &cmd.body).await?)
}

async fn act(
    bank: &BankingService,
    cmd: &Command<impl Sized>,
    command: AccountCommand,
) -> Outcome<()> {
    let account = cmd.entity_id("id")?;
    Ok(bank
        .act_on_account(&cmd.context, &account, cmd.if_match, &command)
        .await?)
}

async fn deposit(bank: BankingService, cmd: Command<MoveMoney>) -> Outcome<()> {
    let amount = cmd.body.amount;
    act(&bank, &cmd, AccountCommand::Deposit { amount }).await
}

async fn withdraw(bank: BankingService, cmd: Command<MoveMoney>) -> Outcome<()> {
    let amount = cmd.body.amount;
    act(&bank, &cmd, AccountCommand::Withdraw { amount }).await
}

async fn close(bank: BankingService, cmd: Command<CloseAccount>) -> Outcome<()> {
    act(&bank, &cmd, AccountCommand::Close).await
}

async fn set_standing_order(bank: BankingService, cmd: Command<SetStandingOrder>) -> Outcome<()> {
    let command = AccountCommand::SetStandingOrder {
        to: cmd.body.to.clone(),
        amount: cmd.body.amount,
        every_seconds: cmd.body.every_seconds.seconds(),
    };
    act(&bank, &cmd, command).await
}

async fn cancel_standing_order(
    bank: BankingService,
    cmd: Command<CancelStandingOrder>,
) -> Outcome<()> {
    let to = cmd.entity_id("to")?;
    act(&bank, &cmd, AccountCommand::CancelStandingOrder { to }).await
}

async fn forget_user(bank: BankingService, cmd: Command<ForgetUser>) -> Outcome<()> {
    let user = cmd.entity_id("id")?;
    Ok(bank.forget_user(&cmd.context, &user).await?)
}

/// 200 with the user's id and the version of their stream, now that they are forgotten.
fn forgotten(head: &CommandHead, done: &Executed<()>) -> Result<Reply, Problem> {
    let user = head.entity_id("id")?;
    let version = written(done, &bank::service::user_stream(&user))?;
    Ok(Reply::ok(
        json!({ "id": user, "version": version, "forgotten": true }),
    ))
}

async fn transfer(bank: BankingService, cmd: Command<TransferMoney>) -> Outcome<Transferred> {
    Ok(bank.transfer(&cmd.context, &cmd.body, cmd.if_match).await?)
}

/// 201 with the new entity's id and its stream's version.
fn created(done: &Executed<Created>, location: Option<String>) -> Result<Reply, Problem> {
    let version = first_version(done)?;
    let reply = Reply::created(json!({ "id": done.receipt.id, "version": version }));
    Ok(match location {
        Some(location) => reply.at(location),
        None => reply,
    })
}

/// 200 with the account's id and new version.
fn on_account(head: &CommandHead, done: &Executed<()>) -> Result<Reply, Problem> {
    let account = head.entity_id("id")?;
    let version = written(done, &account_stream(&account))?;
    Ok(Reply::ok(json!({ "id": account, "version": version })))
}

/// 201 with the transfer's id and both accounts' new versions.
fn transferred(_: &CommandHead, done: &Executed<Transferred>) -> Result<Reply, Problem> {
    let (from, to) = (&done.streams[0], &done.streams[1]);
    Ok(Reply::created(json!({
        "id": done.receipt.transfer_id,
        "from": { "id": from.stream_id.entity_id(), "version": from.last_version },
        "to": { "id": to.stream_id.entity_id(), "version": to.last_version },
    })))
}

fn first_version<R>(done: &Executed<R>) -> Result<u64, Problem> {
    done.streams
        .first()
        .map(|s| s.last_version)
        .ok_or_else(|| Problem::internal("the command wrote no stream"))
}

fn written<R>(done: &Executed<R>, stream: &eventfold::StreamId) -> Result<u64, Problem> {
    done.version_of(stream)
        .ok_or_else(|| Problem::internal(format!("the command wrote nothing to {stream}")))
}
