//! An order's refusals as problems: each kind of refusal has its type and status.

use eventfold::problem::{IntoProblem, Problem, ProblemType, kinds};

use crate::order::OrderError;

/// An order started already (409).
pub const ORDER_EXISTS: ProblemType = ProblemType::new(409, "order-exists", "Order exists");
/// The order's status does not allow the command (409).
pub const WRONG_STATUS: ProblemType =
    ProblemType::new(409, "order-status", "Not allowed in this status");
/// A command the order's contents refuse (422).
pub const REFUSED: ProblemType = ProblemType::new(422, "order-refused", "Order refused");

impl IntoProblem for OrderError {
    fn to_problem(&self) -> Problem {
        use OrderError as E;
        let detail = self.to_string();
        match self {
            E::NotFound => Problem::new(kinds::NOT_FOUND, detail),
            E::AlreadyStarted => Problem::new(ORDER_EXISTS, detail),
            E::NotADraft(_) | E::WrongStatus(_) => Problem::new(WRONG_STATUS, detail),
            E::NoSuchItem(_) | E::Empty => Problem::new(REFUSED, detail),
            E::WrongAmount { total, offered } => Problem::new(REFUSED, detail)
                .with("total", *total)
                .with("offered", *offered),
        }
    }
}
