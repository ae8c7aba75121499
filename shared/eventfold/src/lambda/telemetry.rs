//! Logging: JSON lines on Lambda (CloudWatch parses them), readable text locally.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops.
///
/// JSON unless `LOG_FORMAT=text`; level from `RUST_LOG` (default `info`). Spans' fields
/// (the correlation id among them) are included in every line.
pub fn init() {
    init_with(std::env::var("LOG_FORMAT").is_ok_and(|f| f == "text"));
}

/// Installs the subscriber with text (`true`) or JSON lines; later calls are no-ops.
pub fn init_with(text: bool) {
    init_with_filter(text, "info");
}

/// As [`init_with`], with the level used when `RUST_LOG` is unset.
pub fn init_with_filter(text: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let result = if text {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .without_time()
            .try_init()
    };
    // Already installed (tests, local runner): keep the first.
    drop(result);
}
