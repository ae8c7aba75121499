//! The template's functions, as the gateway and the event source mappings call them: an HTTP,
//! stream or queue handler, each a function binary run through the local Lambda
//! ([`crate::local::lambda`]). A test may put a handler of its own in front of one (to inject
//! a failure, say); the CLI links no function and no domain.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::{DynamoDbEventResponse, SqsEventResponse};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::local::coldstart::lambda_environment;
use crate::local::lambda::ProcessFunction;
use crate::local::provision::{ProvisionError, Resources};
use crate::local::template::Template;

/// An invocation that failed: what Lambda reports as a function error.
pub type FunctionError = String;

/// A function behind the HTTP API.
#[async_trait]
pub trait HttpHandler: Send + Sync + Debug {
    async fn invoke(
        &self,
        request: ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, FunctionError>;
}

/// A function with a DynamoDB Streams event source.
#[async_trait]
pub trait StreamHandler: Send + Sync + Debug {
    async fn invoke(&self, event: DynamoDbEvent) -> Result<DynamoDbEventResponse, FunctionError>;
}

/// A function with an SQS event source.
#[async_trait]
pub trait QueueHandler: Send + Sync + Debug {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsEventResponse, FunctionError>;
}

/// A function a schedule invokes.
#[async_trait]
pub trait ScheduledHandler: Send + Sync + Debug {
    async fn invoke(&self, event: serde_json::Value) -> Result<serde_json::Value, FunctionError>;
}

/// The JSON round trip every Lambda event and response takes.
pub fn through_json<In: Serialize, Out: DeserializeOwned>(
    value: &In,
) -> Result<Out, FunctionError> {
    let bytes = serde_json::to_vec(value).map_err(|e| format!("event does not serialize: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("event does not deserialize: {e}"))
}

/// Instances a function may run at once locally, unless `EVENTFOLD_LOCAL_CONCURRENCY` says.
const LOCAL_CONCURRENCY: usize = 8;

async fn invoke_json<In: Serialize, Out: DeserializeOwned>(
    function: &ProcessFunction,
    event: &In,
) -> Result<Out, FunctionError> {
    let bytes = serde_json::to_vec(event).map_err(|e| format!("event does not serialize: {e}"))?;
    let response = function
        .invoke_bytes(Bytes::from(bytes))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&response).map_err(|e| format!("the response does not read: {e}"))
}

#[async_trait]
impl HttpHandler for ProcessFunction {
    async fn invoke(
        &self,
        request: ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, FunctionError> {
        invoke_json(self, &request).await
    }
}

#[async_trait]
impl StreamHandler for ProcessFunction {
    async fn invoke(&self, event: DynamoDbEvent) -> Result<DynamoDbEventResponse, FunctionError> {
        invoke_json(self, &event).await
    }
}

#[async_trait]
impl QueueHandler for ProcessFunction {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsEventResponse, FunctionError> {
        invoke_json(self, &event).await
    }
}

#[async_trait]
impl ScheduledHandler for ProcessFunction {
    async fn invoke(&self, event: serde_json::Value) -> Result<serde_json::Value, FunctionError> {
        invoke_json(self, &event).await
    }
}

/// Every function of the template, by logical id, ready to invoke.
#[derive(Clone, Debug, Default)]
pub struct Functions {
    pub http: BTreeMap<String, Arc<dyn HttpHandler>>,
    pub streams: BTreeMap<String, Arc<dyn StreamHandler>>,
    pub queues: BTreeMap<String, Arc<dyn QueueHandler>>,
    pub scheduled: BTreeMap<String, Arc<dyn ScheduledHandler>>,
    /// The processes behind them.
    pub processes: BTreeMap<String, Arc<ProcessFunction>>,
}

impl Functions {
    /// Each function of the template as its binary in `binaries` (named by its
    /// `BuildProperties.Binary`), with its template environment resolved to local resources
    /// and the emulator at `endpoint`, as Lambda would start it.
    pub fn from_template(
        template: &Template,
        resources: &Resources,
        endpoint: &str,
        binaries: &Path,
    ) -> Result<Self, ProvisionError> {
        let concurrency = std::env::var("EVENTFOLD_LOCAL_CONCURRENCY")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(LOCAL_CONCURRENCY);
        let mut functions = Self::default();
        for spec in &template.functions {
            let binary = binaries.join(&spec.binary);
            if !binary.is_file() {
                return Err(ProvisionError(format!(
                    "{} runs {}, which is not built (cargo build the workspace first)",
                    spec.logical_id,
                    binary.display()
                )));
            }
            let function = Arc::new(ProcessFunction::new(
                &spec.logical_id,
                binary,
                lambda_environment(resources, spec, endpoint)?,
                Duration::from_secs(u64::from(spec.timeout_seconds)),
                concurrency,
            ));
            let id = spec.logical_id.clone();
            functions.http.insert(id.clone(), function.clone());
            functions.streams.insert(id.clone(), function.clone());
            functions.queues.insert(id.clone(), function.clone());
            functions.scheduled.insert(id.clone(), function.clone());
            functions.processes.insert(id, function);
        }
        Ok(functions)
    }

    /// Starts one instance of every function, so the first invocations find them warm.
    pub async fn warm(&self) -> Result<(), ProvisionError> {
        let starts = self.processes.iter().map(|(id, function)| async move {
            function
                .warm()
                .await
                .map_err(|e| ProvisionError(format!("{id}: {e}")))
        });
        futures::future::try_join_all(starts).await.map(drop)
    }
}
