//! Order intents: what OrderManager wants the venue to do. An intent is approved by
//! RiskGuard, written to the outbox in the same transaction as the order's state change, and
//! only then dispatched by OutboxWorker.

use rust_decimal::Decimal;

use crate::types::{ClientOrderId, MarketId, Side, Slot, VenueOrderId};

/// One order action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Rest a new limit order (post-only).
    Place {
        client_order_id: ClientOrderId,
        market: MarketId,
        slot: Slot,
        side: Side,
        price: Decimal,
        size: Decimal,
    },
    /// Cancel one order; the venue id is filled in once the place is acknowledged.
    Cancel {
        client_order_id: ClientOrderId,
        market: MarketId,
        venue_order_id: Option<VenueOrderId>,
    },
    /// Cancel every order of ours in a market.
    CancelAll { market: MarketId },
}

/// The kind of an intent, as stored in `outbox.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentKind {
    Place,
    Cancel,
    CancelAll,
}

impl IntentKind {
    /// Returns the database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Place => "place",
            IntentKind::Cancel => "cancel",
            IntentKind::CancelAll => "cancel_all",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<IntentKind> {
        match s {
            "place" => Some(IntentKind::Place),
            "cancel" => Some(IntentKind::Cancel),
            "cancel_all" => Some(IntentKind::CancelAll),
            _ => None,
        }
    }

    /// True for actions that reduce exposure; the rate limiter grants them first.
    pub fn is_cancel(self) -> bool {
        match self {
            IntentKind::Cancel | IntentKind::CancelAll => true,
            IntentKind::Place => false,
        }
    }
}

impl Intent {
    /// Returns the kind.
    pub fn kind(&self) -> IntentKind {
        match self {
            Intent::Place { .. } => IntentKind::Place,
            Intent::Cancel { .. } => IntentKind::Cancel,
            Intent::CancelAll { .. } => IntentKind::CancelAll,
        }
    }

    /// Returns the market.
    pub fn market(&self) -> &MarketId {
        match self {
            Intent::Place { market, .. }
            | Intent::Cancel { market, .. }
            | Intent::CancelAll { market } => market,
        }
    }

    /// The side of a place.
    pub fn side(&self) -> Option<crate::types::Side> {
        match self {
            Intent::Place { side, .. } => Some(*side),
            Intent::Cancel { .. } | Intent::CancelAll { .. } => None,
        }
    }

    /// Returns the order the intent is about, if one.
    pub fn client_order_id(&self) -> Option<&ClientOrderId> {
        match self {
            Intent::Place {
                client_order_id, ..
            }
            | Intent::Cancel {
                client_order_id, ..
            } => Some(client_order_id),
            Intent::CancelAll { .. } => None,
        }
    }
}
