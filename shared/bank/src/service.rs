//! The bank's service: one method per command, over the library's command service.
//!
//! Each method takes a parsed request and returns what happened as data ([`Executed`] with a
//! typed receipt); the handler says it in HTTP. Ids the service generates travel in the
//! receipt, which the commands table keeps, so a repeated command reports the same ids.

use std::sync::Arc;

use eventfold::command::{
    Claim, CommandContext, CommandError, CommandService, Executed, Loaded, Target,
};
use eventfold::error::StoreError;
use eventfold::identity::Principal;
use eventfold::keyed::KeyedHash;
use eventfold::personal::Personal;
use eventfold::store::AsOf;
use eventfold::{Aggregate, DomainEvent, EntityId, StreamId};
use serde::{Deserialize, Serialize};

use crate::access;
use crate::api::{OpenAccount, RegisterUser, TransferMoney};
use crate::domain::account::{Account, AccountCommand, AccountError, Transfer};
use crate::domain::user::{Email, User, UserCommand, UserError};

/// Why the bank refused a command, across its aggregates.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// An account refused.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A user refused.
    #[error(transparent)]
    User(#[from] UserError),
}

/// What every bank command returns.
pub type BankResult<R> = Result<Executed<R>, CommandError<BankError>>;

/// The receipt of a command that created something: its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The new user's or account's id.
    pub id: EntityId,
}

/// The receipt of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    /// The transfer's id, carried by both events.
    pub transfer_id: EntityId,
}

/// Moves money between two accounts in one transaction: both halves decided over both loaded
/// accounts, both streams appended together, or nothing. The caller must own the sending
/// account (or be an operator, or be the service itself: no principal); to anyone else it does
/// not exist.
pub async fn transfer(
    commands: &CommandService,
    context: &CommandContext,
    request: &TransferMoney,
    if_match: Option<u64>,
) -> Result<Executed<Transferred>, CommandError<AccountError>> {
    let transfer = Transfer {
        transfer_id: EntityId::generate(),
        from: request.from.clone(),
        to: request.to.clone(),
        amount: request.amount,
    };
    let targets = [
        Target::new(account_stream(&transfer.from)).if_match(if_match),
        Target::new(account_stream(&transfer.to)),
    ];
    commands
        .execute_authorized::<Account, _>(
            context,
            &targets,
            &[],
            |loaded| access::caller_may(context, &loaded[0].state),
            |loaded: &[Loaded<Account>]| {
                let (sent, received) = transfer.decide(&loaded[0].state, &loaded[1].state)?;
                Ok(vec![sent, received])
            },
            Transferred {
                transfer_id: transfer.transfer_id.clone(),
            },
        )
        .await
}

/// The category of email-address claims: `UserEmail-<HMAC of the normalised address>`.
pub const EMAIL_CLAIM_CATEGORY: &str = "UserEmail";

/// The stream that claims an address: named after its keyed hash, so ids stay within the id
/// charset and length, and neither the address nor a hash anyone could recompute from a
/// guessed address is a key (the id travels as a queue's group id and into logs).
pub async fn email_claim_stream(
    key: &dyn KeyedHash,
    email: &Email,
) -> Result<StreamId, StoreError> {
    let mac = key.mac(email.as_str().as_bytes()).await?;
    StreamId::new(EMAIL_CLAIM_CATEGORY, &mac).map_err(|e| StoreError::misuse(e.to_string()))
}

/// The bank's upcasters: events written before personal data was sealed are read in today's
/// shape, their personal values open (they were stored in plain text) under the subject they
/// belong to.
pub fn upcasters() -> eventfold::upcast::Upcasters {
    eventfold::upcast::Upcasters::new()
        .register("AccountOpened", 1, |mut payload| {
            let subject = payload
                .get("owner_id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(UNOWNED)
                .to_owned();
            let owner = payload
                .get_mut("owner")
                .ok_or("an AccountOpened without an owner")?;
            *owner = personal_json(&subject, owner.take());
            Ok(payload)
        })
        .register("UserRegistered", 1, |payload| {
            // A schema 1 registration does not say whose it is: its stream does, which an
            // upcaster does not see, so its values belong to an unnamed subject.
            let mut payload = payload;
            for field in ["email", "name"] {
                let value = payload
                    .get_mut(field)
                    .ok_or_else(|| format!("a UserRegistered without {field}"))?;
                *value = personal_json(UNOWNED, value.take());
            }
            Ok(payload)
        })
}

/// The subject of personal values written before subjects were recorded.
pub const UNOWNED: &str = "unowned";

fn personal_json(subject: &str, value: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ eventfold::personal::MARKER: subject, "value": value })
}

