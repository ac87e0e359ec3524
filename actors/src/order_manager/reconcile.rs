//! The reconciliation core: what a listing of the venue's open orders says against ours. Pure
//! (no actix): OrderManager applies what it decides.
//!
//! A listed order is ours when its client id or venue id is one we know. An order we do not
//! know may still be ours: DeltaDeFi names an order when it is built, before the submit's answer
//! tells us the name, so while a place of ours in that market waits unnamed, an unknown order
//! waits too, up to a grace period from when it was first seen. After that it is an orphan, to
//! be adopted and cancelled. Orders of ours the listing does not show (and those whose outcome
//! is unknown) are looked up, never assumed gone.

use std::collections::{HashMap, HashSet};

use super::book::OrderTracker;
use crate::orders::{Order, OrderState};
use crate::types::{ClientOrderId, MarketId, Slot, VenueOrderId};
use crate::venue::VenueOrder;

/// Venue orders reported before we knew their id: the latest report and when first seen.
#[derive(Debug, Default)]
pub struct Unmatched {
    reports: HashMap<VenueOrderId, (VenueOrder, i64)>,
}

impl Unmatched {
    /// Keeps a report of an order we cannot match yet (the latest one wins, the first-seen
    /// time stays), forgetting reports older than `keep_ms`.
    pub fn park(&mut self, vo: VenueOrder, now_ms: i64, keep_ms: i64) {
        self.reports.retain(|_, (_, seen)| now_ms - *seen < keep_ms);
        match self.reports.get_mut(&vo.venue_order_id) {
            Some(entry) => entry.0 = vo,
            None => {
                self.reports.insert(vo.venue_order_id.clone(), (vo, now_ms));
            }
        }
    }

    /// The parked report of `venue_id`, now that we know whose it is.
    pub fn take(&mut self, venue_id: &VenueOrderId) -> Option<VenueOrder> {
        self.reports.remove(venue_id).map(|(vo, _)| vo)
    }

    /// When `vo` was first seen unmatched (now, if never before).
    fn first_seen(&mut self, vo: &VenueOrder, now_ms: i64) -> i64 {
        self.reports
            .entry(vo.venue_order_id.clone())
            .or_insert((vo.clone(), now_ms))
            .1
    }

    /// Forgets everything (a restart).
    pub fn clear(&mut self) {
        self.reports.clear();
    }
}

/// What a listing is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingUse {
    /// Reconciliation: unknown orders past the grace are orphans.
    Reconcile,
    /// The listing a flatten waits for: the same, and every open order is to be cancelled.
    Flatten,
    /// A listing during a flatten's cancel-all: it only updates what we know.
    Passive,
}

/// What one listing of a market says.
#[derive(Debug, Default, PartialEq)]
pub struct ListingRead {
    /// Listed orders that are ours, with what the venue says of each.
    pub ours: Vec<(ClientOrderId, VenueOrder)>,
    /// Unknown orders that may still be ours (a place of ours waits for its name).
    pub waiting: usize,
    /// Unknown orders past the grace: to adopt and cancel (never under `Passive`).
    pub orphans: Vec<VenueOrder>,
    /// Our orders in the market to look up: not listed though named, or of unknown outcome.
    pub missing: Vec<ClientOrderId>,
    /// How many distinct open orders the venue listed in the market.
    pub listed: usize,
}

/// Our order `vo` is, by client id where the venue carries one, else by venue id.
pub fn find(tracker: &OrderTracker, vo: &VenueOrder) -> Option<ClientOrderId> {
    vo.client_order_id
        .as_ref()
        .filter(|c| tracker.get(c).is_some())
        .cloned()
        .or_else(|| tracker.by_venue(&vo.venue_order_id).cloned())
}

