//! A bank account: opened with an owner and a currency, money in and out in that currency,
//! transfers between accounts, closed only when empty; nothing happens to a closed account.

use std::collections::BTreeMap;

use eventfold::personal::Personal;
use eventfold::{Aggregate, DomainEvent, EntityId};
use serde::{Deserialize, Serialize};

use super::Name;
use super::money::{Amount, Currency};

#[cfg(test)]
mod tests;

/// Where an account is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// No account has been opened under this id.
    #[default]
    Unopened,
    /// Open for business.
    Open,
    /// Closed at a zero balance; nothing happens to it any more.
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
    /// Where it is in its life.
    pub status: AccountStatus,
    /// The owner's name (`None` until opened): personal data of the owner, sealed as stored.
    pub owner: Option<Personal<Name>>,
    /// The principal that opened it and owns it (its subject): the only caller besides an
    /// operator who may act on it or see it. `None` for an account opened before accounts had
    /// owners: only operators reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Its currency (`None` until opened).
    pub currency: Option<Currency>,
    /// Minor units; never negative.
    pub balance: i64,
    /// Its standing orders, by the receiving account.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standing_orders: BTreeMap<EntityId, StandingOrder>,
}

/// The longest reason a failed run records, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A recurring transfer out of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingOrder {
    /// How much each run transfers.
    pub amount: Amount,
    /// Seconds between runs (the first one that long after it is set).
    pub every_seconds: u32,
}

/// What can be asked of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    /// Open it.
    Open {
        /// Whose it is: the owner's name, theirs to be forgotten.
        owner: Personal<Name>,
        /// What it holds.
        currency: Currency,
        /// The principal opening it, who will own it.
        owner_id: Option<String>,
    },
    /// Pay money in.
    Deposit {
        /// How much.
        amount: Amount,
    },
    /// Pay money out.
    Withdraw {
        /// How much.
        amount: Amount,
    },
    /// The sending half of a transfer.
    SendTransfer {
        /// The transfer.
        transfer_id: EntityId,
        /// The receiving account.
        to: EntityId,
        /// How much.
        amount: Amount,
    },
    /// The receiving half of a transfer; `currency` is the sender's.
    ReceiveTransfer {
        /// The transfer.
        transfer_id: EntityId,
        /// The sending account.
        from: EntityId,
        /// How much.
        amount: Amount,
        /// The sender's currency.
        currency: Currency,
    },
    /// Close it (only when empty, and without standing orders).
    Close,
    /// Transfer `amount` to `to` every `every_seconds`, from now on (replacing any standing
    /// order to `to`).
    SetStandingOrder {
        /// The receiving account.
        to: EntityId,
        /// How much each run transfers.
        amount: Amount,
        /// Seconds between runs.
        every_seconds: u32,
    },
    /// Stop the standing order to `to`.
    CancelStandingOrder {
        /// The receiving account.
        to: EntityId,
    },
    /// Record that run `run` of the standing order to `to` was refused, and why (the
    /// standing-orders workflow's, so that the account's history shows it).
    RecordFailedRun {
        /// The receiving account.
        to: EntityId,
        /// How much the run was to transfer.
        amount: Amount,
        /// Which run.
        run: u64,
        /// Why it was refused.
        reason: String,
    },
}

/// What happened to an account. Money events carry their currency so that consumers need no
/// state to interpret them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum AccountEvent {
    /// Schema 2: the owner's name is personal data (schema 1 held it as plain text).
    #[event(schema = 2)]
    AccountOpened {
        owner: Personal<Name>,
        currency: Currency,
        /// The owning principal's subject (absent in accounts opened before owners).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner_id: Option<String>,
    },
    MoneyDeposited {
        amount: Amount,
        currency: Currency,
    },
    MoneyWithdrawn {
        amount: Amount,
        currency: Currency,
    },
    TransferSent {
        transfer_id: EntityId,
        to: EntityId,
        amount: Amount,
        currency: Currency,
    },
    TransferReceived {
        transfer_id: EntityId,
        from: EntityId,
        amount: Amount,
        currency: Currency,
    },
    AccountClosed {},
    /// Runs are the standing-orders workflow's: each a transfer, `every_seconds` apart.
    StandingOrderSet {
        to: EntityId,
        amount: Amount,
        currency: Currency,
        every_seconds: u32,
    },
    StandingOrderCancelled {
        to: EntityId,
    },
    /// A run the accounts refused (funds short, the payee closed): nothing moved.
    StandingOrderRunFailed {
        to: EntityId,
        amount: Amount,
        currency: Currency,
        run: u64,
        reason: String,
    },
}

/// Why an account refused a command: business rules only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// No account under this id.
    #[error("no such account")]
    NotFound,
    /// Opened already.
    #[error("the account is already open")]
    AlreadyOpen,
    /// Closed; nothing happens to it.
    #[error("the account is closed")]
    Closed,
    /// A withdrawal or transfer beyond the balance.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// The balance.
        balance: i64,
        /// The amount asked for.
        requested: i64,
    },
    /// Money in another currency than the account's.
    #[error("currency mismatch: the account holds {account}, the operation is in {requested}")]
    CurrencyMismatch {
        /// The account's currency.
        account: Currency,
        /// The operation's.
        requested: Currency,
    },
    /// Closing an account that holds money.
    #[error("the balance is {balance}; only an empty account can be closed")]
    BalanceNotZero {
        /// The balance.
        balance: i64,
    },
    /// A transfer from an account to itself.
    #[error("a transfer needs two different accounts")]
    SameAccount,
    /// A balance beyond `i64`.
    #[error("the balance would exceed the largest representable amount")]
    BalanceOverflow,
    /// No standing order to that account.
    #[error("no standing order to {to}")]
    NoStandingOrder {
        /// The account named.
        to: EntityId,
    },
    /// Closing an account that still has standing orders.
    #[error("the account has {count} standing orders; cancel them before closing it")]
    StandingOrdersLeft {
        /// How many.
        count: usize,
    },
}

