//! The reference domain: bank accounts and users. Pure and synchronous: no AWS, no tokio,
//! no I/O. Each aggregate is `decide(&State, Command) -> Result<Vec<Event>>` and
//! `evolve(State, &Event) -> State`.

pub mod account;
pub mod money;
pub mod user;

#[cfg(test)]
pub(crate) mod given;