/// Reads the venue's `open_orders` for `market` against our orders. An order listed twice
/// counts once. `grace_ms` is how long an unknown order may wait for a place's answer.
pub fn read_listing(
    tracker: &OrderTracker,
    unmatched: &mut Unmatched,
    market: &MarketId,
    open_orders: &[VenueOrder],
    using: ListingUse,
    now_ms: i64,
    grace_ms: i64,
) -> ListingRead {
    let mut read = ListingRead::default();
    let mut listed: HashSet<&VenueOrderId> = HashSet::new();
    // A place of ours still waiting for the venue's name for its order.
    let unnamed_in_flight = tracker
        .orders()
        .any(|o| &o.market == market && o.venue_order_id.is_none() && !o.state.is_terminal());
    for vo in open_orders
        .iter()
        .filter(|o| &o.market == market && !o.status.is_terminal())
    {
        if !listed.insert(&vo.venue_order_id) {
            continue;
        }
        if let Some(id) = find(tracker, vo) {
            read.ours.push((id, vo.clone()));
            continue;
        }
        let first_seen = unmatched.first_seen(vo, now_ms);
        if unnamed_in_flight && now_ms - first_seen < grace_ms {
            read.waiting += 1;
        } else if using != ListingUse::Passive {
            unmatched.take(&vo.venue_order_id);
            read.orphans.push(vo.clone());
        }
    }
    read.listed = listed.len();
    read.missing = tracker
        .orders()
        .filter(|o| &o.market == market)
        .filter(|o| match (&o.venue_order_id, o.state) {
            (_, OrderState::Unknown) => true,
            (Some(v), _) => !listed.contains(v),
            (None, _) => false,
        })
        .map(|o| o.client_order_id.clone())
        .collect();
    read
}

