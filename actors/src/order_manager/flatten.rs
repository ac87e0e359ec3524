//! Flattening a market at the venue: the pure core behind every halt, shutdown and start.
//!
//! A halt is not done when a cancel-all is sent, nor when one answered: the venue may still list
//! orders of ours (one placed while the cancel-all was in flight, one it missed, one whose
//! cancel-all answer was garbage). A flatten therefore runs to a confirmation:
//!
//! 1. `CancelAll`: one cancel-all for the market is on its way. A flatten requested while one is
//!    already under way joins it; the cancel-all in flight counts only once it is answered.
//! 2. `Listing`: the venue's open orders of the market are asked for.
//! 3. `Cancelling`: every order the listing showed is cancelled one by one; when all those
//!    cancels have an outcome, the market is listed again (after `relist_after_ms` if some
//!    order could not be cancelled yet, such as one whose place is still unanswered).
//! 4. `Flat`: a listing showed no open order of ours. Only this ends the flatten.
//!
//! A step whose answer never comes (a lost outcome, a listing request dropped by a restart)
//! cannot stall a flatten: [`Flattener::overdue`] moves a phase that waited too long on to the
//! next listing.
//!
//! It takes `now_ms` and returns what to do ([`FlattenStep`]); it imports no actix.

use std::collections::{BTreeSet, HashMap};

use crate::intent::Intent;
use crate::types::{ClientOrderId, MarketId};

/// Where the flatten of one market stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlattenPhase {
    /// A cancel-all is on its way (or about to be), since `since_ms`.
    CancelAll { since_ms: i64 },
    /// Waiting for the venue's open orders (not before `not_before_ms`).
    Listing { not_before_ms: i64 },
    /// Waiting for the outcomes of these cancels, since `since_ms`.
    Cancelling {
        ids: BTreeSet<ClientOrderId>,
        since_ms: i64,
    },
    /// Confirmed: the venue listed nothing open.
    Flat,
}

/// What the owner must do next for a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlattenStep {
    /// Send one cancel-all.
    CancelAll(MarketId),
    /// Ask the venue for the market's open orders, not before `at_ms`.
    List { market: MarketId, at_ms: i64 },
    /// Cancel these orders one by one.
    Cancel(MarketId, Vec<ClientOrderId>),
    /// The venue lists nothing open: the flatten is confirmed.
    Confirmed(MarketId),
}

/// What one listing of the venue showed, as the owner matched it with its orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Open at the venue and ours (known or adopted): to be cancelled.
    pub to_cancel: Vec<ClientOrderId>,
    /// Open at the venue but not cancellable yet (possibly ours, its place unanswered).
    pub waiting: usize,
}

/// The flattens of every market.
#[derive(Debug, Clone)]
pub struct Flattener {
    phases: HashMap<MarketId, FlattenPhase>,
    relist_after_ms: i64,
}

impl Flattener {
    /// No market flattening; a listing that still shows orders is repeated after
    /// `relist_after_ms`.
    pub fn new(relist_after_ms: i64) -> Self {
        Self {
            phases: HashMap::new(),
            relist_after_ms,
        }
    }

    /// The phase of `market` (`None`: never flattened since start).
    pub fn phase(&self, market: &MarketId) -> Option<&FlattenPhase> {
        self.phases.get(market)
    }

    /// True while a flatten of `market` is under way (not yet confirmed).
    pub fn in_progress(&self, market: &MarketId) -> bool {
        self.phases
            .get(market)
            .is_some_and(|p| *p != FlattenPhase::Flat)
    }

    /// True when the last flatten of `market` was confirmed.
    pub fn is_flat(&self, market: &MarketId) -> bool {
        self.phases.get(market) == Some(&FlattenPhase::Flat)
    }

    /// Starts flattening `market`; a flatten already under way goes on (its cancel-all in
    /// flight is waited for).
    pub fn start(&mut self, market: &MarketId, now_ms: i64) -> Vec<FlattenStep> {
        if self.in_progress(market) {
            return Vec::new();
        }
        self.phases
            .insert(market.clone(), FlattenPhase::CancelAll { since_ms: now_ms });
        vec![FlattenStep::CancelAll(market.clone())]
    }

