//! Counting what a client asks of DynamoDB (feature `testing`): the measuring tool of tests
//! and benchmarks.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Counts what a client asks of DynamoDB, retries included: requests per operation, round trips
/// of latency (requests in flight together count once), items returned by reads (Query,
/// GetItem, BatchGetItem), response bytes, and the capacity units DynamoDB would charge,
/// computed from item sizes by its rules. An SDK interceptor, for measuring round trips and
/// cost (tests, benchmarks, or metrics in production); clones share their counts.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
}

#[derive(Clone, Debug, Default)]
struct Counts {
    requests: std::collections::BTreeMap<String, u64>,
    in_flight: u64,
    round_trips: u64,
    items_read: u64,
    bytes_read: u64,
    read_units: u64,
    write_units: u64,
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

    /// Round trips of latency since the last reset: requests sent while none was in flight
    /// (requests sent together, as a cold load's snapshot and tail, count once).
    pub fn round_trips(&self) -> u64 {
        self.counts().round_trips
    }

    /// Read capacity units since the last reset, strongly consistent (every read of the store
    /// is): 4 KB units of the items each request returned, at least one per request. A read
    /// with a projection is counted on what it returned; DynamoDB charges the whole items.
    pub fn read_units(&self) -> u64 {
        self.counts().read_units
    }

    /// Write capacity units since the last reset: 1 KB units of every item a write puts,
    /// whether or not its condition holds, twice over in a transaction.
    pub fn write_units(&self) -> u64 {
        self.counts().write_units
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
        let mut counts = self.counts();
        *counts.requests.entry(operation).or_default() += 1;
        if counts.in_flight == 0 {
            counts.round_trips += 1;
        }
        counts.in_flight += 1;
        Ok(())
    }

    fn read_before_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            put_item::PutItemInput, transact_write_items::TransactWriteItemsInput,
        };
        let input = context.input();
        let units = if let Some(put) = input.downcast_ref::<PutItemInput>() {
            put.item().map_or(0, write_units)
        } else if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            2 * transaction
                .transact_items()
                .iter()
                .filter_map(|action| action.put().map(|put| write_units(put.item())))
                .sum::<u64>()
        } else {
            0
        };
        self.counts().write_units += units;
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let mut counts = self.counts();
        counts.in_flight = counts.in_flight.saturating_sub(1);
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
        // (items returned, read units)
        let (items, units) = context.output_or_error().map_or((0, 0), |output| {
            if let Some(query) = output.downcast_ref::<QueryOutput>() {
                let returned = query.items();
                (
                    returned.len() as u64,
                    read_units(returned.iter().map(item_size)),
                )
            } else if let Some(get) = output.downcast_ref::<GetItemOutput>() {
                (
                    u64::from(get.item().is_some()),
                    read_units(get.item().map(item_size)),
                )
            } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
                // Each item of a batch is its own read.
                batch.responses().map_or((0, 0), |tables| {
                    let returned = tables.values().flatten();
                    (
                        returned.clone().count() as u64,
                        returned.map(|item| read_units(Some(item_size(item)))).sum(),
                    )
                })
            } else {
                (0, 0)
            }
        });
        let mut counts = self.counts();
        counts.items_read += items;
        counts.bytes_read += bytes;
        counts.read_units += units;
        Ok(())
    }
}

/// Read units of one request returning items of these sizes: 4 KB of their sum, at least one.
fn read_units(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().sum::<u64>().div_ceil(4096).max(1)
}

/// Write units of putting one item: 1 KB of its size, at least one.
fn write_units(item: &HashMap<String, AttributeValue>) -> u64 {
    item_size(item).div_ceil(1024).max(1)
}

/// An item's size as DynamoDB measures it: each attribute's name and value.
pub(crate) fn item_size(item: &HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

/// A value's size: strings and binaries by their bytes, numbers by their significant digits
/// (one byte per two, plus one), sets by their members, lists and maps with 3 bytes of overhead
/// and one per element.
fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Ss(set) => set.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 1,
    }
}

fn number_size(n: &str) -> u64 {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    (significant as u64).div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        let item = HashMap::from([
            ("id".to_owned(), AttributeValue::S("abc".into())),
            ("n".to_owned(), AttributeValue::N("12300".into())),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "k".to_owned(),
                    AttributeValue::Bool(true),
                )])),
            ),
        ]);
        // id: 2 + 3; n: 1 + (3 digits → 2 + 1); m: 1 + 3 + (1 + 1 + 1)
        assert_eq!(item_size(&item), 5 + 4 + 7);
        assert_eq!(read_units([4096]), 1);
        assert_eq!(read_units([4096, 1]), 2);
        assert_eq!(read_units([]), 1, "an empty read still costs a unit");
        let big = HashMap::from([("b".to_owned(), AttributeValue::S("x".repeat(1500)))]);
        assert_eq!(write_units(&big), 2);
    }
}
