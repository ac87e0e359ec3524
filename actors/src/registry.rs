//! Where actors find each other. Every peer is a [`Recipient`] of the one message type it is
//! sent, bound once at start-up; a supervised actor keeps its address across restarts, so a
//! restarted actor is reachable at once. Tests bind probes in place of real actors.

use std::sync::{Arc, OnceLock};

use actix::prelude::*;

use crate::account_feed::{ResolveOrders, Resync};
use crate::gateway::Dispatch;
use crate::order_manager::{
    CancelEverything, FillApplied, IntentOutcome, OrderResolved, OrderUpdate, QuoteTarget,
    VenueSnapshot,
};
use crate::outbox_worker::{DispatchOutcome, IntentsDurable, ResolveIntent};
use crate::quote_engine::TickReceived;
use crate::quote_engine::{InventoryChanged, RequestRequote};
use crate::rate_limiter::AcquirePermit;
use crate::risk_guard::{BalancesUpdated, CheckIntents, FeedHealth, TradingStateChanged};
use crate::venue::{VenueEvent, VenueRequest};

/// A peer bound once.
#[derive(Debug)]
pub struct Peer<M: Message + Send>(OnceLock<Recipient<M>>)
where
    M::Result: Send;

impl<M: Message + Send> Default for Peer<M>
where
    M::Result: Send,
{
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<M: Message + Send> Peer<M>
where
    M::Result: Send,
{
    /// Binds the peer; a second bind is ignored (and reported as false).
    pub fn bind(&self, r: Recipient<M>) -> bool {
        self.0.set(r).is_ok()
    }

    /// Sends without waiting; a message to an unbound peer is dropped and logged.
    pub fn do_send(&self, msg: M) {
        match self.0.get() {
            Some(r) => r.do_send(msg),
            None => tracing::warn!(
                message = std::any::type_name::<M>(),
                "peer not bound, message dropped"
            ),
        }
    }

    /// The recipient, if bound.
    pub fn get(&self) -> Option<&Recipient<M>> {
        self.0.get()
    }
}

/// Every peer of every actor.
#[derive(Debug, Default)]
pub struct Registry {
    pub ticks_to_quotes: Peer<TickReceived>,
    /// Staging only: the mock exchange follows the reference too.
    pub ticks_to_venue: Peer<TickReceived>,
    pub feed_health: Peer<FeedHealth>,
    pub quote_targets: Peer<QuoteTarget>,
    pub requote: Peer<RequestRequote>,
    pub inventory: Peer<InventoryChanged>,
    pub risk_check: Peer<CheckIntents>,
    pub state_to_quotes: Peer<TradingStateChanged>,
    pub state_to_orders: Peer<TradingStateChanged>,
    pub balances: Peer<BalancesUpdated>,
    pub fills_to_risk: Peer<FillApplied>,
    pub fills_to_orders: Peer<FillApplied>,
    pub intents_durable: Peer<IntentsDurable>,
    pub resolve_intent: Peer<ResolveIntent>,
    pub permits: Peer<AcquirePermit>,
    pub dispatch: Peer<Dispatch>,
    pub dispatch_outcome: Peer<DispatchOutcome>,
    pub intent_outcome: Peer<IntentOutcome>,
    pub order_updates: Peer<OrderUpdate>,
    pub venue_snapshot: Peer<VenueSnapshot>,
    pub order_resolved: Peer<OrderResolved>,
    pub cancel_everything: Peer<CancelEverything>,
    pub resolve_orders: Peer<ResolveOrders>,
    pub resync: Peer<Resync>,
    pub venue: Peer<VenueRequest>,
    pub venue_events: Peer<VenueEvent>,
}

/// Shared handle to the registry.
pub type Reg = Arc<Registry>;
