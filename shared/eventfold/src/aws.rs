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

/// Counts the requests a client sends, per operation, retries included: an SDK interceptor
/// for measuring round trips (tests, benchmarks, or metrics in production).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests per operation since the last reset.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// All requests since the last reset.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Back to zero.
    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
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
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}
