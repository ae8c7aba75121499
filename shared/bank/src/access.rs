//! Who may do what at the bank: the scopes of its routes, and ownership.
//!
//! | scope | grants |
//! |---|---|
//! | `bank/read` | reading one's own accounts (row, state, events) |
//! | `bank/write` | registering, opening accounts, moving one's own money |
//! | `bank/operator` | reading and acting on every account, raw streams, verify |
//!
//! An account belongs to the principal that opened it. Anyone else, unless an operator, is
//! told it does not exist: the same answer as for an account that was never opened, so a
//! refusal reveals nothing. A transfer may go to any open account.

use eventfold::RecordedEvent;
use eventfold::command::CommandContext;
use eventfold::encoding::decode_known;
use eventfold::identity::{Denied, Principal};

use crate::domain::account::{Account, AccountEvent};
use crate::read_model::AccountView;

/// Reading one's own accounts.
pub const READ: &str = "bank/read";
/// Registering, opening accounts, moving one's own money.
pub const WRITE: &str = "bank/write";
/// Everything, on every account; raw streams and verification.
pub const OPERATOR: &str = "bank/operator";
/// Every scope, for a token or a client that may do anything.
pub const ALL: [&str; 3] = [READ, WRITE, OPERATOR];

/// `Ok` if `principal` is an operator or the owner named by `owner_id`; else hidden (404).
pub fn owner_or_operator(principal: &Principal, owner_id: Option<&str>) -> Result<(), Denied> {
    if principal.has_scope(OPERATOR) || owner_id.is_some_and(|owner| principal.is(owner)) {
        Ok(())
    } else {
        Err(Denied::Hidden)
    }
}

/// The rule for a command's context: an in-process caller with no principal (a test, a
/// script over the library) is trusted; the HTTP runtimes never run a bank route without one.
pub fn caller_may(context: &CommandContext, account: &Account) -> Result<(), Denied> {
    context
        .principal
        .as_ref()
        .map_or(Ok(()), |principal| self::account(principal, account))
}

/// May `principal` act on or see this account (an unopened one is nobody's but an
/// operator's, who then hears that it does not exist from the account itself)?
pub fn account(principal: &Principal, account: &Account) -> Result<(), Denied> {
    owner_or_operator(principal, account.owner_id.as_deref())
}

/// The same rule on the account's read-model row.
pub fn row(principal: &Principal, row: &AccountView) -> Result<(), Denied> {
    owner_or_operator(principal, row.owner_id.as_deref())
}

/// The rule for acting on a user: the user themself (their id is their subject) or an
/// operator; an in-process caller with no principal is trusted.
pub fn user_may(context: &CommandContext, user_stream: &eventfold::StreamId) -> Result<(), Denied> {
    match &context.principal {
        None => Ok(()),
        Some(principal) => user(principal, user_stream.entity_id()),
    }
}

/// May `principal` act on or see the user `user_id`?
pub fn user(principal: &Principal, user_id: &str) -> Result<(), Denied> {
    owner_or_operator(principal, Some(user_id))
}

/// A user's own stream: the user whose id is the caller's subject (or an operator).
pub fn user_stream(principal: &Principal, first: &RecordedEvent) -> bool {
    principal.has_scope(OPERATOR) || first.stream_id.entity_id() == principal.subject()
}

/// The same rule on an account stream's first event (the opening), for its raw events.
pub fn account_stream(principal: &Principal, first: &RecordedEvent) -> bool {
    match decode_known::<AccountEvent>(first) {
        Ok(Some(AccountEvent::AccountOpened { owner_id, .. })) => {
            owner_or_operator(principal, owner_id.as_deref()).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_operators_pass_others_are_hidden_from() {
        let ada = Principal::jwt("https://id", "ada", [READ]);
        let bob = Principal::jwt("https://id", "bob", [READ, WRITE]);
        let ops = Principal::jwt("https://id", "ops", [OPERATOR]);
        assert_eq!(owner_or_operator(&ada, Some("ada")), Ok(()));
        assert_eq!(owner_or_operator(&bob, Some("ada")), Err(Denied::Hidden));
        assert_eq!(owner_or_operator(&ops, Some("ada")), Ok(()));
        assert_eq!(owner_or_operator(&ada, None), Err(Denied::Hidden));
        assert_eq!(owner_or_operator(&ops, None), Ok(()));
    }
}