impl Account {
    fn open_currency(&self) -> Result<Currency, AccountError> {
        match (self.status, self.currency) {
            (AccountStatus::Unopened, _) | (_, None) => Err(AccountError::NotFound),
            (AccountStatus::Closed, _) => Err(AccountError::Closed),
            (AccountStatus::Open, Some(currency)) => Ok(currency),
        }
    }

    fn credit(&self, amount: Amount) -> Result<(), AccountError> {
        self.balance
            .checked_add(amount.minor_units())
            .map(drop)
            .ok_or(AccountError::BalanceOverflow)
    }

    fn debit(&self, amount: Amount) -> Result<(), AccountError> {
        if amount.minor_units() > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount.minor_units(),
            });
        }
        Ok(())
    }
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "Account";
    const STATE_SCHEMA: u32 = 3;

    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        let event = match command {
            C::Open {
                owner,
                currency,
                owner_id,
            } => {
                if self.status != AccountStatus::Unopened {
                    return Err(AccountError::AlreadyOpen);
                }
                E::AccountOpened {
                    owner: owner.clone(),
                    currency: *currency,
                    owner_id: owner_id.clone(),
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
                if !self.standing_orders.is_empty() {
                    return Err(AccountError::StandingOrdersLeft {
                        count: self.standing_orders.len(),
                    });
                }
                E::AccountClosed {}
            }
            C::SetStandingOrder {
                to,
                amount,
                every_seconds,
            } => E::StandingOrderSet {
                to: to.clone(),
                amount: *amount,
                currency: self.open_currency()?,
                every_seconds: *every_seconds,
            },
            C::CancelStandingOrder { to } => {
                self.open_currency()?;
                if !self.standing_orders.contains_key(to) {
                    return Err(AccountError::NoStandingOrder { to: to.clone() });
                }
                E::StandingOrderCancelled { to: to.clone() }
            }
            C::RecordFailedRun {
                to,
                amount,
                run,
                reason,
            } => {
                let currency = self.open_currency()?;
                if !self.standing_orders.contains_key(to) {
                    return Err(AccountError::NoStandingOrder { to: to.clone() });
                }
                E::StandingOrderRunFailed {
                    to: to.clone(),
                    amount: *amount,
                    currency,
                    run: *run,
                    reason: reason.chars().take(MAX_REASON_CHARS).collect(),
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        use AccountEvent as E;
        match event {
            E::AccountOpened {
                owner,
                currency,
                owner_id,
            } => {
                self.status = AccountStatus::Open;
                self.owner = Some(owner.clone());
                self.owner_id = owner_id.clone();
                self.currency = Some(*currency);
            }
            E::MoneyDeposited { amount, .. } | E::TransferReceived { amount, .. } => {
                self.balance = self.balance.saturating_add(amount.minor_units());
            }
            E::MoneyWithdrawn { amount, .. } | E::TransferSent { amount, .. } => {
                self.balance = self.balance.saturating_sub(amount.minor_units());
            }
            E::AccountClosed {} => self.status = AccountStatus::Closed,
            E::StandingOrderSet {
                to,
                amount,
                every_seconds,
                ..
            } => {
                let order = StandingOrder {
                    amount: *amount,
                    every_seconds: *every_seconds,
                };
                self.standing_orders.insert(to.clone(), order);
            }
            E::StandingOrderCancelled { to } => {
                self.standing_orders.remove(to);
            }
            E::StandingOrderRunFailed { .. } => {}
        }
        self
    }
}

/// A transfer between two accounts, decided over both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The transfer's id (both events carry it).
    pub transfer_id: EntityId,
    /// The sending account.
    pub from: EntityId,
    /// The receiving account.
    pub to: EntityId,
    /// How much.
    pub amount: Amount,
}

impl Transfer {
    /// Decides both halves: events for the source and for the destination. Either both
    /// succeed or neither does; the caller appends them in one transaction.
    pub fn decide(
        &self,
        source: &Account,
        destination: &Account,
    ) -> Result<(Vec<AccountEvent>, Vec<AccountEvent>), AccountError> {
        // The one place the rule lives: the service loads both streams and asks this.
        if self.from == self.to {
            return Err(AccountError::SameAccount);
        }
        let sent = source.decide(&AccountCommand::SendTransfer {
            transfer_id: self.transfer_id.clone(),
            to: self.to.clone(),
            amount: self.amount,
        })?;
        let currency = source.currency.ok_or(AccountError::NotFound)?;
        let received = destination.decide(&AccountCommand::ReceiveTransfer {
            transfer_id: self.transfer_id.clone(),
            from: self.from.clone(),
            amount: self.amount,
            currency,
        })?;
        Ok((sent, received))
    }
}
