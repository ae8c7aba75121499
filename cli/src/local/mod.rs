//! The local environment for any template: its resources created on the emulator, each of its
//! functions run as its own binary through a local Lambda Runtime API, and the runner that
//! serves its HTTP API and drives its event source mappings.

pub mod coldstart;
pub mod demo;
pub mod esm;
pub mod filter;
pub mod functions;
pub mod gateway;
pub mod head;
pub mod lambda;
pub mod provision;
pub mod runner;
pub mod service;
pub mod template;

use std::path::{Path, PathBuf};

/// Where the function binaries of the workspace holding `template` are built for `profile`
/// (`debug`, `release`): `$CARGO_TARGET_DIR/<profile>` if set, else the `target` folder beside
/// the template's folder (a workspace keeps its template in `infra/`).
pub fn binaries_beside(template: &Path, profile: &str) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join(profile),
        None => template
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."))
            .join("target")
            .join(profile),
    }
}
