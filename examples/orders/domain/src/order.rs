//! An order: started for a customer, items added and removed while it is a draft, placed,
//! paid in full, then shipped; or cancelled (refunding what was paid) until it ships.

use std::collections::BTreeMap;

use eventfold::{Aggregate, DomainEvent, EntityId};
use serde::{Deserialize, Serialize};

use crate::values::{Cents, Quantity, Sku};

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not started.
    #[default]
    None,
    /// Items may be added and removed.
    Draft,
    /// Waiting for payment.
    Placed,
    /// Paid in full.
    Paid,
    /// On its way; final.
    Shipped,
    /// Cancelled; final.
    Cancelled,
}

/// One line of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// How many.
    pub quantity: u32,
    /// The price of one, in cents.
    pub unit_price: Cents,
}

/// The state of one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Where it is.
    pub status: OrderStatus,
    /// Whose order.
    pub customer: Option<EntityId>,
    /// Its lines, by SKU.
    pub lines: BTreeMap<Sku, Line>,
    /// What was paid.
    pub paid: u64,
}

impl Order {
    /// The sum of the lines, in cents.
    pub fn total(&self) -> u64 {
        self.lines
            .values()
            .map(|l| u64::from(l.quantity) * l.unit_price.get())
            .sum()
    }
}

/// What can be asked of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// Start a draft for a customer.
    Start {
        /// The customer.
        customer: EntityId,
    },
    /// Add (or add more of) an item.
    AddItem {
        /// What.
        sku: Sku,
        /// How many more.
        quantity: Quantity,
        /// The price of one.
        unit_price: Cents,
    },
    /// Remove an item's line.
    RemoveItem {
        /// What.
        sku: Sku,
    },
    /// Place the draft.
    Place,
    /// Pay the total.
    Pay {
        /// The amount paid, in cents.
        amount: Cents,
    },
    /// Ship a paid order.
    Ship,
    /// Cancel before shipping.
    Cancel,
    /// Cancel a placed order nobody paid for in time (the unpaid-orders reactor's command):
    /// refused once it is paid, shipped or cancelled.
    CancelUnpaid,
}

/// What happened to an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data", deny_unknown_fields)]
pub enum OrderEvent {
    OrderStarted {
        customer: EntityId,
    },
    ItemAdded {
        sku: Sku,
        quantity: Quantity,
        unit_price: Cents,
    },
    /// Carries the line removed, so consumers need no state to interpret it.
    ItemRemoved {
        sku: Sku,
        quantity: u32,
        unit_price: Cents,
    },
    OrderPlaced {
        total: u64,
    },
    OrderPaid {
        amount: u64,
    },
    OrderShipped {},
    OrderCancelled {
        refunded: u64,
    },
}

/// Why an order refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Started already.
    #[error("the order exists")]
    AlreadyStarted,
    /// Not started.
    #[error("no such order")]
    NotFound,
    /// Items change only while it is a draft.
    #[error("the order is {0:?}; it can no longer change")]
    NotADraft(OrderStatus),
    /// Removing an item it does not have.
    #[error("the order has no {0}")]
    NoSuchItem(Sku),
    /// Placing an empty draft.
    #[error("an empty order cannot be placed")]
    Empty,
    /// Paying an order that is not placed, or shipping one that is not paid.
    #[error("the order is {0:?}")]
    WrongStatus(OrderStatus),
    /// Paying anything but the total.
    #[error("the total is {total} cents, not {offered}")]
    WrongAmount {
        /// The total.
        total: u64,
        /// What was offered.
        offered: u64,
    },
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "Order";
    const STATE_SCHEMA: u32 = 1;

    type Event = OrderEvent;
    type Command = OrderCommand;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderCommand as C;
        use OrderEvent as E;
        use OrderStatus as S;
        let event = match (command, self.status) {
            (C::Start { customer }, S::None) => E::OrderStarted {
                customer: customer.clone(),
            },
            (C::Start { .. }, _) => return Err(OrderError::AlreadyStarted),
            (_, S::None) => return Err(OrderError::NotFound),
            (
                C::AddItem {
                    sku,
                    quantity,
                    unit_price,
                },
                S::Draft,
            ) => E::ItemAdded {
                sku: sku.clone(),
                quantity: *quantity,
                unit_price: *unit_price,
            },
            (C::RemoveItem { sku }, S::Draft) => match self.lines.get(sku) {
                Some(line) => E::ItemRemoved {
                    sku: sku.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                },
                None => return Err(OrderError::NoSuchItem(sku.clone())),
            },
            (C::AddItem { .. } | C::RemoveItem { .. }, status) => {
                return Err(OrderError::NotADraft(status));
            }
            (C::Place, S::Draft) if self.lines.is_empty() => return Err(OrderError::Empty),
            (C::Place, S::Draft) => E::OrderPlaced {
                total: self.total(),
            },
            (C::Pay { amount }, S::Placed) if amount.get() == self.total() => E::OrderPaid {
                amount: amount.get(),
            },
            (C::Pay { amount }, S::Placed) => {
                return Err(OrderError::WrongAmount {
                    total: self.total(),
                    offered: amount.get(),
                });
            }
            (C::Ship, S::Paid) => E::OrderShipped {},
            (C::Cancel, S::Draft | S::Placed | S::Paid) => E::OrderCancelled {
                refunded: self.paid,
            },
            (C::CancelUnpaid, S::Placed) => E::OrderCancelled { refunded: 0 },
            (C::Place | C::Pay { .. } | C::Ship | C::Cancel | C::CancelUnpaid, status) => {
                return Err(OrderError::WrongStatus(status));
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &OrderEvent) -> Self {
        use OrderEvent as E;
        match event {
            E::OrderStarted { customer } => {
                self.status = OrderStatus::Draft;
                self.customer = Some(customer.clone());
            }
            E::ItemAdded {
                sku,
                quantity,
                unit_price,
            } => {
                let line = self.lines.entry(sku.clone()).or_insert(Line {
                    quantity: 0,
                    unit_price: *unit_price,
                });
                line.quantity = line.quantity.saturating_add(quantity.get());
                line.unit_price = *unit_price;
            }
            E::ItemRemoved { sku, .. } => {
                self.lines.remove(sku);
            }
            E::OrderPlaced { .. } => self.status = OrderStatus::Placed,
            E::OrderPaid { amount } => {
                self.status = OrderStatus::Paid;
                self.paid = *amount;
            }
            E::OrderShipped {} => self.status = OrderStatus::Shipped,
            E::OrderCancelled { .. } => {
                self.status = OrderStatus::Cancelled;
                self.paid = 0;
            }
        }
        self
    }
}
