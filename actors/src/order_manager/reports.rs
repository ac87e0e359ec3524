//! OrderManager's handlers of what the venue reports: order updates from the account stream,
//! fills (stored once before they arrive here), listings of open orders (reconciliation, and
//! the listings a flatten waits for), and the answers to order lookups.

use actix::prelude::*;
use tracing::{debug, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::book::Transition;
use super::flatten::Listing;
use super::reconcile::{self, ListingUse};
use super::state::OrderEvent;
use super::{
    FINISHED_TRACES_KEPT, FillApplied, ORPHAN_GRACE_MS, OrderManager, OrderResolved, OrderUpdate,
    QuoteReason, UNMATCHED_KEPT_MS, VenueSnapshot,
};
use crate::intent::Intent;
use crate::messages::{RequestRequote, ResolveIntent};
use crate::types::{ClientOrderId, MarketId, VenueOrderId, now_ms};
use crate::venue::VenueOrder;

impl OrderManager {
    /// Applies what the venue says about one order; returns the order's market when it ended.
    pub(super) fn apply_venue_order(
        &mut self,
        id: &ClientOrderId,
        vo: &VenueOrder,
    ) -> Option<MarketId> {
        let seen = self.fill_sums.get(id).copied().unwrap_or_default();
        let ev = self.tracker.report_event(id, vo, seen);
        let market = self.tracker.get(id).map(|o| o.market.clone());
        if self.apply_and_persist(id, ev, None) {
            market
        } else {
            None
        }
    }

    /// Keeps the trace of a finished order for fills that arrive after it finished.
    pub(super) fn remember_trace(&mut self, venue_id: String, traceparent: String) {
        if self
            .finished_traces
            .insert(venue_id.clone(), traceparent)
            .is_none()
        {
            self.finished_order.push_back(venue_id);
        }
        while self.finished_order.len() > FINISHED_TRACES_KEPT {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished_traces.remove(&old);
            }
        }
    }

    /// Records the venue id of one of our orders and applies any update the account stream
    /// delivered for it before we knew the id.
    pub(super) fn assign_venue_id(&mut self, id: &ClientOrderId, v: VenueOrderId) {
        self.tracker.set_venue_id(id, v.clone());
        if let Some(vo) = self.unmatched.take(&v) {
            self.apply_venue_order(id, &vo);
        }
    }

    /// Adopts an order the venue holds and we did not know (stored as ours), and returns the
    /// cancel that removes it.
    fn adopt_orphan(&mut self, vo: &VenueOrder) -> Intent {
        warn!(venue_order_id = %vo.venue_order_id, market = %vo.market, "unknown order at the venue, cancelling it");
        let order = reconcile::adopted(vo);
        let id = order.client_order_id.clone();
        self.tracker.load_one(order.clone());
        self.persist(vec![Transition {
            order,
            from: None,
            event: "adopted",
            detail: Some("orphan at the venue".into()),
        }]);
        Intent::Cancel {
            client_order_id: id,
            market: vo.market.clone(),
            venue_order_id: Some(vo.venue_order_id.clone()),
        }
    }
}

impl Handler<OrderUpdate> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: OrderUpdate, ctx: &mut Context<Self>) {
        let vo = msg.0;
        match reconcile::find(&self.tracker, &vo) {
            Some(id) => {
                if let Some(market) = self.apply_venue_order(&id, &vo) {
                    self.work_market(&market, ctx);
                }
            }
            None => {
                // DeltaDeFi carries no client id, and its stream can report a new order before
                // the submit's answer names it: park the update until the id is assigned. Only
                // reconciliation, after a grace period, treats such an order as an orphan.
                self.unmatched.park(vo, now_ms(), UNMATCHED_KEPT_MS);
            }
        }
    }
}

impl Handler<FillApplied> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: FillApplied, ctx: &mut Context<Self>) {
        let f = msg.fill;
        *self.fills.entry(f.market.clone()).or_insert(0) += 1;
        // The fill joins the trace of the intent that placed the order, even after a restart
        // (the traceparent is stored with the order) or once the order has finished.
        let tp = f
            .client_order_id
            .as_ref()
            .and_then(|c| self.tracker.get(c))
            .or_else(|| {
                self.tracker
                    .by_venue(&f.venue_order_id)
                    .and_then(|c| self.tracker.get(c))
            })
            .and_then(|o| o.traceparent.clone())
            .or_else(|| self.finished_traces.get(f.venue_order_id.as_str()).cloned());
        let span = tracing::info_span!(
            "order_manager.fill",
            market = %f.market,
            client_order_id = f.client_order_id.as_ref().map_or("", |c| c.as_str()),
            venue_order_id = f.venue_order_id.as_str(),
            trade_id = %f.trade_id,
            side = f.side.as_str(),
            price = %f.price,
            size = %f.size,
        );
        let _ = span.set_parent(crate::trace::context_from(tp.as_deref()));
        let _fill = span.enter();
        let id = f
            .client_order_id
            .clone()
            .filter(|c| self.tracker.get(c).is_some())
            .or_else(|| self.tracker.by_venue(&f.venue_order_id).cloned());
        let Some(id) = id else { return };
        let sum = self.fill_sums.entry(id.clone()).or_default();
        *sum += f.size;
        let sum = *sum;
        let ev = self.tracker.fill_event(&id, sum);
        if self.apply_and_persist(&id, ev, None) {
            self.fill_sums.remove(&id);
            self.work_market(&f.market, ctx);
        }
    }
}

