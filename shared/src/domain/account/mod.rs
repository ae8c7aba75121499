//! A bank account: opened with an owner and a currency, money in and out in that currency,
//! transfers between accounts, closed only when empty; nothing happens to a closed account.

use serde::{Deserialize, Serialize};

use super::money::{Currency, MAX_AMOUNT, is_valid_amount};
use crate::aggregate::{Aggregate, DomainEvent};

#[cfg(test)]
mod tests;

/// Longest owner name accepted, in characters.
pub const MAX_OWNER_CHARS: usize = 200;

/// Where an account is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// No account has been opened under this id.
    #[default]
    Unopened,
    Open,
    Closed,
}

impl AccountStatus {
    /// The status as the API and read model spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unopened => "unopened",
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// The state of one account, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub status: AccountStatus,
    pub owner: String,
    pub currency: Option<Currency>,
    /// Minor units; never negative.
    pub balance: i64,
}

/// What can be asked of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        owner: String,
        currency: Currency,
    },
    Deposit {
        amount: i64,
    },
    Withdraw {
        amount: i64,
    },
    /// The sending half of a transfer.
    SendTransfer {
        transfer_id: String,
        to: String,
        amount: i64,
    },
    /// The receiving half of a transfer; `currency` is the sender's.
    ReceiveTransfer {
        transfer_id: String,
        from: String,
        amount: i64,
        currency: Currency,
    },
    Close,
}

/// What happened to an account. Money events carry their currency so that consumers need no
/// state to interpret them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum AccountEvent {
    AccountOpened {
        owner: String,
        currency: Currency,
    },
    MoneyDeposited {
        amount: i64,
        currency: Currency,
    },
    MoneyWithdrawn {
        amount: i64,
        currency: Currency,
    },
    TransferSent {
        transfer_id: String,
        to: String,
        amount: i64,
        currency: Currency,
    },
    TransferReceived {
        transfer_id: String,
        from: String,
        amount: i64,
        currency: Currency,
    },
    AccountClosed {},
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AccountOpened { .. } => "AccountOpened",
            Self::MoneyDeposited { .. } => "MoneyDeposited",
            Self::MoneyWithdrawn { .. } => "MoneyWithdrawn",
            Self::TransferSent { .. } => "TransferSent",
            Self::TransferReceived { .. } => "TransferReceived",
            Self::AccountClosed {} => "AccountClosed",
        }
    }
}

/// Why an account refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no such account")]
    NotFound,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is closed")]
    Closed,
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: i64, requested: i64 },
    #[error("currency mismatch: the account holds {account}, the operation is in {requested}")]
    CurrencyMismatch {
        account: Currency,
        requested: Currency,
    },
    #[error("the balance is {balance}; only an empty account can be closed")]
    BalanceNotZero { balance: i64 },
    #[error("amount must be an integer from 1 to {MAX_AMOUNT} minor units, got {amount}")]
    InvalidAmount { amount: i64 },
    #[error("owner must be 1-{MAX_OWNER_CHARS} characters without control characters")]
    InvalidOwner,
    #[error("a transfer needs two different accounts")]
    SameAccount,
    #[error("the balance would exceed the largest representable amount")]
    BalanceOverflow,
}

/// Whether an owner name is acceptable: 1-200 characters, not blank, no control characters.
pub fn is_valid_owner(owner: &str) -> bool {
    let chars = owner.chars().count();
    (1..=MAX_OWNER_CHARS).contains(&chars)
        && !owner.trim().is_empty()
        && !owner.chars().any(char::is_control)
}

impl Account {
    fn open_currency(&self) -> Result<Currency, AccountError> {
        match (self.status, self.currency) {
            (AccountStatus::Unopened, _) | (_, None) => Err(AccountError::NotFound),
            (AccountStatus::Closed, _) => Err(AccountError::Closed),
            (AccountStatus::Open, Some(currency)) => Ok(currency),
        }
    }

