//! Two read models of orders: a row per order, with each customer's totals as counters that
//! move in the same write; and a row per customer listing its orders, fed by every order's
//! stream (rows shared by many streams, each checkpointed on its own).

use std::collections::BTreeMap;

use eventfold::encoding::decode_known;
use eventfold::envelope::format_timestamp;
use eventfold::error::StoreError;
use eventfold::projection::{CounterDelta, Projection, ReadModelStore, Rows, Update};
use eventfold::{Aggregate, EntityId, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};

use crate::order::{Order, OrderEvent, OrderStatus};

/// The key attribute of the orders table.
pub const ORDER_ID: &str = "order_id";
/// The key attribute of the customers table.
pub const CUSTOMER_ID: &str = "customer_id";

/// One order in the read model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Whose order.
    pub customer: EntityId,
    /// Where it is.
    pub status: OrderStatus,
    /// Items (units) on it.
    pub items: u64,
    /// Its total so far, in cents.
    pub total: u64,
    /// When it last changed.
    pub updated_at: String,
}

/// A customer's totals, summed from the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerTotals {
    /// Orders placed.
    pub placed: i64,
    /// Orders cancelled (at any stage).
    pub cancelled: i64,
    /// Cents paid and not refunded.
    pub spent: i64,
}

/// The orders projection: a row per order.
#[derive(Clone, Copy, Debug, Default)]
pub struct OrdersProjection;

fn customer_key(customer: &EntityId) -> String {
    format!("#customer-{customer}")
}

impl Projection for OrdersProjection {
    type Row = OrderRow;

    fn name(&self) -> &str {
        "orders"
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Order::CATEGORY
    }

    fn row_key(&self, event: &RecordedEvent, _previous: Option<&str>) -> Option<String> {
        Some(event.stream_id.entity_id().to_owned())
    }

    fn apply(
        &self,
        row: Option<OrderRow>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<OrderRow>>, StoreError> {
        let Some(decoded) = decode_known::<OrderEvent>(event)? else {
            return Ok(None);
        };
        let updated_at = format_timestamp(&event.occurred_at);
        if let OrderEvent::OrderStarted { customer } = decoded {
            let row = OrderRow {
                customer,
                status: OrderStatus::Draft,
                items: 0,
                total: 0,
                updated_at,
            };
            return Ok(Some(Update {
                row: Some(row),
                counters: Vec::new(),
            }));
        }
        let mut row =
            row.ok_or_else(|| StoreError::corrupt(format!("{} has no start", event.stream_id)))?;
        let key = customer_key(&row.customer);
        let mut counters = Vec::new();
        match decoded {
            OrderEvent::ItemAdded {
                quantity,
                unit_price,
                ..
            } => {
                row.items += u64::from(quantity.get());
                row.total += u64::from(quantity.get()) * unit_price.get();
            }
            OrderEvent::ItemRemoved {
                quantity,
                unit_price,
                ..
            } => {
                row.items = row.items.saturating_sub(u64::from(quantity));
                row.total = row
                    .total
                    .saturating_sub(u64::from(quantity) * unit_price.get());
            }
            OrderEvent::OrderPlaced { total } => {
                row.status = OrderStatus::Placed;
                row.total = total;
                counters.push(CounterDelta::new(&key, "placed", 1));
            }
            OrderEvent::OrderPaid { amount } => {
                row.status = OrderStatus::Paid;
                counters.push(CounterDelta::new(&key, "spent", to_i64(amount)?));
            }
            OrderEvent::OrderShipped {} => row.status = OrderStatus::Shipped,
            OrderEvent::OrderCancelled { refunded } => {
                row.status = OrderStatus::Cancelled;
                counters.push(CounterDelta::new(&key, "cancelled", 1));
                counters.push(CounterDelta::new(&key, "spent", -to_i64(refunded)?));
            }
            OrderEvent::OrderStarted { .. } => {}
        }
        row.updated_at = updated_at;
        Ok(Some(Update {
            row: Some(row),
            counters,
        }))
    }
}

fn to_i64(cents: u64) -> Result<i64, StoreError> {
    i64::try_from(cents).map_err(|_| StoreError::corrupt("an amount beyond i64"))
}

/// A customer's totals.
pub async fn customer_totals(
    read_model: &dyn ReadModelStore,
    customer: &EntityId,
) -> Result<CustomerTotals, StoreError> {
    let counters: BTreeMap<String, i64> = read_model.counters(&customer_key(customer)).await?;
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    Ok(CustomerTotals {
        placed: get("placed"),
        cancelled: get("cancelled"),
        spent: get("spent"),
    })
}

/// One order as its customer's row lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedOrder {
    /// Where it is.
    pub status: OrderStatus,
    /// Its total, in cents (once placed; the lines' sum before).
    pub total: u64,
}

/// A customer's row: every order of theirs, by order id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerOrdersRow {
    /// The customer's orders.
    pub orders: BTreeMap<String, ListedOrder>,
}

/// Orders per customer: one row per customer, fed by all of that customer's order streams.
/// Only `OrderStarted` names the customer; every later event of an order goes where its start
/// went.
#[derive(Clone, Copy, Debug, Default)]
pub struct CustomerOrders;

impl Projection for CustomerOrders {
    type Row = CustomerOrdersRow;

    fn name(&self) -> &str {
        "customer-orders"
    }

    fn rows(&self) -> Rows {
        Rows::Shared
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Order::CATEGORY
    }

    fn row_key(&self, event: &RecordedEvent, previous: Option<&str>) -> Option<String> {
        match decode_known::<OrderEvent>(event) {
            Ok(Some(OrderEvent::OrderStarted { customer })) => Some(customer.to_string()),
            _ => previous.map(str::to_owned),
        }
    }

    fn apply(
        &self,
        row: Option<CustomerOrdersRow>,
        event: &RecordedEvent,
    ) -> Result<Option<Update<CustomerOrdersRow>>, StoreError> {
        let Some(decoded) = decode_known::<OrderEvent>(event)? else {
            return Ok(None);
        };
        let mut row = row.unwrap_or_default();
        let order = event.stream_id.entity_id().to_owned();
        let listed = row.orders.entry(order).or_insert(ListedOrder {
            status: OrderStatus::Draft,
            total: 0,
        });
        match decoded {
            OrderEvent::OrderStarted { .. } => {}
            OrderEvent::ItemAdded {
                quantity,
                unit_price,
                ..
            } => listed.total += u64::from(quantity.get()) * unit_price.get(),
            OrderEvent::ItemRemoved {
                quantity,
                unit_price,
                ..
            } => {
                listed.total = listed
                    .total
                    .saturating_sub(u64::from(quantity) * unit_price.get());
            }
            OrderEvent::OrderPlaced { total } => {
                listed.status = OrderStatus::Placed;
                listed.total = total;
            }
            OrderEvent::OrderPaid { .. } => listed.status = OrderStatus::Paid,
            OrderEvent::OrderShipped {} => listed.status = OrderStatus::Shipped,
            OrderEvent::OrderCancelled { .. } => listed.status = OrderStatus::Cancelled,
        }
        Ok(Some(Update {
            row: Some(row),
            counters: Vec::new(),
        }))
    }
}
