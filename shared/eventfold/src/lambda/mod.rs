//! The Lambda side (feature `lambda`): the generic functions an event-sourced service runs
//! ([`command_api`], [`query_api`], [`consumers`], [`feed_consumer`]), and their parts: API Gateway requests and
//! answers ([`http`]), DynamoDB Streams records ([`stream`]), the publisher, the snapshot
//! queue's batches, metrics and logs. A function's binary is [`serve`] over one of them.
//!
//! The crates in these signatures are re-exported ([`lambda_runtime`], [`aws_lambda_events`]),
//! so a function needs no version of its own.

pub mod command_api;
pub mod consumers;
pub mod contract;
pub mod feed_consumer;
pub mod http;
pub mod metrics;
pub mod projector;
pub mod publish;
pub mod query_api;
pub mod snapshots;
pub mod stream;
pub mod telemetry;

use std::future::Future;

pub use aws_lambda_events;
pub use lambda_runtime;
pub use lambda_runtime::Error;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::streams::{DynamoDbEventResponse, SqsEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aws::Config;
use crate::aws::aws_config;

/// A function a Lambda binary serves: an event in, a response out.
pub trait Function: Send + Sync + 'static {
    /// What Lambda sends it.
    type Event: DeserializeOwned + Send + 'static;
    /// What it answers.
    type Response: Serialize + Send + 'static;

    /// Handles one invocation.
    fn call(
        &self,
        event: LambdaEvent<Self::Event>,
    ) -> impl Future<Output = Result<Self::Response, Error>> + Send;
}

/// A function binary's whole `main`: logs set up, the environment read and checked once
/// (the contract names the variables the function cannot run without), the SDK configured,
/// the function built once, then every invocation served by it.
///
/// ```no_run
/// use eventfold::lambda::contract::{Contract, Runtime};
/// use eventfold::lambda::query_api::QueryApi;
/// use eventfold::lambda::{Error, serve};
///
/// const CONTRACT: Contract = Contract::new(Runtime::QueryApi);
///
/// fn main() -> Result<(), Error> {
///     serve(&CONTRACT, |_config, _sdk| QueryApi::new())
/// }
/// ```
pub fn serve<F: Function>(
    contract: &contract::Contract,
    build: impl FnOnce(Config, aws_config::SdkConfig) -> F,
) -> Result<(), Error> {
    telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let required = contract.environment();
    runtime.block_on(async move {
        let (config, sdk) = Config::load_for_lambda(&required).await?;
        let function = build(config, sdk);
        lambda_runtime::run(service_fn(|event| function.call(event))).await
    })
}

/// Each runtime is a function: its `handle`, under the event and response types Lambda uses.
macro_rules! function {
    ($(impl$(<$generic:ident>)? for $runtime:ty => ($event:ty, $response:ty);)*) => {
        $(
            impl$(<$generic: Clone + Send + Sync + 'static>)? Function for $runtime {
                type Event = $event;
                type Response = $response;

                fn call(
                    &self,
                    event: LambdaEvent<Self::Event>,
                ) -> impl Future<Output = Result<Self::Response, Error>> + Send {
                    self.handle(event)
                }
            }
        )*
    };
}

function! {
    impl<S> for command_api::CommandApi<S> => (ApiGatewayV2httpRequest, ApiGatewayV2httpResponse);
    impl for query_api::QueryApi => (ApiGatewayV2httpRequest, ApiGatewayV2httpResponse);
    impl for consumers::ProjectorFunction => (DynamoDbEvent, DynamoDbEventResponse);
    impl for consumers::PublisherFunction => (DynamoDbEvent, DynamoDbEventResponse);
    impl for consumers::SnapshotFunction => (SqsEvent, SqsEventResponse);
    impl for feed_consumer::FeedConsumerFunction => (serde_json::Value, serde_json::Value);
}
