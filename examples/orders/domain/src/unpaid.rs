//! The unpaid-orders workflow: a placed order nobody pays for within a time is cancelled. A
//! reactor on the orders' events: placing an order sets a timer under the order's key, paying
//! or cancelling it cancels the timer, and a timer that fires sends `CancelUnpaid`, which the
//! order refuses if it was paid meanwhile (the timer and the payment may cross).

use std::time::Duration;

use eventfold::encoding::decode_known;
use eventfold::reactor::{Reactions, Reactor, Timer};
use eventfold::{Aggregate, EntityId, RecordedEvent, StoreError, StreamId};

use crate::order::{Order, OrderCommand, OrderEvent};

/// The reactor's name: its checkpoints, timers and commands are kept under it.
pub const NAME: &str = "unpaid-orders";
/// How long a placed order may wait for its payment, unless told otherwise.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(30 * 60);

/// Cancels placed orders left unpaid for `after`.
#[derive(Clone, Debug)]
pub struct UnpaidOrders {
    after: Duration,
}

impl UnpaidOrders {
    /// Cancelling after `after`.
    pub fn new(after: Duration) -> Self {
        Self { after }
    }
}

/// The timer of an order.
pub fn timer_key(order: &EntityId) -> String {
    format!("unpaid/{order}")
}

impl Reactor for UnpaidOrders {
    fn name(&self) -> &str {
        NAME
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Order::CATEGORY
    }

