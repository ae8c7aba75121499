//! An e-commerce order service built only on the eventfold library: the seeds' first use
//! case, and the proof that a new event-sourced service writes domain code and little else.
//!
//! - [`order`]: the aggregate, pure `decide`/`evolve`;
//! - [`values`]: SKUs, quantities and cents, parsed once;
//! - [`projection`]: a row per order with each customer's totals, and a row per customer
//!   listing its orders (a row fed by many streams);
//! - [`Orders`]: one method to run a command against an order;
//! - [`problems`]: what each refusal is over HTTP;
//! - [`unpaid`]: the workflow that cancels orders left unpaid (a reactor with a timer).
//!
//! Storage, idempotency, retries, checkpoints, gap repair and snapshots are the library's.

pub mod order;
pub mod problems;
pub mod projection;
pub mod scenario;
pub mod unpaid;
pub mod values;

use eventfold::command::{CommandContext, CommandError, CommandService, Executed, Target};
use eventfold::{Aggregate, EntityId, StreamId};

use crate::order::{Order, OrderCommand, OrderError};

/// Orders over a command service.
#[derive(Clone, Debug)]
pub struct Orders {
    commands: CommandService,
}

impl Orders {
    /// Orders stored through `commands`.
    pub fn new(commands: CommandService) -> Self {
        Self { commands }
    }

    /// The stream of an order.
    pub fn stream(order: &EntityId) -> StreamId {
        Order::stream_id(order)
    }

    /// Starts a new order for `customer`; its id is the receipt.
    pub async fn start(
        &self,
        context: &CommandContext,
        customer: EntityId,
    ) -> Result<Executed<EntityId>, CommandError<OrderError>> {
        let order = EntityId::generate();
        let command = OrderCommand::Start { customer };
        self.commands
            .execute_one::<Order, _>(
                context,
                Target::new(Self::stream(&order)),
                &command,
                order.clone(),
            )
            .await
    }

    /// Runs one command on an order; the new version is in the result's streams.
    pub async fn handle(
        &self,
        context: &CommandContext,
        order: &EntityId,
        command: &OrderCommand,
    ) -> Result<Executed<()>, CommandError<OrderError>> {
        self.handle_pinned(context, order, None, command).await
    }

    /// Runs one command on an order if it is still at `if_match` (any version when `None`).
    pub async fn handle_pinned(
        &self,
        context: &CommandContext,
        order: &EntityId,
        if_match: Option<u64>,
        command: &OrderCommand,
    ) -> Result<Executed<()>, CommandError<OrderError>> {
        let target = Target::new(Self::stream(order)).if_match(if_match);
        self.commands
            .execute_one::<Order, _>(context, target, command, ())
            .await
    }

    /// An order's current state, folded from its events.
    pub async fn load(&self, order: &EntityId) -> Result<Order, eventfold::StoreError> {
        Ok(self
            .commands
            .load::<Order>(&Self::stream(order))
            .await?
            .state)
    }
}
