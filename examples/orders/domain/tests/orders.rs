//! The order service tested the way the library lets any domain be tested: given/when/then on
//! the aggregate, then commands and the projection end to end on the memory stores (the same
//! flow runs on DynamoDB in the workspace's emulator tests).

use std::sync::Arc;

use eventfold::EntityId;
use eventfold::projection::MemoryReadModel;
use eventfold::store::MemoryStore;
use eventfold::testing::given;
use orders::order::{Order, OrderCommand, OrderError, OrderEvent, OrderStatus};
use orders::projection::{CUSTOMER_ID, ORDER_ID};
use orders::values::{Cents, Quantity, Sku};

fn sku(text: &str) -> Sku {
    Sku::parse(text).expect("sku")
}

fn cents(n: u64) -> Cents {
    Cents::new(n).expect("cents")
}

fn id(text: &str) -> EntityId {
    EntityId::parse(text).expect("id")
}

fn add(code: &str, quantity: u32, price: u64) -> OrderCommand {
    OrderCommand::AddItem {
        sku: sku(code),
        quantity: Quantity::new(quantity).expect("quantity"),
        unit_price: cents(price),
    }
}

fn added(code: &str, quantity: u32, price: u64) -> OrderEvent {
    OrderEvent::ItemAdded {
        sku: sku(code),
        quantity: Quantity::new(quantity).expect("quantity"),
        unit_price: cents(price),
    }
}

fn started() -> OrderEvent {
    OrderEvent::OrderStarted { customer: id("c1") }
}

#[test]
fn a_draft_collects_items_and_is_placed_at_its_total() {
    let draft = given::<Order>([started(), added("MUG", 2, 750)])
        .when(add("TEA-1", 1, 1_200))
        .then([added("TEA-1", 1, 1_200)]);
    assert_eq!(draft.total(), 2_700);
    given::<Order>([started(), added("MUG", 2, 750), added("TEA-1", 1, 1_200)])
        .when(OrderCommand::Place)
        .then([OrderEvent::OrderPlaced { total: 2_700 }]);
}

#[test]
fn removing_reports_the_line_and_an_empty_order_is_not_placed() {
    given::<Order>([started(), added("MUG", 2, 750)])
        .when(OrderCommand::RemoveItem { sku: sku("MUG") })
        .then([OrderEvent::ItemRemoved {
            sku: sku("MUG"),
            quantity: 2,
            unit_price: cents(750),
        }]);
    given::<Order>([started()])
        .when(OrderCommand::RemoveItem { sku: sku("MUG") })
        .then_error(OrderError::NoSuchItem(sku("MUG")));
    given::<Order>([started()])
        .when(OrderCommand::Place)
        .then_error(OrderError::Empty);
}

#[test]
fn payment_is_the_exact_total_and_shipping_needs_payment() {
    let placed = [
        started(),
        added("MUG", 2, 750),
        OrderEvent::OrderPlaced { total: 1_500 },
    ];
    given::<Order>(placed.clone())
        .when(OrderCommand::Pay {
            amount: cents(1_000),
        })
        .then_error(OrderError::WrongAmount {
            total: 1_500,
            offered: 1_000,
        });
    given::<Order>(placed.clone())
        .when(OrderCommand::Ship)
        .then_error(OrderError::WrongStatus(OrderStatus::Placed));
    given::<Order>(placed.clone())
        .when(add("MUG", 1, 750))
        .then_error(OrderError::NotADraft(OrderStatus::Placed));
    let mut paid = placed.to_vec();
    paid.push(OrderEvent::OrderPaid { amount: 1_500 });
    given::<Order>(paid.clone())
        .when(OrderCommand::Cancel)
        .then([OrderEvent::OrderCancelled { refunded: 1_500 }]);
    paid.push(OrderEvent::OrderShipped {});
    given::<Order>(paid)
        .when(OrderCommand::Cancel)
        .then_error(OrderError::WrongStatus(OrderStatus::Shipped));
}

#[test]
fn nothing_happens_to_an_order_that_was_never_started() {
    given::<Order>([])
        .when(OrderCommand::Place)
        .then_error(OrderError::NotFound);
    given::<Order>([started()])
        .when(OrderCommand::Start { customer: id("c2") })
        .then_error(OrderError::AlreadyStarted);
}

#[test]
fn values_are_parsed_where_they_arrive() {
    assert!(Sku::parse("mug").is_err());
    assert!(Quantity::new(0).is_err() && Quantity::new(1_001).is_err());
    assert!(Cents::new(0).is_err());
    let bad: Result<OrderEvent, _> = serde_json::from_value(serde_json::json!(
        {"type": "ItemAdded", "data": {"sku": "MUG", "quantity": 0, "unit_price": 5}}
    ));
    assert!(bad.is_err(), "a stored event is parsed like a request");
}

#[tokio::test]
async fn orders_per_customer_on_the_memory_stores() {
    let seen = orders::scenario::run(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryReadModel::new(ORDER_ID)),
        Arc::new(MemoryReadModel::new(CUSTOMER_ID)),
    )
    .await
    .expect("the scenario runs");
    seen.assert_as_expected();
}
