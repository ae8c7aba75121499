//! Given/when/then for aggregates: given past events, when a command, then events or an error.
//!
//! Every event, past and decided, goes through the encoding the store uses (written, stored,
//! read back), so a test fails where production would: an event that could be written but not
//! read back fails here, not on its first load in production.
//!
//! ```
//! # use eventfold::testing::given;
//! # fn check<A: eventfold::aggregate::Aggregate>(history: Vec<A::Event>, command: A::Command, expected: Vec<A::Event>)
//! # where A::Event: PartialEq, A::Error: PartialEq {
//! given::<A>(history).when(command).then(expected);
//! # }
//! ```

use std::fmt::Debug;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::encoding::read_back;

/// The event as the store would give it back; a test that feeds it an event the store could
/// not read back fails here.
#[track_caller]
fn stored<E: DomainEvent>(event: &E) -> E {
    match read_back(event) {
        Ok(back) => back,
        Err(error) => panic!("{event:?} would be written but not read back: {error}"),
    }
}

/// Starts a scenario from a history of events.
#[track_caller]
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
    let mut state = A::default();
    for event in history {
        state = state.evolve(&stored(&event));
    }
    Scenario { state }
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

    /// Decides a command against the state; the events decided are read back as stored.
    #[track_caller]
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = self
            .state
            .decide(&command)
            .map(|events| events.iter().map(stored).collect());
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
