//! The end-to-end flow the tests run on the memory stores and on DynamoDB: two orders of one
//! customer through the command service, projected by the projector runtime.

use std::sync::Arc;

use eventfold::command::{CommandContext, CommandService};
use eventfold::projection::{Projector, ReadModelStore, StreamProjector};
use eventfold::store::EventStore;
use eventfold::{CommandId, EntityId};

use crate::Orders;
use crate::order::{OrderCommand, OrderStatus};
use crate::projection::{CustomerTotals, OrderRow, OrdersProjection, customer_totals};
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
    }
}

fn add(sku: &str, quantity: u32, unit_price: u64) -> Result<OrderCommand, String> {
    Ok(OrderCommand::AddItem {
        sku: Sku::parse(sku).map_err(|e| e.to_string())?,
        quantity: Quantity::new(quantity).map_err(|e| e.to_string())?,
        unit_price: Cents::new(unit_price).map_err(|e| e.to_string())?,
    })
}

/// Runs the scenario over an event store and a read-model store.
pub async fn run(
    store: Arc<dyn EventStore>,
    read_model: Arc<dyn ReadModelStore>,
) -> Result<Seen, String> {
    let orders = Orders::new(CommandService::new(store.clone()));
    let projector = Projector::new(OrdersProjection, read_model.clone(), store.clone());
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
        projector
            .project_stream(&events)
            .await
            .into_result()
            .map_err(|e| e.to_string())?;
    }
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
        keyed: (
            version(&first.streams),
            version(&again.streams),
            again.replayed,
        ),
    })
}
