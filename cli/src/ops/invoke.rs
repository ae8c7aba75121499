//! Invoking the service's own functions with an event of the operator's making: the binary
//! through the local Lambda Runtime API on a local environment, `Invoke` on a deployed stack.
//! This is how `rebuild`, `backfill` and `dlq redrive` do a service's work without its code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::local::coldstart::lambda_environment;
use crate::local::lambda::ProcessFunction;
use crate::local::provision::Resources;
use crate::local::template::Template;
use crate::sign::SignedClient;

/// Instances of one function an operator command runs at once, locally.
const LOCAL_INSTANCES: usize = 4;

/// Where the service's functions run.
#[derive(Debug)]
pub enum Invoker {
    /// Each function's binary from `binaries`, started on first use with its template
    /// environment resolved to `resources`.
    Local {
        template: Arc<Template>,
        resources: Box<Resources>,
        endpoint: String,
        binaries: PathBuf,
        started: Mutex<BTreeMap<String, Arc<ProcessFunction>>>,
    },
    /// The stack's functions, by physical name for each logical id, called through Lambda's
    /// `Invoke` API (signed here: one POST, so the CLI builds no Lambda SDK client).
    Deployed {
        client: SignedClient,
        names: BTreeMap<String, String>,
    },
}

impl Invoker {
    /// Functions run locally from `binaries`.
    pub fn local(
        template: Arc<Template>,
        resources: Resources,
        endpoint: String,
        binaries: PathBuf,
    ) -> Self {
        Self::Local {
            template,
            resources: Box::new(resources),
            endpoint,
            binaries,
            started: Mutex::default(),
        }
    }

    fn process(&self, function: &str) -> Result<Arc<ProcessFunction>, String> {
        let Self::Local {
            template,
            resources,
            endpoint,
            binaries,
            started,
        } = self
        else {
            return Err("not a local environment".into());
        };
        let mut started = started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(process) = started.get(function) {
            return Ok(process.clone());
        }
        let spec = template
            .functions
            .iter()
            .find(|f| f.logical_id == function)
            .ok_or_else(|| format!("the template has no function {function}"))?;
        let binary = binaries.join(&spec.binary);
        if !binary.is_file() {
            return Err(format!(
                "{function} runs {}, which is not built (cargo build the workspace, or pass \
                 --functions)",
                binary.display()
            ));
        }
        let environment =
            lambda_environment(resources, spec, endpoint).map_err(|e| e.to_string())?;
        let process = Arc::new(ProcessFunction::new(
            function,
            binary,
            environment,
            Duration::from_secs(u64::from(spec.timeout_seconds)),
            LOCAL_INSTANCES,
        ));
        started.insert(function.to_owned(), process.clone());
        Ok(process)
    }

    /// Invokes `function` (a logical id) with `event`, waiting for its response.
    pub async fn invoke<In: Serialize + Sync, Out: DeserializeOwned>(
        &self,
        function: &str,
        event: &In,
    ) -> Result<Out, String> {
        let payload =
            serde_json::to_vec(event).map_err(|e| format!("the event does not serialize: {e}"))?;
        let response = match self {
            Self::Local { .. } => self
                .process(function)?
                .invoke_bytes(Bytes::from(payload))
                .await
                .map_err(|e| format!("{function}: {e}"))?,
            Self::Deployed { client, names } => {
                let name = names
                    .get(function)
                    .ok_or_else(|| format!("the stack has no function {function}"))?;
                invoke_deployed(client, name, payload).await?
            }
        };
        serde_json::from_slice(&response)
            .map_err(|e| format!("{function}'s response does not read: {e}"))
    }
}

/// Lambda's `Invoke` (`RequestResponse`), signed with the SDK configuration's credentials; a
/// function error is an error with the function's own report.
async fn invoke_deployed(
    client: &SignedClient,
    name: &str,
    payload: Vec<u8>,
) -> Result<Bytes, String> {
    let url = format!(
        "{}/2015-03-31/functions/{name}/invocations",
        client.endpoint("lambda")
    );
    let headers = [("content-type", "application/json")];
    let response = client
        .send("lambda", "POST", &url, &headers, payload)
        .await
        .map_err(|e| format!("Invoke {name}: {e}"))?;
    let status = response.status();
    let error = response
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("Invoke {name}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "Invoke {name} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    if let Some(kind) = error {
        return Err(format!(
            "{name} failed ({kind}): {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body)
}
