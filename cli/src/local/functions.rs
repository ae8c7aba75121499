//! The Lambda handlers, called in process exactly as the Lambda runtime calls them: the event
//! is serialized to JSON and read back (as Lambda delivers it), then passed to the function's
//! own `handle` entry point.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::{DynamoDbEventResponse, SqsEventResponse};
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::local::provision::{Clients, ProvisionError, Resources};
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

/// The JSON round trip every Lambda event and response takes.
pub fn through_json<In: Serialize, Out: DeserializeOwned>(
    value: &In,
) -> Result<Out, FunctionError> {
    let bytes = serde_json::to_vec(value).map_err(|e| format!("event does not serialize: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("event does not deserialize: {e}"))
}

/// The event as the runtime hands it over: with a request id and the deadline the function's
/// `Timeout` gives, so handlers budget their time as they do on Lambda.
fn event<T>(payload: T, timeout: Duration) -> LambdaEvent<T> {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    context.deadline = now_ms + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    LambdaEvent::new(payload, context)
}

macro_rules! handler {
    ($wrapper:ident, $trait:ident, $app:ty, $handle:path, $event:ty, $response:ty) => {
        /// The function's handler and its `Timeout`.
        #[derive(Debug)]
        pub struct $wrapper(pub $app, pub Duration);

        #[async_trait]
        impl $trait for $wrapper {
            async fn invoke(&self, payload: $event) -> Result<$response, FunctionError> {
                let payload: $event = through_json(&payload)?;
                let response = $handle(&self.0, event(payload, self.1))
                    .await
                    .map_err(|e| e.to_string())?;
                through_json(&response)
            }
        }
    };
}

handler!(
    CommandApi,
    HttpHandler,
    command_api::App,
    command_api::handle,
    ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse
);
handler!(
    QueryApi,
    HttpHandler,
    query_api::App,
    query_api::handle,
    ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse
);
handler!(
    ProjectAccounts,
    StreamHandler,
    project_accounts::App,
    project_accounts::handle,
    DynamoDbEvent,
    DynamoDbEventResponse
);
handler!(
    PublishEvents,
    StreamHandler,
    publish_events::App,
    publish_events::handle,
    DynamoDbEvent,
    DynamoDbEventResponse
);
handler!(
    SnapshotStreams,
    QueueHandler,
    snapshot_streams::App,
    snapshot_streams::handle,
    SqsEvent,
    SqsEventResponse
);

/// Metrics of a function run in this process: to the log, not to standard output, which is
/// the runner's own (and the demo's).
pub(crate) fn logged(function: &str) -> eventfold::metrics::Metrics {
    eventfold::metrics::Metrics::to(function, Arc::new(eventfold::metrics::Log))
}

/// Every function of the template, by logical id, ready to invoke.
#[derive(Clone, Debug, Default)]
pub struct Functions {
    pub http: BTreeMap<String, Arc<dyn HttpHandler>>,
    pub streams: BTreeMap<String, Arc<dyn StreamHandler>>,
    pub queues: BTreeMap<String, Arc<dyn QueueHandler>>,
}

impl Functions {
    /// Builds each function from its template environment, resolved to local resources, as
    /// its `main` would from the real environment.
    pub fn from_template(
        template: &Template,
        resources: &Resources,
        clients: &Clients,
    ) -> Result<Self, ProvisionError> {
        let mut functions = Self::default();
        for spec in &template.functions {
            let config = resources.config(spec)?;
            let id = spec.logical_id.clone();
            let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
            let dynamodb = clients.dynamodb.clone();
            match spec.binary.as_str() {
                "command-api" => {
                    let app = command_api::App::from_config(&config, dynamodb)
                        .with_metrics(logged(command_api::FUNCTION));
                    functions
                        .http
                        .insert(id, Arc::new(CommandApi(app, timeout)));
                }
                "query-api" => {
                    let app = query_api::App::from_config(&config, dynamodb)
                        .with_metrics(logged(query_api::FUNCTION));
                    functions.http.insert(id, Arc::new(QueryApi(app, timeout)));
                }
                "project-accounts" => {
                    let app = project_accounts::App::from_config(&config, dynamodb)
                        .with_metrics(logged(project_accounts::FUNCTION));
                    functions
                        .streams
                        .insert(id, Arc::new(ProjectAccounts(app, timeout)));
                }
                "publish-events" => {
                    let app = publish_events::from_config(&config, clients.sqs.clone())
                        .with_metrics(logged(publish_events::FUNCTION));
                    functions
                        .streams
                        .insert(id, Arc::new(PublishEvents(app, timeout)));
                }
                "snapshot-streams" => {
                    let app = snapshot_streams::from_config(&config, dynamodb)
                        .with_metrics(logged(snapshot_streams::FUNCTION));
                    functions
                        .queues
                        .insert(id, Arc::new(SnapshotStreams(app, timeout)));
                }
                other => return Err(ProvisionError(format!("no handler for binary {other}"))),
            }
        }
        Ok(functions)
    }
}
