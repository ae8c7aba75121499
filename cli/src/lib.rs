//! The `eventfold` command: the local environment, operator commands and benchmarks, each its
//! own module.
//!
//! - [`local`]: the template as the source of local resources, provisioning, the local runner
//!   (API Gateway and event source mappings calling the Lambda handlers), the demo, and a
//!   Lambda Runtime API for running function binaries;
//! - [`ops`]: rebuild, redrive and snapshot backfill against an emulator or AWS;
//! - [`bench`]: measurements written to `docs/BENCHMARKS.md`.

pub mod bench;
pub mod local;
pub mod ops;
