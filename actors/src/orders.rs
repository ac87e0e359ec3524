//! The order and its transitions, as OrderManager keeps them and the store writes them.

use rust_decimal::Decimal;

use crate::types::{ClientOrderId, MarketId, Side, Slot, VenueOrderId};

/// One of our orders as OrderManager tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub client_order_id: ClientOrderId,
    pub market: MarketId,
    pub slot: Slot,
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    pub filled: Decimal,
    pub state: OrderState,
    pub venue_order_id: Option<VenueOrderId>,
    pub created_at_ms: i64,
    /// W3C traceparent of the intent that created the order: later events join its trace.
    pub traceparent: Option<String>,
}

/// Where one of our orders stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    PendingNew,
    Unknown,
    Working,
    PartiallyFilled,
    PendingCancel,
    Filled,
    Cancelled,
    Rejected,
}

/// One state change of one order, to be persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The order after the change.
    pub order: Order,
    /// `None` when the order was just created.
    pub from: Option<OrderState>,
    pub event: &'static str,
    pub detail: Option<String>,
}