    fn credit(&self, amount: i64) -> Result<(), AccountError> {
        check_amount(amount)?;
        self.balance
            .checked_add(amount)
            .map(drop)
            .ok_or(AccountError::BalanceOverflow)
    }

    fn debit(&self, amount: i64) -> Result<(), AccountError> {
        check_amount(amount)?;
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(())
    }
}

fn check_amount(amount: i64) -> Result<(), AccountError> {
    if is_valid_amount(amount) {
        Ok(())
    } else {
        Err(AccountError::InvalidAmount { amount })
    }
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "Account";
    const STATE_SCHEMA: u32 = 1;

    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let event = match command {
            C::Open { owner, currency } => {
                if self.status != AccountStatus::Unopened {
                    return Err(AccountError::AlreadyOpen);
                }
                if !is_valid_owner(owner) {
                    return Err(AccountError::InvalidOwner);
                }
                E::AccountOpened {
                    owner: owner.clone(),
                    currency: *currency,
                }
            }
            C::Deposit { amount } => {
                let currency = self.open_currency()?;
                self.credit(*amount)?;
                E::MoneyDeposited {
                    amount: *amount,
                    currency,
                }
            }
            C::Withdraw { amount } => {
                let currency = self.open_currency()?;
                self.debit(*amount)?;
                E::MoneyWithdrawn {
                    amount: *amount,
                    currency,
                }
            }
            C::SendTransfer {
                transfer_id,
                to,
                amount,
            } => {
                let currency = self.open_currency()?;
                self.debit(*amount)?;
                E::TransferSent {
                    transfer_id: transfer_id.clone(),
                    to: to.clone(),
                    amount: *amount,
                    currency,
                }
            }
            C::ReceiveTransfer {
                transfer_id,
                from,
                amount,
                currency,
            } => {
                let own = self.open_currency()?;
                if own != *currency {
                    return Err(AccountError::CurrencyMismatch {
                        account: own,
                        requested: *currency,
                    });
                }
                self.credit(*amount)?;
                E::TransferReceived {
                    transfer_id: transfer_id.clone(),
                    from: from.clone(),
                    amount: *amount,
                    currency: *currency,
                }
            }
            C::Close => {
                self.open_currency()?;
                if self.balance != 0 {
                    return Err(AccountError::BalanceNotZero {
                        balance: self.balance,
                    });
                }
                E::AccountClosed {}
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        use AccountEvent as E;
        match event {
            E::AccountOpened { owner, currency } => {
                self.status = AccountStatus::Open;
                self.owner.clone_from(owner);
                self.currency = Some(*currency);
            }
            E::MoneyDeposited { amount, .. } | E::TransferReceived { amount, .. } => {
                self.balance = self.balance.saturating_add(*amount);
            }
            E::MoneyWithdrawn { amount, .. } | E::TransferSent { amount, .. } => {
                self.balance = self.balance.saturating_sub(*amount);
            }
            E::AccountClosed {} => self.status = AccountStatus::Closed,
        }
        self
    }
}

/// Decides both halves of a transfer: events for the source and for the destination.
///
/// Either both succeed or neither does; the caller appends them in one transaction.
pub fn decide_transfer(
    transfer_id: &str,
    (from_id, source): (&str, &Account),
    (to_id, destination): (&str, &Account),
    amount: i64,
) -> Result<(Vec<AccountEvent>, Vec<AccountEvent>), AccountError> {
    if from_id == to_id {
        return Err(AccountError::SameAccount);
    }
    let sent = source.decide(&AccountCommand::SendTransfer {
        transfer_id: transfer_id.to_owned(),
        to: to_id.to_owned(),
        amount,
    })?;
    let currency = source.currency.ok_or(AccountError::NotFound)?;
    let received = destination.decide(&AccountCommand::ReceiveTransfer {
        transfer_id: transfer_id.to_owned(),
        from: from_id.to_owned(),
        amount,
        currency,
    })?;
    Ok((sent, received))
}
