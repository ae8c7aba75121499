//! The local environment: resources from `infra/template.yaml`, and the runner that serves
//! the API and drives the event source mappings with the Lambda handlers in process.

pub mod coldstart;
pub mod demo;
pub mod esm;
pub mod filter;
pub mod functions;
pub mod gateway;
pub mod head;
pub mod provision;
pub mod runner;
pub mod template;
