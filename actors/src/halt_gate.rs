//! The halt gate: whether a new order may leave the process, per market, readable from any
//! thread without a message hop.
//!
//! A halt decided by RiskGuard (kill switch, daily loss, stale or unconfirmed reference,
//! storage, shutdown) must stop places at once, not when a message reaches the venue side.
//! RiskGuard sets a market's flag synchronously when it decides the market's state; the store
//! thread's health flag closes the gate the moment a commit fails; a fatal supervision report
//! latches it closed. The outbox consults it before dispatching a place, and the send path
//! ([`crate::rate_limiter::SendGate`]) consults it again immediately before the place is
//! written to the venue, so no place leaves after a halt engaged.
//!
//! Cancels never consult the gate: they only reduce exposure.
//!
//! Invariant: the gate starts closed for every market; only RiskGuard's first evaluation, after
//! it has read positions, latched halts and pending operator commands from SQLite, opens it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::types::MarketId;

/// Per-market "may place" flags plus the global conditions that override them.
#[derive(Debug)]
pub struct HaltGate {
    /// A fatal condition (crash loop, dead actor): latched closed for the process's life.
    fatal: AtomicBool,
    /// The store's health: true while SQLite cannot commit (shared with the store thread).
    storage_failing: Arc<AtomicBool>,
    markets: HashMap<MarketId, AtomicBool>,
}

impl HaltGate {
    /// A gate for `markets`, closed for all of them, following `storage_failing`.
    pub fn new(
        markets: impl IntoIterator<Item = MarketId>,
        storage_failing: Arc<AtomicBool>,
    ) -> Arc<HaltGate> {
        Arc::new(HaltGate {
            fatal: AtomicBool::new(false),
            storage_failing,
            markets: markets
                .into_iter()
                .map(|m| (m, AtomicBool::new(false)))
                .collect(),
        })
    }

    /// A gate open for `markets` with no storage to watch: for tests of one transport alone.
    pub fn open_for_tests(markets: impl IntoIterator<Item = MarketId>) -> Arc<HaltGate> {
        let g = HaltGate::new(markets, Arc::new(AtomicBool::new(false)));
        for f in g.markets.values() {
            f.store(true, Ordering::SeqCst);
        }
        g
    }

    /// True when a new order in `market` may be sent now.
    pub fn allows_place(&self, market: &MarketId) -> bool {
        !self.fatal.load(Ordering::SeqCst)
            && !self.storage_failing.load(Ordering::SeqCst)
            && self
                .markets
                .get(market)
                .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Opens (`true`) or closes a market; RiskGuard's decision.
    pub fn set_market(&self, market: &MarketId, open: bool) {
        if let Some(f) = self.markets.get(market) {
            f.store(open, Ordering::SeqCst);
        }
    }

    /// Closes every market for good: a fatal condition.
    pub fn close_fatal(&self) {
        self.fatal.store(true, Ordering::SeqCst);
        for f in self.markets.values() {
            f.store(false, Ordering::SeqCst);
        }
    }

    /// True once a fatal condition closed the gate.
    pub fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::SeqCst)
    }

    /// True while the store cannot commit.
    pub fn storage_failing(&self) -> bool {
        self.storage_failing.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MarketId {
        MarketId(s.into())
    }

    #[test]
    fn closed_until_opened_and_overridden_by_storage_and_fatal() {
        let storage = Arc::new(AtomicBool::new(false));
        let g = HaltGate::new([m("ADAUSDM"), m("NIGHTUSDM")], storage.clone());
        assert!(!g.allows_place(&m("ADAUSDM")), "closed at start");
        g.set_market(&m("ADAUSDM"), true);
        assert!(g.allows_place(&m("ADAUSDM")));
        assert!(!g.allows_place(&m("NIGHTUSDM")));
        assert!(!g.allows_place(&m("OTHER")), "unknown markets never place");
        storage.store(true, Ordering::SeqCst);
        assert!(!g.allows_place(&m("ADAUSDM")), "storage failing closes it");
        storage.store(false, Ordering::SeqCst);
        assert!(g.allows_place(&m("ADAUSDM")));
        g.close_fatal();
        g.set_market(&m("ADAUSDM"), true);
        assert!(!g.allows_place(&m("ADAUSDM")), "fatal is latched");
        assert!(g.is_fatal());
    }
}
