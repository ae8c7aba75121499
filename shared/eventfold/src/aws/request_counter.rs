//! Counting what a client asks of DynamoDB (feature `testing`): the measuring tool of tests
//! and benchmarks.

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