    /// Moves on every phase that has waited longer than `max_wait_ms` for its answer: to a
    /// (new) listing of the venue.
    pub fn overdue(&mut self, now_ms: i64, max_wait_ms: i64) -> Vec<FlattenStep> {
        let late: Vec<MarketId> = self
            .phases
            .iter()
            .filter(|(_, p)| match p {
                FlattenPhase::CancelAll { since_ms }
                | FlattenPhase::Cancelling { since_ms, .. } => now_ms - since_ms > max_wait_ms,
                FlattenPhase::Listing { not_before_ms } => now_ms - not_before_ms > max_wait_ms,
                FlattenPhase::Flat => false,
            })
            .map(|(m, _)| m.clone())
            .collect();
        late.iter().flat_map(|m| self.list(m, now_ms)).collect()
    }

    /// Forgets a confirmed flatten when trading resumes, so that the next halt starts anew.
    pub fn resume(&mut self, market: &MarketId) {
        if self.is_flat(market) {
            self.phases.remove(market);
        }
    }

    /// The cancel-all of `market` was answered (whatever the answer, or none): list.
    pub fn cancel_all_done(&mut self, market: &MarketId, now_ms: i64) -> Vec<FlattenStep> {
        match self.phases.get(market) {
            Some(FlattenPhase::CancelAll { .. }) => self.list(market, now_ms),
            _ => Vec::new(),
        }
    }

    /// Intents that were never sent (RiskGuard could not be asked): a flatten waiting for
    /// their cancels goes on with a listing instead.
    pub fn intents_dropped(&mut self, intents: &[Intent], now_ms: i64) -> Vec<FlattenStep> {
        let mut steps = Vec::new();
        for i in intents {
            match i {
                Intent::CancelAll { market } => {
                    steps.extend(self.cancel_all_failed(market, now_ms))
                }
                Intent::Cancel {
                    market,
                    client_order_id,
                    ..
                } => steps.extend(self.cancel_done(market, client_order_id, now_ms)),
                Intent::Place { .. } => {}
            }
        }
        steps
    }

    /// The cancel-all of `market` could not be sent at all (never reached risk or the outbox):
    /// the venue is listed instead, and whatever it shows is cancelled one by one.
    pub fn cancel_all_failed(&mut self, market: &MarketId, now_ms: i64) -> Vec<FlattenStep> {
        self.cancel_all_done(market, now_ms)
    }

    fn list(&mut self, market: &MarketId, at_ms: i64) -> Vec<FlattenStep> {
        self.phases.insert(
            market.clone(),
            FlattenPhase::Listing {
                not_before_ms: at_ms,
            },
        );
        vec![FlattenStep::List {
            market: market.clone(),
            at_ms,
        }]
    }

    /// True when `market` waits for a listing that may be used at `now_ms`.
    pub fn wants_listing(&self, market: &MarketId, now_ms: i64) -> bool {
        matches!(self.phases.get(market), Some(FlattenPhase::Listing { not_before_ms }) if *not_before_ms <= now_ms)
    }

    /// A listing of `market`'s open orders arrived.
    pub fn listed(&mut self, market: &MarketId, listing: Listing, now_ms: i64) -> Vec<FlattenStep> {
        if !self.wants_listing(market, now_ms) {
            return Vec::new();
        }
        if listing.to_cancel.is_empty() && listing.waiting == 0 {
            self.phases.insert(market.clone(), FlattenPhase::Flat);
            return vec![FlattenStep::Confirmed(market.clone())];
        }
        if listing.to_cancel.is_empty() {
            return self.list(market, now_ms + self.relist_after_ms);
        }
        let ids: BTreeSet<ClientOrderId> = listing.to_cancel.iter().cloned().collect();
        self.phases.insert(
            market.clone(),
            FlattenPhase::Cancelling {
                ids,
                since_ms: now_ms,
            },
        );
        vec![FlattenStep::Cancel(market.clone(), listing.to_cancel)]
    }