    fn react(&self, event: &RecordedEvent, out: &mut Reactions) -> Result<(), StoreError> {
        let order = EntityId::parse(event.stream_id.entity_id())
            .map_err(|e| StoreError::corrupt(e.to_string()))?;
        match decode_known::<OrderEvent>(event)? {
            Some(OrderEvent::OrderPlaced { .. }) => {
                let payload = serde_json::json!({ "order": order });
                out.schedule(&timer_key(&order), self.after, payload);
            }
            Some(OrderEvent::OrderPaid { .. } | OrderEvent::OrderCancelled { .. }) => {
                out.cancel(&timer_key(&order));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_timer(&self, timer: &Timer, out: &mut Reactions) -> Result<(), StoreError> {
        let order = timer.payload["order"].as_str().unwrap_or_default();
        let order = EntityId::parse(order).map_err(|e| StoreError::corrupt(e.to_string()))?;
        out.command::<Order>(&order, OrderCommand::CancelUnpaid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use eventfold::testing::workflow;

    use super::*;
    use crate::order::OrderStatus;

    const AFTER: Duration = Duration::from_secs(30 * 60);

    fn order() -> EntityId {
        EntityId::parse("o1").expect("an id")
    }

    fn placed() -> Vec<OrderEvent> {
        vec![
            OrderEvent::OrderStarted {
                customer: EntityId::parse("c1").expect("an id"),
            },
            OrderEvent::OrderPlaced { total: 2_500 },
        ]
    }

    #[test]
    fn an_order_left_unpaid_is_cancelled_when_its_time_is_up() {
        workflow(UnpaidOrders::new(AFTER))
            .given::<Order>(&order(), placed())
            .when_time_elapses(AFTER - Duration::from_secs(1))
            .then_no_commands()
            .and()
            .when_time_elapses(Duration::from_secs(1))
            .then_command::<Order>(&order(), OrderCommand::CancelUnpaid)
            .then_commands(1)
            .and()
            .when_time_elapses(AFTER * 10)
            .then_no_commands();
    }

    #[test]
    fn paying_in_time_cancels_the_timer() {
        workflow(UnpaidOrders::new(AFTER))
            .given::<Order>(&order(), placed())
            .when_time_elapses(AFTER / 2)
            .then_no_commands()
            .and()
            .when::<Order>(&order(), OrderEvent::OrderPaid { amount: 2_500 })
            .then_cancelled(&timer_key(&order()))
            .then_no_commands()
            .and()
            .when_time_elapses(AFTER * 2)
            .then_no_commands();
    }

    #[test]
    fn the_timer_starts_at_placing_not_at_starting() {
        let kit = workflow(UnpaidOrders::new(AFTER))
            .when::<Order>(
                &order(),
                OrderEvent::OrderStarted {
                    customer: EntityId::parse("c1").expect("an id"),
                },
            )
            .then_no_commands()
            .and()
            .when_time_elapses(AFTER)
            .then_no_commands()
            .and()
            .when::<Order>(&order(), OrderEvent::OrderPlaced { total: 1 })
            .then_scheduled(&timer_key(&order()))
            .and();
        let due = kit.timers()[&timer_key(&order())].due;
        assert_eq!((due - kit.now()).to_std().expect("ahead"), AFTER);
    }

    /// Through the runtime on the memory stores: the placing delivered three times sets one
    /// timer; the timer fired three times (a crash each time before it was taken off) cancels
    /// the order once, the repeats answered from the command's record.
    #[tokio::test]
    async fn delivered_three_times_it_cancels_once() {
        use std::sync::Arc;

        use eventfold::command::{CommandContext, CommandService, Target};
        use eventfold::reactor::{MemoryTimers, Reacting, TimerStore};
        use eventfold::store::{EventStore, MemoryStore};

        use crate::values::{Cents, Quantity, Sku};

        let store = Arc::new(MemoryStore::new());
        let commands = CommandService::new(store.clone());
        let timers = Arc::new(MemoryTimers::new());
        let reacting = Reacting::new(
            Arc::new(UnpaidOrders::new(AFTER)),
            commands.clone(),
            timers.clone(),
        );
        let stream = Order::stream_id(&order());
        let item = OrderCommand::AddItem {
            sku: Sku::parse("BOOK-1").expect("a sku"),
            quantity: Quantity::new(1).expect("a quantity"),
            unit_price: Cents::new(700).expect("a price"),
        };
        let start = OrderCommand::Start {
            customer: EntityId::parse("c1").expect("an id"),
        };
        for command in [start, item, OrderCommand::Place] {
            commands
                .execute_one::<Order, _>(
                    &CommandContext::default(),
                    Target::new(stream.clone()),
                    &command,
                    (),
                )
                .await
                .expect("executed");
        }
        let placed = store.read_all(&stream, 3).await.expect("read").remove(0);
        for _ in 0..3 {
            reacting.react(&placed).await.expect("reacted");
        }
        let pending = timers.pending(None).await.expect("pending");
        assert_eq!(pending.len(), 1, "{pending:?}");
        let due = pending[0].due;
        for _ in 0..3 {
            timers
                .schedule(&pending[0])
                .await
                .expect("still there, as after a crash");
            reacting.fire_due(due).await.expect("fired");
        }
        let report = reacting.take_report();
        assert_eq!(
            (report.fired, report.written, report.replayed),
            (3, 1, 2),
            "{report:?}"
        );
        let types: Vec<String> = store
            .read_all(&stream, 1)
            .await
            .expect("read")
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            types,
            ["OrderStarted", "ItemAdded", "OrderPlaced", "OrderCancelled"]
        );
    }

    /// The command the timer sends, against the order as it may be by then: a placed order is
    /// cancelled, nothing refunded; a paid one refuses (the payment won the race).
    #[test]
    fn the_timers_command_cancels_only_an_unpaid_order() {
        let mut history = placed();
        eventfold::testing::given::<Order>(history.clone())
            .when(OrderCommand::CancelUnpaid)
            .then([OrderEvent::OrderCancelled { refunded: 0 }]);
        history.push(OrderEvent::OrderPaid { amount: 2_500 });
        eventfold::testing::given::<Order>(history)
            .when(OrderCommand::CancelUnpaid)
            .then_error(crate::order::OrderError::WrongStatus(OrderStatus::Paid));
    }
}
