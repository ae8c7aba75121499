//! The end-to-end flow the tests run on the memory stores and on DynamoDB: two orders of one
//! customer through the command service, projected by the projector runtime into a row per
//! order and a row for the customer; then the customer's row fed its events out of order,
//! twice, and rebuilt.

use std::sync::Arc;

use eventfold::command::{CommandContext, CommandService};
use eventfold::projection::{Projector, ReadModelStore, StreamProjector, project_in_order};
use eventfold::store::EventStore;
use eventfold::{CommandId, EntityId, RecordedEvent};

use crate::Orders;
use crate::order::{OrderCommand, OrderStatus};
use crate::projection::{
    CustomerOrders, CustomerOrdersRow, CustomerTotals, OrderRow, OrdersProjection, customer_totals,
};
use crate::values::{Cents, Quantity, Sku};

/// What the scenario observed.
#[derive(Debug)]
pub struct Seen {
    /// The shipped order's row and checkpoint.
    pub kept: Option<(u64, OrderRow)>,
    /// The cancelled order's row and checkpoint.
    pub dropped: Option<(u64, OrderRow)>,
    /// The customer's totals.
    pub totals: CustomerTotals,
    /// The customer's row: both orders.
    pub customer: Option<CustomerOrdersRow>,
    /// The customer's row after its events were delivered again out of order, and after a
    /// rebuild from the events.
    pub redelivered: Option<CustomerOrdersRow>,
    /// The same, rebuilt.
    pub rebuilt: Option<CustomerOrdersRow>,
    /// Versions written by a keyed command and by its repeat, and whether the repeat was one.
    pub keyed: (u64, u64, bool),
}

impl Seen {
    /// The outcome the scenario must have, on any stores.
    #[track_caller]
    pub fn assert_as_expected(&self) {
        let (version, kept) = self.kept.clone().expect("the shipped order has a row");
        assert_eq!(
            (version, kept.status, kept.items, kept.total),
            (7, OrderStatus::Shipped, 2, 1_500)
        );
        let (_, dropped) = self.dropped.clone().expect("the cancelled order has a row");
        assert_eq!(dropped.status, OrderStatus::Cancelled);
        assert_eq!(
            self.totals,
            CustomerTotals {
                placed: 2,
                cancelled: 1,
                spent: 1_500
            }
        );
        assert_eq!(self.keyed, (1, 1, true), "a repeat writes nothing");
        let listed = self.customer.clone().expect("the customer has a row");
        let statuses: Vec<OrderStatus> = listed.orders.values().map(|o| o.status).collect();
        assert_eq!(listed.orders.len(), 2, "{listed:?}");
        assert!(
            statuses.contains(&OrderStatus::Shipped) && statuses.contains(&OrderStatus::Cancelled)
        );
        assert_eq!(
            self.redelivered.as_ref(),
            Some(&listed),
            "duplicates and gaps change nothing"
        );
        assert_eq!(
            self.rebuilt.as_ref(),
            Some(&listed),
            "a rebuild ends where the stream did"
        );
    }
}

fn add(sku: &str, quantity: u32, unit_price: u64) -> Result<OrderCommand, String> {
    Ok(OrderCommand::AddItem {
        sku: Sku::parse(sku).map_err(|e| e.to_string())?,
        quantity: Quantity::new(quantity).map_err(|e| e.to_string())?,
        unit_price: Cents::new(unit_price).map_err(|e| e.to_string())?,
    })
}

/// Runs the scenario over an event store and two read-model stores: the orders' and the
/// customers'.
pub async fn run(
    store: Arc<dyn EventStore>,
    read_model: Arc<dyn ReadModelStore>,
    customers: Arc<dyn ReadModelStore>,
) -> Result<Seen, String> {
    let orders = Orders::new(CommandService::new(store.clone()));
    let projector = Projector::new(OrdersProjection, read_model.clone(), store.clone());
    let per_customer = Projector::new(CustomerOrders, customers.clone(), store.clone());
    let mut every_event: Vec<RecordedEvent> = Vec::new();
    let customer = EntityId::parse("c1").map_err(|e| e.to_string())?;
    let (kept, dropped) = (EntityId::generate(), EntityId::generate());
    let cents = |n| Cents::new(n).map_err(|e| e.to_string());
    let start = OrderCommand::Start {
        customer: customer.clone(),
    };
    let plans = [
        (
            &kept,
            vec![
                start.clone(),
                add("MUG", 2, 750)?,
                add("TEA-1", 1, 1_200)?,
                OrderCommand::RemoveItem {
                    sku: Sku::parse("TEA-1").map_err(|e| e.to_string())?,
                },
                OrderCommand::Place,
                OrderCommand::Pay {
                    amount: cents(1_500)?,
                },
                OrderCommand::Ship,
            ],
        ),
        (
            &dropped,
            vec![
                start.clone(),
                add("MUG", 1, 750)?,
                OrderCommand::Place,
                OrderCommand::Pay {
                    amount: cents(750)?,
                },
                OrderCommand::Cancel,
            ],
        ),
    ];
    let context = CommandContext::default();
    for (order, commands) in plans {
        for command in &commands {
            orders
                .handle(&context, order, command)
                .await
                .map_err(|e| e.to_string())?;
        }
        let events = store
            .read_all(&Orders::stream(order), 1)
            .await
            .map_err(|e| e.to_string())?;
        for consumer in [&projector as &dyn StreamProjector, &per_customer] {
            consumer
                .project_stream(&events)
                .await
                .into_result()
                .map_err(|e| e.to_string())?;
        }
        every_event.extend(events);
    }
    let customer_row = |customers: Arc<dyn ReadModelStore>| {
        let projector = Projector::new(CustomerOrders, customers, store.clone());
        let customer = customer.clone();
        async move {
            projector
                .row(customer.as_str())
                .await
                .map(|row| row.map(|(_, row)| row))
                .map_err(|e| e.to_string())
        }
    };
    let listed = customer_row(customers.clone()).await?;
    // From nothing, each order's last event first (a gap, repaired from the events table),
    // then the others late (duplicates), then everything again (duplicates).
    customers.clear().await.map_err(|e| e.to_string())?;
    for event in every_event.iter().rev().chain(&every_event) {
        per_customer
            .project(event)
            .await
            .map_err(|e| e.to_string())?;
    }
    let redelivered = customer_row(customers.clone()).await?;
    customers.clear().await.map_err(|e| e.to_string())?;
    project_in_order(&per_customer, every_event)
        .await
        .map_err(|e| e.to_string())?;
    let rebuilt = customer_row(customers.clone()).await?;
    let keyed = CommandContext::new(
        CommandId::generate(),
        eventfold::command::request_fingerprint("start", &"c1").map_err(|e| e.to_string())?,
    );
    let third = EntityId::generate();
    let first = orders
        .handle(&keyed, &third, &start)
        .await
        .map_err(|e| e.to_string())?;
    let again = orders
        .handle(&keyed, &third, &start)
        .await
        .map_err(|e| e.to_string())?;
    let version =
        |streams: &[eventfold::store::WrittenStream]| streams.first().map_or(0, |s| s.last_version);
    Ok(Seen {
        kept: projector
            .row(kept.as_str())
            .await
            .map_err(|e| e.to_string())?,
        dropped: projector
            .row(dropped.as_str())
            .await
            .map_err(|e| e.to_string())?,
        totals: customer_totals(read_model.as_ref(), &customer)
            .await
            .map_err(|e| e.to_string())?,
        customer: listed,
        redelivered,
        rebuilt,
        keyed: (
            version(&first.streams),
            version(&again.streams),
            again.replayed,
        ),
    })
}