    /// A cancel of `id` in `market` has an outcome (done or failed for good).
    pub fn cancel_done(
        &mut self,
        market: &MarketId,
        id: &ClientOrderId,
        now_ms: i64,
    ) -> Vec<FlattenStep> {
        let Some(FlattenPhase::Cancelling { ids, .. }) = self.phases.get_mut(market) else {
            return Vec::new();
        };
        ids.remove(id);
        if ids.is_empty() {
            self.list(market, now_ms)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> MarketId {
        MarketId("ADAUSDM".into())
    }
    fn c(s: &str) -> ClientOrderId {
        ClientOrderId(s.into())
    }

    #[test]
    fn a_flatten_ends_only_when_a_listing_is_empty() {
        let mut f = Flattener::new(500);
        assert_eq!(f.start(&m(), 0), vec![FlattenStep::CancelAll(m())]);
        assert!(f.in_progress(&m()));
        // A second halt while the cancel-all is in flight joins it: no second cancel-all.
        assert_eq!(f.start(&m(), 1), vec![]);
        // A listing before the cancel-all answered is not the one we wait for.
        assert_eq!(f.listed(&m(), Listing::default(), 0), vec![]);
        assert_eq!(
            f.cancel_all_done(&m(), 10),
            vec![FlattenStep::List {
                market: m(),
                at_ms: 10
            }]
        );
        // The venue still lists two of ours (placed while the cancel-all was in flight).
        let listing = Listing {
            to_cancel: vec![c("a"), c("b")],
            waiting: 0,
        };
        assert_eq!(
            f.listed(&m(), listing, 20),
            vec![FlattenStep::Cancel(m(), vec![c("a"), c("b")])]
        );
        assert_eq!(f.cancel_done(&m(), &c("a"), 30), vec![]);
        assert_eq!(
            f.cancel_done(&m(), &c("b"), 40),
            vec![FlattenStep::List {
                market: m(),
                at_ms: 40
            }]
        );
        assert!(!f.is_flat(&m()));
        assert_eq!(
            f.listed(&m(), Listing::default(), 50),
            vec![FlattenStep::Confirmed(m())]
        );
        assert!(f.is_flat(&m()));
        assert!(!f.in_progress(&m()));
        // Trading resumes; the next halt starts a new flatten.
        f.resume(&m());
        assert_eq!(f.start(&m(), 60), vec![FlattenStep::CancelAll(m())]);
    }

    #[test]
    fn a_lost_answer_does_not_stall_the_flatten() {
        let mut f = Flattener::new(500);
        f.start(&m(), 0);
        assert_eq!(f.overdue(5_000, 10_000), vec![]);
        // The cancel-all's outcome never came: list the venue instead.
        assert_eq!(
            f.overdue(10_001, 10_000),
            vec![FlattenStep::List {
                market: m(),
                at_ms: 10_001
            }]
        );
        f.listed(
            &m(),
            Listing {
                to_cancel: vec![c("a")],
                waiting: 0,
            },
            10_002,
        );
        // The cancel's outcome never came either.
        assert_eq!(
            f.overdue(20_003, 10_000),
            vec![FlattenStep::List {
                market: m(),
                at_ms: 20_003
            }]
        );
        assert_eq!(
            f.listed(&m(), Listing::default(), 20_004),
            vec![FlattenStep::Confirmed(m())]
        );
        assert_eq!(
            f.overdue(99_999, 10_000),
            vec![],
            "a flat market waits for nothing"
        );
    }

    #[test]
    fn an_order_that_cannot_be_cancelled_yet_is_listed_again_later() {
        let mut f = Flattener::new(500);
        f.start(&m(), 0);
        f.cancel_all_done(&m(), 0);
        let waiting = Listing {
            to_cancel: vec![],
            waiting: 1,
        };
        assert_eq!(
            f.listed(&m(), waiting, 100),
            vec![FlattenStep::List {
                market: m(),
                at_ms: 600
            }]
        );
        assert!(!f.wants_listing(&m(), 599));
        assert_eq!(f.listed(&m(), Listing::default(), 300), vec![], "too early");
        assert_eq!(
            f.listed(&m(), Listing::default(), 600),
            vec![FlattenStep::Confirmed(m())]
        );
    }
}