/// The bank's user id of a caller: its subject (a Cognito user's `sub`, say), which must be
/// a valid id.
pub fn user_id_of(principal: &Principal) -> Result<EntityId, StoreError> {
    EntityId::parse(principal.subject()).map_err(|e| {
        StoreError::misuse(format!("the caller's subject is not a valid user id: {e}"))
    })
}

/// The stream of an account.
pub fn account_stream(id: &EntityId) -> StreamId {
    Account::stream_id(id)
}

/// The stream of a user.
pub fn user_stream(id: &EntityId) -> StreamId {
    User::stream_id(id)
}

/// The event of an email claim stream: which user holds the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum ClaimEvent {
    /// The address is claimed.
    EmailClaimed {
        /// By whom.
        user_id: EntityId,
    },
}

/// Bank accounts and users.
#[derive(Clone, Debug)]
pub struct BankingService {
    commands: CommandService,
    claim_key: Arc<dyn KeyedHash>,
}

impl BankingService {
    /// A service over a command service, claiming email addresses under `claim_key`.
    pub fn new(commands: CommandService, claim_key: Arc<dyn KeyedHash>) -> Self {
        Self {
            commands,
            claim_key,
        }
    }

    /// The command service underneath.
    pub fn commands(&self) -> &CommandService {
        &self.commands
    }

    /// Registers a user, claiming the normalised address in the same transaction. A user
    /// registers themself: the user's id is the caller's subject, which is how the accounts
    /// they open name their owner. An operator (an IAM principal, or an in-process caller)
    /// registers someone under a new id instead.
    pub async fn register_user(
        &self,
        context: &CommandContext,
        request: &RegisterUser,
    ) -> BankResult<Created> {
        let user_id = match &context.principal {
            Some(principal @ Principal::Jwt { .. }) => user_id_of(principal)?,
            _ => EntityId::generate(),
        };
        let claim = Claim::new(
            email_claim_stream(self.claim_key.as_ref(), &request.email).await?,
            &ClaimEvent::EmailClaimed {
                user_id: user_id.clone(),
            },
        )?;
        let command = UserCommand::Register {
            email: Personal::new(user_id.as_str(), request.email.clone()),
            name: Personal::new(user_id.as_str(), request.name.clone()),
        };
        self.commands
            .execute::<User, _>(
                context,
                &[Target::new(user_stream(&user_id))],
                &[claim],
                |loaded: &[Loaded<User>]| Ok(vec![loaded[0].state.decide(&command)?]),
                Created {
                    id: user_id.clone(),
                },
            )
            .await
            .map_err(|error| match error {
                CommandError::ClaimTaken { .. } => {
                    CommandError::Rejected(BankError::User(UserError::EmailTaken))
                }
                other => other.map_rejected(BankError::User),
            })
    }

    /// Opens an account under a new id, owned by the caller, who must be a registered user
    /// (an operator opens accounts that only operators reach).
    pub async fn open_account(
        &self,
        context: &CommandContext,
        request: &OpenAccount,
    ) -> BankResult<Created> {
        if let Some(principal @ Principal::Jwt { .. }) = &context.principal {
            let user = self
                .commands
                .load::<User>(&user_stream(&user_id_of(principal)?))
                .await?;
            if !user.state.registered || user.state.forgotten {
                return Err(CommandError::Rejected(BankError::User(
                    UserError::NotRegistered,
                )));
            }
        }
        let id = EntityId::generate();
        let owner_id = context.principal.as_ref().map(|p| p.subject().to_owned());
        // The name is its owner's personal data when a user opens it (forgetting the user
        // forgets it); an account opened by an IAM caller (a service, an operator) or by
        // nobody is its own subject, so that forgetting that caller erases nobody's name.
        let subject = match &context.principal {
            Some(Principal::Jwt { subject, .. }) => subject.clone(),
            _ => id.to_string(),
        };
        let command = AccountCommand::Open {
            owner: Personal::new(subject, request.owner.clone()),
            currency: request.currency,
            owner_id,
        };
        self.commands
            .execute_one::<Account, _>(
                context,
                Target::new(account_stream(&id)),
                &command,
                Created { id: id.clone() },
            )
            .await
            .map_err(|e| e.map_rejected(BankError::Account))
    }

