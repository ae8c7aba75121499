//! The local environment and operator tools: resources from `infra/template.yaml`, the local
//! runner (HTTP API and event source mappings calling the Lambda handlers in process), and
//! operator commands (rebuild, redrive, snapshot backfill, benchmarks).

pub mod provision;
pub mod template;
