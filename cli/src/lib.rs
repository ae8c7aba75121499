//! The `eventfold` command: the local environment and operator commands, for any service's
//! template, each its own module.
//!
//! - [`local`]: the template as the source of local resources, provisioning, the local runner
//!   (API Gateway and event source mappings, calling each function's own binary through a
//!   local Lambda Runtime API), and the demo;
//! - [`ops`]: rebuild, redrive and snapshot backfill against an emulator or AWS;
//! - [`identity`]: the local gateway's JWT authorizers and tokens (`eventfold token`);
//! - [`drift`]: a service's template checked against its functions' code;
//! - [`scaffold`]: `eventfold new`, a complete service for one aggregate.

mod app;
pub mod drift;
pub mod identity;
pub mod local;
pub mod ops;
pub mod scaffold;
pub mod sign;

pub use app::main;
