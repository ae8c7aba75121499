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
/// attempts, so a Lambda answers well within API Gateway's 30 s even when DynamoDB throttles.
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
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build(),
        );
    customize(loader).load().await
}
