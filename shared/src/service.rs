//! The reference service: bank accounts and users on top of the command service.
//!
//! Handlers parse a request, call one method here, and map the result to a response. Every
//! write goes through [`CommandService`], which is the only place that loads, decides and
//! appends.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::aggregate::to_new_event;
use crate::command::{
    Claim, CommandContext, CommandError, CommandService, Executed, Loaded, Target,
};
use crate::domain::account::{Account, AccountCommand, AccountError, decide_transfer};
use crate::domain::user::{User, UserCommand, UserError, normalize_email};
use crate::error::StoreError;
use crate::ids::StreamId;
use crate::store::{AsOf, WrittenStream};

/// Why a banking operation failed, across aggregates.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    User(#[from] UserError),
    /// `If-Match` named another version.
    #[error("{stream_id} is at version {actual}, not {expected}")]
    PreconditionFailed {
        stream_id: StreamId,
        expected: u64,
        actual: u64,
    },
    /// Concurrent writers kept winning; the caller may retry.
    #[error("{stream_id} kept changing; gave up after {attempts} attempts")]
    Conflict { stream_id: StreamId, attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E> From<CommandError<E>> for ServiceError
where
    E: std::error::Error + 'static,
    ServiceError: From<E>,
{
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(domain) => domain.into(),
            CommandError::PreconditionFailed {
                stream_id,
                expected,
                actual,
            } => Self::PreconditionFailed {
                stream_id,
                expected,
                actual,
            },
            CommandError::Conflict {
                stream_id,
                attempts,
            } => Self::Conflict {
                stream_id,
                attempts,
            },
            // The only claims are email addresses.
            CommandError::ClaimTaken { .. } => Self::User(UserError::EmailTaken),
            CommandError::Store(store) => Self::Store(store),
        }
    }
}

/// The category of email-address claims: `UserEmail-<sha256 of the normalised address>`.
pub const EMAIL_CLAIM_CATEGORY: &str = "UserEmail";

/// The stream that claims an address; hashed, so ids stay within the id charset and length.
pub fn email_claim_stream(normalized_email: &str) -> StreamId {
    let digest = hex::encode(Sha256::digest(normalized_email.as_bytes()));
    StreamId::new(EMAIL_CLAIM_CATEGORY, &digest).expect("a hex digest is a valid id")
}

/// The stream of an account.
pub fn account_stream(account_id: &str) -> Result<StreamId, StoreError> {
    StreamId::new(
        <Account as crate::aggregate::Aggregate>::CATEGORY,
        account_id,
    )
}

/// The stream of a user.
pub fn user_stream(user_id: &str) -> Result<StreamId, StoreError> {
    StreamId::new(<User as crate::aggregate::Aggregate>::CATEGORY, user_id)
}

/// A response builder: from the versions about to be written to the stored response.
pub type Respond<'a> = &'a (dyn Fn(&[WrittenStream]) -> Value + Send + Sync);

/// Bank accounts and users.
#[derive(Clone, Debug)]
pub struct BankingService {
    commands: CommandService,
}

impl BankingService {
    /// A service over a command service.
    pub fn new(commands: CommandService) -> Self {
        Self { commands }
    }

    /// The command service underneath.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// Registers a user, claiming the normalised address in the same transaction.
    pub async fn register_user(
        &self,
        context: &CommandContext,
        user_id: &str,
        email: &str,
        name: &str,
        respond: Respond<'_>,
    ) -> Result<Executed, ServiceError> {
        let normalized = normalize_email(email)?;
        let stream_id = user_stream(user_id)?;
        let claim = Claim {
            stream_id: email_claim_stream(&normalized),
            event: to_new_event(
                &ClaimEvent::EmailClaimed {
                    user_id: user_id.to_owned(),
                },
                &context.metadata,
            )?,
        };
        let command = UserCommand::Register {
            email: normalized,
            name: name.to_owned(),
        };
        Ok(self
            .commands
            .execute::<User>(
                context,
                &[Target::new(stream_id)],
                &[claim],
                |loaded: &[Loaded<User>]| {
                    Ok(vec![crate::aggregate::Aggregate::decide(
                        &loaded[0].state,
                        &command,
                    )?])
                },
                respond,
            )
            .await?)
    }

    /// Runs one account command, optionally pinned to a version (`If-Match`).
    pub async fn account_command(
        &self,
        context: &CommandContext,
        account_id: &str,
        if_match: Option<u64>,
        command: &AccountCommand,
        respond: Respond<'_>,
    ) -> Result<Executed, ServiceError> {
        let target = Target {
            stream_id: account_stream(account_id)?,
            if_match,
        };
        Ok(self
            .commands
            .execute_one::<Account>(context, target, command, respond)
            .await?)
    }

    /// Moves money between two accounts: both streams in one transaction.
    ///
    /// `if_match` pins the source account's version.
    #[allow(clippy::too_many_arguments)]
    pub async fn transfer(
        &self,
        context: &CommandContext,
        transfer_id: &str,
        from: &str,
        to: &str,
        amount: i64,
        if_match: Option<u64>,
        respond: Respond<'_>,
    ) -> Result<Executed, ServiceError> {
        if from == to {
            return Err(AccountError::SameAccount.into());
        }
        let targets = [
            Target {
                stream_id: account_stream(from)?,
                if_match,
            },
            Target::new(account_stream(to)?),
        ];
        Ok(self
            .commands
            .execute::<Account>(
                context,
                &targets,
                &[],
                |loaded: &[Loaded<Account>]| {
                    let (sent, received) = decide_transfer(
                        transfer_id,
                        (from, &loaded[0].state),
                        (to, &loaded[1].state),
                        amount,
                    )?;
                    Ok(vec![sent, received])
                },
                respond,
            )
            .await?)
    }

    /// An account's state folded from its events: now (via its snapshot) or as of a point.
    pub async fn account_state(
        &self,
        account_id: &str,
        as_of: Option<AsOf>,
    ) -> Result<Loaded<Account>, ServiceError> {
        let stream_id = account_stream(account_id)?;
        Ok(match as_of {
            Some(as_of) => {
                self.commands
                    .load_as_of::<Account>(&stream_id, as_of)
                    .await?
            }
            None => self.commands.load::<Account>(&stream_id).await?,
        })
    }
}

/// The event of an email claim stream: which user holds the address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum ClaimEvent {
    EmailClaimed { user_id: String },
}

impl crate::aggregate::DomainEvent for ClaimEvent {
    fn event_type(&self) -> &'static str {
        "EmailClaimed"
    }
}
