//! A toy aggregate for the library's own tests and examples: a counter with a ceiling.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::problem::{IntoProblem, Problem, ProblemType};

/// A counter's refusal over HTTP.
pub const TOO_MUCH: ProblemType = ProblemType::new(422, "too-much", "Over the ceiling");

/// The largest total a counter holds.
pub const CEILING: u64 = 100;

/// A counter: added to, never above [`CEILING`], and cleared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The total.
    pub total: u64,
}

/// What happens to a counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, crate::DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum CounterEvent {
    /// Some was added.
    Added {
        /// How much.
        n: u64,
    },
    /// Back to zero.
    Cleared,
}

/// What can be asked of a counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterCommand {
    /// Add this much.
    Add(u64),
    /// Back to zero.
    Clear,
}

/// Why a counter refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// The total would pass the ceiling.
    #[error("the total {total} plus {n} would pass {CEILING}")]
    TooMuch {
        /// The total now.
        total: u64,
        /// What was asked.
        n: u64,
    },
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "Counter";
    const STATE_SCHEMA: u32 = 1;

    type Event = CounterEvent;
    type Command = CounterCommand;
    type Error = CounterError;

    fn decide(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, CounterError> {
        match command {
            CounterCommand::Add(n) if self.total + n > CEILING => Err(CounterError::TooMuch {
                total: self.total,
                n: *n,
            }),
            CounterCommand::Add(n) => Ok(vec![CounterEvent::Added { n: *n }]),
            CounterCommand::Clear => Ok(vec![CounterEvent::Cleared]),
        }
    }

    fn evolve(mut self, event: &CounterEvent) -> Self {
        match event {
            CounterEvent::Added { n } => self.total += n,
            CounterEvent::Cleared => self.total = 0,
        }
        self
    }
}

impl IntoProblem for CounterError {
    fn to_problem(&self) -> Problem {
        Problem::new(TOO_MUCH, self.to_string())
    }
}
