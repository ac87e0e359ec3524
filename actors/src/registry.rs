//! Where actors find each other. Every peer is a [`Recipient`] of the one message type it is
//! sent, bound once at start-up; a supervised actor keeps its address across restarts, so a
//! restarted actor is reachable at once. Tests bind probes in place of real actors.

use std::sync::{Arc, OnceLock};

use actix::prelude::*;

use crate::halt_gate::HaltGate;
use crate::messages::{
    AcquirePermit, AcquireSend, BalancesUpdated, CancelEverything, CheckIntents, Dispatch,
    DispatchOutcome, FeedHealth, FillApplied, IntentOutcome, IntentsDurable, InventoryChanged,
    ListOpenOrders, OrderResolved, OrderUpdate, QuoteTarget, ReferenceTicks, RequestRequote,
    ResolveIntent, ResolveOrders, Resync, StorageRecovered, TradingStateChanged, VenueEvent,
    VenueRequest, VenueSnapshot,
};
use crate::venue_book::VenueBooks;

/// A peer bound once. A peer on another thread (the venue side) is sent to through
/// [`crate::after_turn`]: from the hot arbiter, after its runnable work, in order with its
/// store writes; from anywhere else, at once.
#[derive(Debug)]
pub struct Peer<M: Message + Send>(OnceLock<(Recipient<M>, Thread)>)
where
    M::Result: Send;

/// Where a peer runs, as seen from the hot arbiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thread {
    Same,
    Elsewhere,
}

impl<M: Message + Send> Default for Peer<M>
where
    M::Result: Send,
{
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<M: Message + Send + 'static> Peer<M>
where
    M::Result: Send,
{
    /// Binds a peer on the hot arbiter; a second bind is ignored (and reported as false).
    pub fn bind(&self, r: Recipient<M>) -> bool {
        self.0.set((r, Thread::Same)).is_ok()
    }

    /// Binds a peer on another thread (the venue arbiter): see [`Peer`].
    pub fn bind_elsewhere(&self, r: Recipient<M>) -> bool {
        self.0.set((r, Thread::Elsewhere)).is_ok()
    }

    /// Sends without waiting; a message to an unbound peer is dropped and logged.
    pub fn do_send(&self, msg: M) {
        match self.0.get() {
            Some((r, Thread::Same)) => r.do_send(msg),
            Some((r, Thread::Elsewhere)) => {
                let r = r.clone();
                crate::after_turn::after_turn(move || r.do_send(msg));
            }
            None => tracing::warn!(
                message = std::any::type_name::<M>(),
                "peer not bound, message dropped"
            ),
        }
    }

    /// The recipient, if bound.
    pub fn get(&self) -> Option<&Recipient<M>> {
        self.0.get().map(|(r, _)| r)
    }
}

/// Every peer of every actor, and the shared state they read without a message hop.
#[derive(Debug)]
pub struct Registry {
    /// Whether a place may leave the process (RiskGuard opens and closes it).
    pub gate: Arc<HaltGate>,
    /// The venue's own book per market (its depth stream writes, everyone reads).
    pub books: Arc<VenueBooks>,
    pub ticks_to_quotes: Peer<ReferenceTicks>,
    /// Staging only: the mock exchange follows the reference too.
    pub ticks_to_venue: Peer<ReferenceTicks>,
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
    pub sends: Peer<AcquireSend>,
    pub list_open_orders: Peer<ListOpenOrders>,
    pub storage_recovered: Vec<Peer<StorageRecovered>>,
}

impl Registry {
    /// A registry with every peer unbound, sharing `gate` and `books`.
    pub fn new(gate: Arc<HaltGate>, books: Arc<VenueBooks>) -> Self {
        Self {
            gate,
            books,
            ticks_to_quotes: Peer::default(),
            ticks_to_venue: Peer::default(),
            feed_health: Peer::default(),
            quote_targets: Peer::default(),
            requote: Peer::default(),
            inventory: Peer::default(),
            risk_check: Peer::default(),
            state_to_quotes: Peer::default(),
            state_to_orders: Peer::default(),
            balances: Peer::default(),
            fills_to_risk: Peer::default(),
            fills_to_orders: Peer::default(),
            intents_durable: Peer::default(),
            resolve_intent: Peer::default(),
            permits: Peer::default(),
            dispatch: Peer::default(),
            dispatch_outcome: Peer::default(),
            intent_outcome: Peer::default(),
            order_updates: Peer::default(),
            venue_snapshot: Peer::default(),
            order_resolved: Peer::default(),
            cancel_everything: Peer::default(),
            resolve_orders: Peer::default(),
            resync: Peer::default(),
            venue: Peer::default(),
            venue_events: Peer::default(),
            sends: Peer::default(),
            list_open_orders: Peer::default(),
            storage_recovered: vec![Peer::default(), Peer::default()],
        }
    }
}

/// Shared handle to the registry.
pub type Reg = Arc<Registry>;
