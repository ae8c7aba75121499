//! The AWS backends (feature `aws`): the event store, snapshots and read models on DynamoDB,
//! typed configuration, and the SDK configuration every client shares.
//!
//! The third-party crates these signatures use are re-exported ([`aws_sdk_dynamodb`],
//! [`aws_sdk_sqs`], [`aws_config`]), so a function depends on `eventfold` alone and cannot
//! pick a second, mismatched SDK version.

mod config;
pub mod error;
mod feed;
pub mod item;
mod kms;
mod read_model;
#[cfg(feature = "testing")]
mod request_counter;
mod snapshots;
mod store;
mod store_write;
mod subject_keys;
mod timers;

use std::time::Duration;

pub use aws_config;
pub use aws_sdk_dynamodb;
pub use aws_sdk_kms;
pub use aws_sdk_sqs;
pub use config::{Config, ConfigError};
pub use feed::DynamoFeed;
pub use kms::KmsMac;
pub use read_model::DynamoReadModel;
#[cfg(feature = "testing")]
pub use request_counter::RequestCounter;
pub use snapshots::DynamoSnapshots;
pub use store::DynamoStore;
pub use subject_keys::KmsSubjectKeys;
pub use timers::DynamoTimers;

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
