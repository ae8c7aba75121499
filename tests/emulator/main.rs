//! The emulator, tested apart from the product: where its deployment differs from AWS
//! ([`fidelity`]: each test fails the day the emulator is fixed, saying what to update), and
//! what the local environment works around ([`quirks`]: each test fails on an emulator that
//! behaves wrongly). `make test` runs this target on its own, after the product's tests, and
//! reports it apart: a failure here is news about the emulator, not about Eventfold.

#![allow(clippy::unwrap_used)]

mod fidelity;
mod quirks;