/// The record of an orphan we adopt in order to cancel it: working, at a slot no quote uses.
pub fn adopted(vo: &VenueOrder) -> Order {
    Order {
        client_order_id: ClientOrderId(format!("orphan-{}", vo.venue_order_id).into()),
        market: vo.market.clone(),
        slot: Slot {
            side: vo.side,
            level: u8::MAX,
        },
        side: vo.side,
        price: vo.price,
        size: vo.size,
        filled: vo.filled,
        state: OrderState::Working,
        venue_order_id: Some(vo.venue_order_id.clone()),
        created_at_ms: vo.ts_ms,
        traceparent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Side;
    use crate::venue::VenueOrderStatus;
    use rust_decimal::Decimal;

    const GRACE: i64 = 30_000;

    fn m() -> MarketId {
        MarketId("ADAUSDM".into())
    }

    fn venue(id: &str, client: Option<&str>) -> VenueOrder {
        VenueOrder {
            venue_order_id: VenueOrderId(id.into()),
            client_order_id: client.map(|c| ClientOrderId(c.into())),
            market: m(),
            side: Side::Buy,
            price: Decimal::new(45, 2),
            size: Decimal::from(100),
            filled: Decimal::ZERO,
            status: VenueOrderStatus::Open,
            ts_ms: 1,
        }
    }

    fn ours(id: &str, venue_id: Option<&str>, state: OrderState) -> Order {
        Order {
            client_order_id: ClientOrderId(id.into()),
            venue_order_id: venue_id.map(|v| VenueOrderId(v.into())),
            state,
            traceparent: None,
            ..adopted(&venue("x", None))
        }
    }

    fn read_at(
        t: &OrderTracker,
        unmatched: &mut Unmatched,
        listing: &[VenueOrder],
        using: ListingUse,
        now_ms: i64,
    ) -> ListingRead {
        read_listing(t, unmatched, &m(), listing, using, now_ms, GRACE)
    }

    fn tracker(orders: Vec<Order>) -> OrderTracker {
        let mut t = OrderTracker::new("mm", "t");
        t.load(orders);
        t
    }

    fn ids(v: &[ClientOrderId]) -> Vec<&str> {
        v.iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn listed_orders_are_ours_by_client_id_or_by_venue_id() {
        let t = tracker(vec![
            ours("a", Some("v-a"), OrderState::Working),
            ours("b", Some("v-b"), OrderState::Working),
        ]);
        let listing = [venue("v-a", None), venue("v-b", Some("b"))];
        let read = read_at(
            &t,
            &mut Unmatched::default(),
            &listing,
            ListingUse::Reconcile,
            0,
        );
        let found: Vec<&str> = read.ours.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(found, ["a", "b"]);
        assert!(read.orphans.is_empty() && read.missing.is_empty());
        assert_eq!(read.listed, 2);
    }

    #[test]
    fn an_unknown_order_waits_while_a_place_of_ours_is_unnamed_then_is_an_orphan() {
        let t = tracker(vec![ours("p", None, OrderState::PendingNew)]);
        let mut unmatched = Unmatched::default();
        let listing = [venue("v-x", None)];
        // First seen at 1,000: waiting until the grace from then is over, not a moment more.
        let mut read = ListingRead::default();
        for (now, waiting, orphans) in [
            (1_000, 1, 0),
            (1_000 + GRACE - 1, 1, 0),
            (1_000 + GRACE, 0, 1),
        ] {
            read = read_at(&t, &mut unmatched, &listing, ListingUse::Reconcile, now);
            assert_eq!(
                (read.waiting, read.orphans.len()),
                (waiting, orphans),
                "at {now}"
            );
        }
        assert_eq!(read.orphans[0].venue_order_id.as_str(), "v-x");
        assert!(
            unmatched.take(&VenueOrderId("v-x".into())).is_none(),
            "an orphan is no longer parked"
        );
    }

    #[test]
    fn with_no_place_of_ours_in_flight_an_unknown_order_is_an_orphan_at_once() {
        let t = tracker(vec![ours("a", Some("v-a"), OrderState::Working)]);
        let listing = [venue("v-a", None), venue("v-x", None)];
        let read = read_at(
            &t,
            &mut Unmatched::default(),
            &listing,
            ListingUse::Flatten,
            0,
        );
        assert_eq!(read.orphans.len(), 1);
        assert_eq!(read.ours.len(), 1);
    }

    #[test]
    fn a_passive_listing_adopts_nothing() {
        let t = tracker(vec![]);
        let read = read_listing(
            &t,
            &mut Unmatched::default(),
            &m(),
            &[venue("v-x", None)],
            ListingUse::Passive,
            0,
            GRACE,
        );
        assert_eq!(
            read,
            ListingRead {
                listed: 1,
                ..ListingRead::default()
            }
        );
    }

    #[test]
    fn an_order_listed_twice_is_one_orphan() {
        let t = tracker(vec![]);
        let listing = [venue("v-x", None), venue("v-x", None)];
        let read = read_at(
            &t,
            &mut Unmatched::default(),
            &listing,
            ListingUse::Reconcile,
            0,
        );
        assert_eq!((read.orphans.len(), read.listed), (1, 1));
    }

    #[test]
    fn ours_not_listed_and_ours_of_unknown_outcome_are_looked_up() {
        let t = tracker(vec![
            ours("gone", Some("v-gone"), OrderState::Working),
            ours("unknown", None, OrderState::Unknown),
            ours("listed-unknown", Some("v-u"), OrderState::Unknown),
            ours("unnamed", None, OrderState::PendingNew),
            ours("here", Some("v-here"), OrderState::Working),
        ]);
        let listing = [venue("v-here", None), venue("v-u", None)];
        let read = read_at(
            &t,
            &mut Unmatched::default(),
            &listing,
            ListingUse::Reconcile,
            0,
        );
        let mut missing = ids(&read.missing);
        missing.sort();
        assert_eq!(missing, ["gone", "listed-unknown", "unknown"]);
    }

    #[test]
    fn other_markets_and_finished_orders_are_not_read() {
        let t = tracker(vec![]);
        let mut other = venue("v-o", None);
        other.market = MarketId("OTHER".into());
        let mut done = venue("v-d", None);
        done.status = VenueOrderStatus::Cancelled;
        let read = read_listing(
            &t,
            &mut Unmatched::default(),
            &m(),
            &[other, done],
            ListingUse::Reconcile,
            0,
            GRACE,
        );
        assert_eq!(read, ListingRead::default());
    }

    #[test]
    fn a_parked_report_keeps_its_first_seen_time_and_old_ones_expire() {
        let mut u = Unmatched::default();
        u.park(venue("v-1", None), 0, 100);
        u.park(venue("v-1", None), 50, 100);
        assert_eq!(u.first_seen(&venue("v-1", None), 60), 0);
        let mut latest = Unmatched::default();
        latest.park(venue("v-1", None), 0, 100);
        let mut filled = venue("v-1", None);
        filled.filled = Decimal::ONE;
        latest.park(filled, 50, 100);
        let kept = latest.take(&VenueOrderId("v-1".into())).map(|v| v.filled);
        assert_eq!(kept, Some(Decimal::ONE), "the latest report wins");
        u.park(venue("v-2", None), 120, 100);
        assert!(u.take(&VenueOrderId("v-1".into())).is_none(), "expired");
        assert_eq!(
            u.take(&VenueOrderId("v-2".into()))
                .map(|v| v.venue_order_id.0),
            Some("v-2".into())
        );
    }
}
