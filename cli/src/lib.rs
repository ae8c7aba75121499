//! The local environment and operator tools: resources from `infra/template.yaml`, the local
//! runner (HTTP API and event source mappings calling the Lambda handlers in process), and
//! operator commands (rebuild, redrive, snapshot backfill, benchmarks).

pub mod bench;
pub mod coldstart;
pub mod demo;
pub mod esm;
pub mod filter;
pub mod functions;
pub mod gateway;
pub mod ops;
pub mod provision;
pub mod runner;
pub mod template;
