//! AWS SDK configuration, built once per process and shared by every client.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Loads the SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for an emulator), with rustls on ring and bounded retries and timeouts.
///
/// Retries: the standard mode (exponential backoff with jitter, throttling-aware), three
/// attempts. Timeouts fit a command's budget (a 15 s function less its margin): an attempt
/// that DynamoDB (single-digit milliseconds) has not answered in 3 s is lost, and one call
/// with its retries gives up after 9 s, leaving the deadline room to answer.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_with(|loader| loader).await
}

/// As [`load_sdk_config`], letting the caller adjust the loader (tests pin an endpoint and
/// static credentials here rather than through process-wide environment variables).
pub async fn load_sdk_config_with(
    customize: impl FnOnce(aws_config::ConfigLoader) -> aws_config::ConfigLoader,
) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(9))
                .build(),
        );
    customize(loader).load().await
}

/// Counts what a client asks of DynamoDB, retries included: requests per operation, items
/// returned by reads (Query, GetItem, BatchGetItem) and response bytes. An SDK interceptor, for
/// measuring round trips and read cost (tests, benchmarks, or metrics in production); clones
/// share their counts.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
}

#[derive(Clone, Debug, Default)]
struct Counts {
    requests: std::collections::BTreeMap<String, u64>,
    items_read: u64,
    bytes_read: u64,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests per operation since the last reset.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts().requests.clone()
    }

    /// All requests since the last reset.
    pub fn total(&self) -> u64 {
        self.counts().requests.values().sum()
    }

    /// Items returned by reads since the last reset.
    pub fn items_read(&self) -> u64 {
        self.counts().items_read
    }

    /// Bytes of response bodies since the last reset.
    pub fn bytes_read(&self) -> u64 {
        self.counts().bytes_read
    }

    /// Back to zero.
    pub fn reset(&self) {
        *self.counts() = Counts::default();
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        *self.counts().requests.entry(operation).or_default() += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, query::QueryOutput,
        };
        let response = context.response();
        let bytes = response.body().bytes().map_or_else(
            || {
                response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            },
            |b| b.len() as u64,
        );
        let items = context.output_or_error().map_or(0, |output| {
            if let Some(query) = output.downcast_ref::<QueryOutput>() {
                u64::try_from(query.count()).unwrap_or(0)
            } else if let Some(get) = output.downcast_ref::<GetItemOutput>() {
                u64::from(get.item().is_some())
            } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
                batch
                    .responses()
                    .map_or(0, |r| r.values().map(|v| v.len() as u64).sum())
            } else {
                0
            }
        });
        let mut counts = self.counts();
        counts.items_read += items;
        counts.bytes_read += bytes;
        Ok(())
    }
}
