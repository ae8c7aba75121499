//! Integration tests: one binary, against the local emulator (and the memory store where the
//! same suite applies). Each test creates its own uniquely named tables and queues.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod authorization;
mod cli;
mod commands;
mod consumers;
mod deployed;
mod faults;
mod feed;
mod http;
mod identity;
mod lambda_binaries;
mod metrics;
mod personal;
mod reactors;
mod snapshots;
mod store;