impl Handler<VenueSnapshot> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: VenueSnapshot, ctx: &mut Context<Self>) {
        if !self.loaded {
            return;
        }
        let market = msg.market.clone();
        let now = now_ms();
        let using = if self.flattener.wants_listing(&market, now) {
            // The listing a flatten waits for (asked after its cancel-all was answered).
            ListingUse::Flatten
        } else if self.flattener.in_progress(&market) {
            // During a flatten's cancel-all, a listing only updates what we know.
            ListingUse::Passive
        } else {
            ListingUse::Reconcile
        };
        let for_flatten = using == ListingUse::Flatten;
        let read = reconcile::read_listing(
            &self.tracker,
            &mut self.unmatched,
            &market,
            &msg.open_orders,
            using,
            now,
            ORPHAN_GRACE_MS,
        );
        let mut listing = Listing {
            waiting: read.waiting,
            ..Listing::default()
        };
        for (id, vo) in &read.ours {
            self.apply_venue_order(id, vo);
            let open = self.tracker.get(id).is_some_and(|o| !o.state.is_terminal());
            if for_flatten && open {
                listing.to_cancel.push(id.clone());
            }
        }
        if read.waiting > 0 {
            debug!(market = %market, waiting = read.waiting, "unmatched venue orders, waiting for a place's answer");
        }
        let mut orphans = Vec::new();
        for vo in &read.orphans {
            let cancel = self.adopt_orphan(vo);
            match (for_flatten, cancel.client_order_id()) {
                (true, Some(id)) => listing.to_cancel.push(id.clone()),
                _ => orphans.push(cancel),
            }
        }
        self.resolve(read.missing);
        let listed = read.listed;
        if for_flatten {
            info!(market = %market, venue_open = listed, to_cancel = listing.to_cancel.len(),
                  waiting = listing.waiting, "flatten: venue listed");
            let steps = self.flattener.listed(&market, listing, now);
            self.run_flatten(steps, ctx);
            return;
        }
        if using == ListingUse::Passive {
            return;
        }
        let first = self.reconciled.insert(market.clone());
        info!(market = %market, venue_open = listed, orphans = orphans.len(), "reconciled with the venue");
        if !orphans.is_empty() {
            // The root of the orphans' cancels: the reconciliation that found them.
            let cx = tracing::info_span!("order_manager.reconcile", market = %market, orphans = orphans.len())
                .context();
            self.submit(market.clone(), orphans, None, None, cx, ctx);
        }
        if first {
            self.reg.requote.do_send(RequestRequote {
                market: Some(market),
                reason: QuoteReason::Reconciliation,
            });
        }
    }
}

impl Handler<OrderResolved> for OrderManager {
    type Result = ();
    fn handle(&mut self, msg: OrderResolved, ctx: &mut Context<Self>) {
        let id = msg.client_order_id;
        let market = self.tracker.get(&id).map(|o| o.market.clone());
        match &msg.venue_order {
            Some(vo) => {
                self.apply_venue_order(&id, vo);
                if self.cancel_failed.remove(&id) && !vo.status.is_terminal() {
                    warn!(client_order_id = %id, "cancel failed but the order is still open, cancelling again");
                    let cancel = Intent::Cancel {
                        client_order_id: id.clone(),
                        market: vo.market.clone(),
                        venue_order_id: Some(vo.venue_order_id.clone()),
                    };
                    self.submit(
                        vo.market.clone(),
                        vec![cancel],
                        None,
                        None,
                        opentelemetry::Context::new(),
                        ctx,
                    );
                }
            }
            None => {
                self.cancel_failed.remove(&id);
                self.apply_and_persist(
                    &id,
                    OrderEvent::NotFound,
                    Some("not found at the venue".into()),
                );
            }
        }
        // Settles the outbox row of a place whose outcome was unknown (a no-op otherwise).
        self.reg.resolve_intent.do_send(ResolveIntent {
            client_order_id: id,
            venue_order_id: msg.venue_order.map(|vo| vo.venue_order_id),
        });
        if let Some(m) = market {
            self.work_market(&m, ctx);
        }
    }
}
