//! Given/when/then for aggregates: given past events, when a command, then events or an error.
//!
//! ```
//! # use eventfold::testing::given;
//! # fn check<A: eventfold::aggregate::Aggregate>(history: Vec<A::Event>, command: A::Command, expected: Vec<A::Event>)
//! # where A::Event: PartialEq, A::Error: PartialEq {
//! given::<A>(history).when(command).then(expected);
//! # }
//! ```

use std::fmt::Debug;

use crate::aggregate::Aggregate;

/// Starts a scenario from a history of events.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
    Scenario {
        state: history
            .into_iter()
            .fold(A::default(), |state, e| state.evolve(&e)),
    }
}

/// A state built from past events.
#[derive(Debug)]
pub struct Scenario<A> {
    state: A,
}

impl<A: Aggregate> Scenario<A> {
    /// The state the history folds to.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides a command against the state.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = self.state.decide(&command);
        Outcome {
            state: self.state,
            result,
        }
    }
}

/// The decision to check.
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    /// Asserts the command produced exactly these events; returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        assert_eq!(self.result, Ok(expected.clone()));
        expected.iter().fold(self.state, Aggregate::evolve)
    }

    /// Asserts the command was refused with this error.
    #[track_caller]
    pub fn then_error(self, expected: A::Error) {
        assert_eq!(self.result, Err(expected));
    }
}