    /// Runs a command on an existing account, optionally pinned to a version (`If-Match`),
    /// if the caller owns it or is an operator (else it does not exist for them).
    pub async fn act_on_account(
        &self,
        context: &CommandContext,
        account: &EntityId,
        if_match: Option<u64>,
        command: &AccountCommand,
    ) -> BankResult<()> {
        self.commands
            .execute_authorized::<Account, _>(
                context,
                &[Target::new(account_stream(account)).if_match(if_match)],
                &[],
                |loaded| access::caller_may(context, &loaded[0].state),
                |loaded| Ok(vec![loaded[0].state.decide(command)?]),
                (),
            )
            .await
            .map_err(|e| e.map_rejected(BankError::Account))
    }

    /// Moves money between two accounts: both streams in one transaction. `if_match` pins
    /// the source account's version. The caller must own the source (or be an operator); the
    /// destination may be anyone's open account.
    pub async fn transfer(
        &self,
        context: &CommandContext,
        request: &TransferMoney,
        if_match: Option<u64>,
    ) -> BankResult<Transferred> {
        transfer(&self.commands, context, request, if_match)
            .await
            .map_err(|e| e.map_rejected(BankError::Account))
    }

    /// Forgets a user: records `UserForgotten` and deletes their key, so that their address and
    /// name (and their accounts' owner name) read as erased everywhere from now on, while every
    /// stream still verifies. The user themself or an operator may; to anyone else the user does
    /// not exist. Forgetting again is refused (404: there is nothing of theirs left), and deletes
    /// the key again, so a retry after a failure between the two finishes the job.
    pub async fn forget_user(&self, context: &CommandContext, user: &EntityId) -> BankResult<()> {
        let keys = self.commands.subject_keys().cloned().ok_or_else(|| {
            StoreError::misuse("forgetting needs the command service's subject keys")
        })?;
        let forgotten = self
            .commands
            .execute_authorized::<User, _>(
                context,
                &[Target::new(user_stream(user))],
                &[],
                |loaded| access::user_may(context, &loaded[0].stream_id),
                |loaded| Ok(vec![loaded[0].state.decide(&UserCommand::Forget)?]),
                (),
            )
            .await
            .map_err(|e| e.map_rejected(BankError::User));
        // Written now, a repeat of it, or forgotten before: the key goes either way.
        if matches!(
            forgotten,
            Ok(_)
                | Err(CommandError::Rejected(BankError::User(
                    UserError::Forgotten
                )))
        ) {
            keys.forget(user.as_str()).await?;
        }
        forgotten
    }

    /// An account's state folded from its events: now (via its snapshot) or as of a point.
    pub async fn account_state(
        &self,
        id: &EntityId,
        as_of: Option<AsOf>,
    ) -> Result<Loaded<Account>, StoreError> {
        let stream_id = account_stream(id);
        match as_of {
            Some(as_of) => self.commands.load_as_of::<Account>(&stream_id, as_of).await,
            None => self.commands.load::<Account>(&stream_id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn categories_are_valid_and_claims_are_keyed_hashes_of_the_address() {
        use eventfold::keyed::LocalKey;
        use sha2::{Digest, Sha256};
        let id = EntityId::parse("a-1").expect("valid");
        assert_eq!(account_stream(&id).as_str(), "Account-a-1");
        assert_eq!(user_stream(&id).as_str(), "User-a-1");
        let email = Email::parse("Ada@Example.com").expect("valid");
        let key = LocalKey::new(*b"the bank's claim key, 32 bytes!!");
        let claim = email_claim_stream(&key, &email).await.expect("valid");
        assert_eq!(claim.category(), EMAIL_CLAIM_CATEGORY);
        assert!(!claim.as_str().contains("ada"));
        let unkeyed = hex::encode(Sha256::digest(email.as_str().as_bytes()));
        assert!(
            !claim.as_str().contains(&unkeyed),
            "a guess must not find the claim"
        );
        let other_key = LocalKey::new(*b"another key of thirty-two bytes!");
        assert_ne!(
            claim,
            email_claim_stream(&other_key, &email).await.expect("valid")
        );
        assert_eq!(
            claim,
            email_claim_stream(&key, &email).await.expect("valid")
        );
    }
}
