//! The bank's problem types, added to the library's open set, and the one mapping from its
//! domain errors to them.

use eventfold::problem::{IntoProblem, Problem, ProblemType};

use crate::domain::account::AccountError;
use crate::domain::user::UserError;
use crate::service::BankError;

/// A withdrawal or transfer beyond the balance.
pub const INSUFFICIENT_FUNDS: ProblemType =
    ProblemType::new(422, "insufficient-funds", "Insufficient funds");
/// Money in a currency the account does not hold.
pub const CURRENCY_MISMATCH: ProblemType =
    ProblemType::new(422, "currency-mismatch", "Currency mismatch");
/// Anything but reading, on a closed account.
pub const ACCOUNT_CLOSED: ProblemType = ProblemType::new(422, "account-closed", "Account closed");
/// Closing an account that holds money.
pub const BALANCE_NOT_ZERO: ProblemType =
    ProblemType::new(422, "balance-not-zero", "Balance not zero");
/// A transfer from an account to itself.
pub const SAME_ACCOUNT: ProblemType =
    ProblemType::new(422, "same-account", "Transfer to the same account");
/// A balance beyond what can be represented.
pub const BALANCE_OVERFLOW: ProblemType =
    ProblemType::new(422, "balance-overflow", "Balance overflow");
/// Closing an account with standing orders.
pub const STANDING_ORDERS_LEFT: ProblemType =
    ProblemType::new(422, "standing-orders-left", "Standing orders left");
/// Opening or registering twice.
pub const ALREADY_EXISTS: ProblemType = ProblemType::new(409, "already-exists", "Already exists");
/// An address another user holds.
pub const EMAIL_TAKEN: ProblemType =
    ProblemType::new(422, "email-taken", "Email already registered");

/// Opening an account before registering as a user.
pub const NOT_REGISTERED: ProblemType =
    ProblemType::new(422, "not-registered", "Not a registered user");

/// Every bank problem type, for documentation and the OpenAPI drift test.
pub const ALL: [ProblemType; 10] = [
    INSUFFICIENT_FUNDS,
    CURRENCY_MISMATCH,
    ACCOUNT_CLOSED,
    BALANCE_NOT_ZERO,
    SAME_ACCOUNT,
    BALANCE_OVERFLOW,
    ALREADY_EXISTS,
    EMAIL_TAKEN,
    NOT_REGISTERED,
    STANDING_ORDERS_LEFT,
];

impl IntoProblem for AccountError {
    fn to_problem(&self) -> Problem {
        use AccountError as E;
        let detail = self.to_string();
        match self {
            E::NotFound => Problem::new(eventfold::problem::kinds::NOT_FOUND, detail),
            E::AlreadyOpen => Problem::new(ALREADY_EXISTS, detail),
            E::Closed => Problem::new(ACCOUNT_CLOSED, detail),
            E::InsufficientFunds { balance, requested } => Problem::new(INSUFFICIENT_FUNDS, detail)
                .with("balance", *balance)
                .with("requested", *requested),
            E::CurrencyMismatch { account, requested } => Problem::new(CURRENCY_MISMATCH, detail)
                .with("account_currency", account.to_string())
                .with("requested_currency", requested.to_string()),
            E::BalanceNotZero { balance } => {
                Problem::new(BALANCE_NOT_ZERO, detail).with("balance", *balance)
            }
            E::SameAccount => Problem::new(SAME_ACCOUNT, detail),
            E::BalanceOverflow => Problem::new(BALANCE_OVERFLOW, detail),
            E::NoStandingOrder { .. } => Problem::new(eventfold::problem::kinds::NOT_FOUND, detail),
            E::StandingOrdersLeft { count } => {
                Problem::new(STANDING_ORDERS_LEFT, detail).with("standing_orders", *count)
            }
        }
    }
}

impl IntoProblem for UserError {
    fn to_problem(&self) -> Problem {
        match self {
            UserError::AlreadyRegistered => Problem::new(ALREADY_EXISTS, self.to_string()),
            UserError::EmailTaken => Problem::new(EMAIL_TAKEN, self.to_string()),
            UserError::NotRegistered => Problem::new(NOT_REGISTERED, self.to_string()),
            UserError::NotFound | UserError::Forgotten => {
                Problem::new(eventfold::problem::kinds::NOT_FOUND, self.to_string())
            }
        }
    }
}

impl IntoProblem for BankError {
    fn to_problem(&self) -> Problem {
        match self {
            BankError::Account(error) => error.to_problem(),
            BankError::User(error) => error.to_problem(),
        }
    }
}
