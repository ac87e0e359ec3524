//! OrderManager's pure core: every order we know, the diff between a market's desired book and
//! its working orders, and the application of events to orders.
//!
//! It imports no actix. Its methods take `now_ms` and return what changed
//! ([`Transition`]s to persist, [`Intent`]s to risk-check); the actor persists and sends.
//!
//! Invariants: at most one quoting (non-cancelling) order is created per slot per diff; an
//! order in `PendingCancel` is never cancelled twice by a diff; terminal orders are dropped
//! from memory after their last transition is returned.

use std::time::Instant;

use rust_decimal::Decimal;

use super::state::{Order, OrderError, OrderEvent, OrderState};
use super::sums::{MarketSums, Share};
use crate::intent::Intent;
pub use crate::messages::{AssetUse, FundsInUse, OpenExposure};
use crate::messages::{DesiredOrder, OutboxRow};
pub use crate::orders::Transition;
use crate::pricing_rules::moved_beyond;
use crate::store::Write;
use crate::types::{ClientOrderId, FastMap, MarketId, Side, VenueOrderId};
use crate::venue_book::OwnOrder;

impl FundsInUse {
    /// Adds a live order of `market` (acknowledged by the venue or not).
    pub fn add(
        &mut self,
        market: &MarketId,
        side: Side,
        price: Decimal,
        remaining: Decimal,
        acked: bool,
    ) {
        let (base, quote) = market.assets();
        self.add_to(&base, &quote, side, price, remaining, acked);
    }

    /// As [`Self::add`], for a market whose asset names are known: no allocation once both
    /// assets are in the map.
    pub fn add_to(
        &mut self,
        base: &str,
        quote: &str,
        side: Side,
        price: Decimal,
        remaining: Decimal,
        acked: bool,
    ) {
        let asset = match side {
            Side::Buy => quote,
            Side::Sell => base,
        };
        if !self.0.contains_key(asset) {
            self.0.insert(asset.to_string(), AssetUse::default());
        }
        let Some(u) = self.0.get_mut(asset) else {
            return;
        };
        match side {
            Side::Buy => {
                let notional = price.saturating_mul(remaining);
                u.buy_notional = u.buy_notional.saturating_add(notional);
                if !acked {
                    u.unacked_buy_notional = u.unacked_buy_notional.saturating_add(notional);
                }
            }
            Side::Sell => {
                u.sell_base = u.sell_base.saturating_add(remaining);
                if !acked {
                    u.unacked_sell_base = u.unacked_sell_base.saturating_add(remaining);
                }
            }
        }
    }
}

impl FundsInUse {
    /// Adds one market's live buys (their notional in its quote asset) and live sells (their
    /// base size), each `(all, unacknowledged)`; `None` where the market has none on that side,
    /// so that its asset does not appear for it.
    fn add_market(
        &mut self,
        market: &MarketId,
        buys: Option<(Decimal, Decimal)>,
        sells: Option<(Decimal, Decimal)>,
    ) {
        if buys.is_none() && sells.is_none() {
            return;
        }
        let (base, quote) = market.assets();
        if let Some((all, unacked)) = buys {
            let u = self.0.entry(quote).or_default();
            u.buy_notional = u.buy_notional.saturating_add(all);
            u.unacked_buy_notional = u.unacked_buy_notional.saturating_add(unacked);
        }
        if let Some((all, unacked)) = sells {
            let u = self.0.entry(base).or_default();
            u.sell_base = u.sell_base.saturating_add(all);
            u.unacked_sell_base = u.unacked_sell_base.saturating_add(unacked);
        }
    }
}

/// Every live order and the id generator.
#[derive(Debug)]
pub struct OrderTracker {
    /// `<prefix>-<run>-`, then the digits of the last id made (written over for the next).
    id_buf: String,
    prefix_len: usize,
    seq: u64,
    orders: FastMap<ClientOrderId, Order>,
    by_venue: FastMap<VenueOrderId, ClientOrderId>,
    /// Each market's exposure and funds in use, kept as its orders change (a handful of
    /// markets: scanned, not hashed).
    sums: Vec<MarketSums>,
}

impl OrderTracker {
    /// Creates an empty tracker; ids are `<prefix>-<run>-<seq>`, with `run` unique per process.
    pub fn new(prefix: &str, run: &str) -> Self {
        let id_buf = format!("{prefix}-{run}-");
        Self {
            prefix_len: id_buf.len(),
            id_buf,
            seq: 0,
            orders: FastMap::default(),
            by_venue: FastMap::default(),
            sums: Vec::new(),
        }
    }

    /// Replaces the tracked orders with `orders` (loaded from SQLite after a restart).
    pub fn load(&mut self, orders: Vec<Order>) {
        self.orders.clear();
        self.by_venue.clear();
        self.sums.clear();
        for o in orders.into_iter().filter(|o| !o.state.is_terminal()) {
            self.load_one(o);
        }
    }

    /// Tracks one more order (an orphan adopted from the venue).
    pub fn load_one(&mut self, o: Order) {
        if let Some(v) = &o.venue_order_id {
            self.by_venue.insert(v.clone(), o.client_order_id.clone());
        }
        self.insert(o);
    }

    /// Tracks `o` (in place of an order with its id, if any) and counts it in its market's sums.
    fn insert(&mut self, o: Order) {
        let (market, after) = (o.market.clone(), Share::of(&o));
        if let Some(old) = self.orders.insert(o.client_order_id.clone(), o) {
            self.recount(&old.market, Some(&Share::of(&old)), None);
        }
        self.recount(&market, None, Some(&after));
    }

    /// Changes the order `id` with `f` and its market's sums with it; `None` if not tracked.
    fn change<R>(&mut self, id: &ClientOrderId, f: impl FnOnce(&mut Order) -> R) -> Option<R> {
        let o = self.orders.get_mut(id)?;
        let before = Share::of(o);
        let r = f(o);
        let after = Share::of(o);
        if after != before {
            let market = o.market.clone();
            self.recount(&market, Some(&before), Some(&after));
        }
        Some(r)
    }

    /// Takes `before` out of `market`'s sums and puts `after` in, the orders map already
    /// changed; counts the market's orders afresh if a step was not exact (or an earlier one
    /// was not), so the sums are trusted again once an exact count is possible.
    fn recount(&mut self, market: &MarketId, before: Option<&Share>, after: Option<&Share>) {
        let i = match self.sums.iter().position(|s| &s.market == market) {
            Some(i) => i,
            None => {
                self.sums.push(MarketSums::new(market.clone()));
                self.sums.len() - 1
            }
        };
        let sums = &mut self.sums[i];
        if sums.exact {
            if let Some(s) = before {
                sums.count(s, false);
            }
            if let Some(s) = after {
                sums.count(s, true);
            }
            if sums.exact {
                return;
            }
        }
        let mut fresh = MarketSums::new(market.clone());
        for o in self.orders.values().filter(|o| &o.market == market) {
            fresh.count(&Share::of(o), true);
        }
        self.sums[i] = fresh;
    }

    fn next_id(&mut self) -> ClientOrderId {
        use std::fmt::Write as _;
        self.seq += 1;
        self.id_buf.truncate(self.prefix_len);
        // Writing into a String cannot fail.
        let _ = write!(self.id_buf, "{}", self.seq);
        ClientOrderId(self.id_buf.as_str().into())
    }

    /// Returns the order with this id, if live.
    pub fn get(&self, id: &ClientOrderId) -> Option<&Order> {
        self.orders.get(id)
    }

    /// Finds our id for a venue id.
    pub fn by_venue(&self, v: &VenueOrderId) -> Option<&ClientOrderId> {
        self.by_venue.get(v)
    }

    /// Iterates over live orders.
    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values()
    }

    /// How many of the market's orders are not finished.
    pub fn live(&self, market: &MarketId) -> usize {
        self.orders().filter(|o| &o.market == market).count()
    }

    /// How many of the market's orders rest at the venue (working or partially filled).
    pub fn working(&self, market: &MarketId) -> usize {
        self.orders()
            .filter(|o| {
                &o.market == market
                    && matches!(o.state, OrderState::Working | OrderState::PartiallyFilled)
            })
            .count()
    }

    /// Open-order figures of a market.
    pub fn exposure(&self, market: &MarketId) -> OpenExposure {
        match self.sums.iter().find(|s| &s.market == market) {
            Some(s) if s.exact => OpenExposure {
                open_orders: s.orders,
                open_buy: s.open_buy,
                open_sell: s.open_sell,
            },
            Some(_) => self.exposure_counted(market),
            None => OpenExposure::default(),
        }
    }

    /// [`Self::exposure`] added up from the orders (the sums could not be kept exact).
    fn exposure_counted(&self, market: &MarketId) -> OpenExposure {
        let mut e = OpenExposure::default();
        for o in self.orders.values().filter(|o| &o.market == market) {
            e.open_orders = e.open_orders.saturating_add(1);
            match o.side {
                Side::Buy => e.open_buy = e.open_buy.saturating_add(o.remaining()),
                Side::Sell => e.open_sell = e.open_sell.saturating_add(o.remaining()),
            }
        }
        e
    }

    /// Our live orders of `market` as they may rest on the venue's book; those being
    /// cancelled are marked so.
    pub fn own_orders(&self, market: &MarketId) -> Vec<OwnOrder> {
        self.orders
            .values()
            .filter(|o| &o.market == market && !o.state.is_terminal())
            .map(|o| OwnOrder {
                side: o.side,
                price: o.price,
                remaining: o.remaining(),
                cancelling: o.state == OrderState::PendingCancel,
            })
            .collect()
    }

    /// What every live order locks, by asset. Summed per market first (a handful of markets,
    /// told apart by their shared ids), then added to the asset map once per market and side:
    /// its names are worked out and its keys looked up per market, not per order.
    pub fn funds_in_use(&self) -> FundsInUse {
        if self.sums.iter().any(|s| !s.exact) {
            return self.funds_counted();
        }
        let mut f = FundsInUse::default();
        for s in &self.sums {
            f.add_market(
                &s.market,
                (s.live_buys > 0).then_some((s.buy_notional, s.unacked_buy_notional)),
                (s.live_sells > 0).then_some((s.sell_base, s.unacked_sell_base)),
            );
        }
        f
    }

    /// [`Self::funds_in_use`] added up from the orders (some market's sums could not be kept
    /// exact).
    fn funds_counted(&self) -> FundsInUse {
        // Per market: its buys (quote asset) and its sells (base asset), `None` until one is seen.
        type Sums<'a> = (
            &'a MarketId,
            Option<(Decimal, Decimal)>,
            Option<(Decimal, Decimal)>,
        );
        let mut markets: Vec<Sums<'_>> = Vec::new();
        for o in self.orders.values().filter(|o| !o.state.is_terminal()) {
            let acked = o.state.is_acknowledged();
            let i = match markets.iter().position(|m| m.0 == &o.market) {
                Some(i) => i,
                None => {
                    markets.push((&o.market, None, None));
                    markets.len() - 1
                }
            };
            let (amount, side) = match o.side {
                Side::Buy => (o.price.saturating_mul(o.remaining()), &mut markets[i].1),
                Side::Sell => (o.remaining(), &mut markets[i].2),
            };
            let (all, unacked) = side.get_or_insert((Decimal::ZERO, Decimal::ZERO));
            *all = all.saturating_add(amount);
            if !acked {
                *unacked = unacked.saturating_add(amount);
            }
        }
        let mut f = FundsInUse::default();
        for (market, buys, sells) in markets {
            f.add_market(market, buys, sells);
        }
        f
    }

    /// Computes the intents that turn the market's working orders into `desired`.
    /// Orders whose price is within `tolerance_bps` of the desired price and whose size matches
    /// are kept; others are cancelled and replaced. Ids for new orders are allocated here.
    pub fn diff(
        &mut self,
        market: &MarketId,
        desired: &[DesiredOrder],
        tolerance_bps: Decimal,
    ) -> Vec<Intent> {
        // The market's quoting orders by id, each marked once a desired order's slot took it:
        // a market has a handful, so scans beat a map of slots (and its allocations).
        let mut quoting: Vec<(&Order, bool)> = self
            .orders
            .values()
            .filter(|o| &o.market == market && o.state.is_quoting())
            .map(|o| (o, false))
            .collect();
        quoting.sort_unstable_by(|a, b| a.0.client_order_id.cmp(&b.0.client_order_id));
        let mut intents = Vec::with_capacity(quoting.len() + desired.len());
        let mut places: Vec<&DesiredOrder> = Vec::new();
        for d in desired {
            // The slot's orders are taken by the first desired order of the slot; the first of
            // them that matches is kept and the others are cancelled.
            let mut kept = false;
            for (o, taken) in quoting.iter_mut().filter(|(o, t)| !*t && o.slot == d.slot) {
                *taken = true;
                if !kept
                    && o.side == d.side
                    && o.size == d.size
                    && !moved_beyond(o.price, d.price, tolerance_bps)
                {
                    kept = true;
                } else {
                    intents.push(cancel_of(o));
                }
            }
            if !kept {
                places.push(d);
            }
        }
        // Orders in slots no longer desired.
        intents.extend(
            quoting
                .iter()
                .filter(|(_, t)| !t)
                .map(|(o, _)| cancel_of(o)),
        );
        intents.sort_by(|a, b| a.client_order_id().cmp(&b.client_order_id()));
        for d in places {
            let id = self.next_id();
            intents.push(Intent::Place {
                client_order_id: id,
                market: market.clone(),
                slot: d.slot,
                side: d.side,
                price: d.price,
                size: d.size,
            });
        }
        intents
    }

    /// Records approved intents (each with the traceparent of its span) for one transaction:
    /// each intent's order transitions, then its outbox row, numbered on from `*next_id`. The
    /// writes, in that order, and the rows to hand to OutboxWorker once they commit.
    pub fn record_approved(
        &mut self,
        approved: Vec<(Intent, Option<String>)>,
        next_id: &mut i64,
        now_ms: i64,
        tick_at: Option<Instant>,
    ) -> (Vec<Write>, Vec<OutboxRow>) {
        let mut writes = Vec::with_capacity(approved.len() * 2);
        let mut rows = Vec::with_capacity(approved.len());
        for (intent, traceparent) in approved {
            for transition in self.apply_intent(&intent, now_ms, traceparent.as_deref()) {
                writes.push(Write::Order {
                    transition,
                    ts_ms: now_ms,
                });
            }
            let mut row = OutboxRow::new(*next_id, intent, now_ms).with_traceparent(traceparent);
            row.tick_recv_at = tick_at;
            *next_id += 1;
            writes.push(Write::Outbox(row.clone()));
            rows.push(row);
        }
        (writes, rows)
    }

    /// Records an approved intent: creates the order of a place, moves the orders a cancel
    /// covers to `PendingCancel`. Returns the transitions to persist with the outbox row.
    pub fn apply_intent(
        &mut self,
        intent: &Intent,
        now_ms: i64,
        traceparent: Option<&str>,
    ) -> Vec<Transition> {
        match intent {
            Intent::Place {
                client_order_id,
                market,
                slot,
                side,
                price,
                size,
            } => {
                let order = Order {
                    client_order_id: client_order_id.clone(),
                    market: market.clone(),
                    slot: *slot,
                    side: *side,
                    price: *price,
                    size: *size,
                    filled: Decimal::ZERO,
                    state: OrderState::PendingNew,
                    venue_order_id: None,
                    created_at_ms: now_ms,
                    traceparent: traceparent.map(str::to_string),
                };
                self.insert(order.clone());
                vec![Transition {
                    order,
                    from: None,
                    event: "created",
                    detail: None,
                }]
            }
            Intent::Cancel {
                client_order_id, ..
            } => self
                .apply(client_order_id, &OrderEvent::CancelRequested, None)
                .ok()
                .flatten()
                .into_iter()
                .collect(),
            Intent::CancelAll { market } => {
                let mut ids: Vec<ClientOrderId> = self
                    .orders
                    .values()
                    .filter(|o| &o.market == market)
                    .map(|o| o.client_order_id.clone())
                    .collect();
                ids.sort();
                ids.iter()
                    .filter_map(|id| {
                        self.apply(id, &OrderEvent::CancelRequested, Some("cancel_all".into()))
                            .ok()
                            .flatten()
                    })
                    .collect()
            }
        }
    }

    /// Applies `ev` to the order `id`. Returns `Ok(None)` when the order is not tracked (already
    /// terminal and pruned) or nothing changed.
    ///
    /// # Errors
    /// [`OrderError::InvalidTransition`] when `ev` is not legal in the order's state.
    pub fn apply(
        &mut self,
        id: &ClientOrderId,
        ev: &OrderEvent,
        detail: Option<String>,
    ) -> Result<Option<Transition>, OrderError> {
        let Some(from) = self.orders.get(id).map(|o| o.state) else {
            return Ok(None);
        };
        let to = from.transition(ev)?;
        if to == from && !matches!(ev, OrderEvent::Filled { .. }) {
            return Ok(None);
        }
        let Some(order) = self.change(id, |o| {
            o.state = to;
            o.clone()
        }) else {
            return Ok(None);
        };
        let t = Transition {
            order,
            from: Some(from),
            event: ev.as_str(),
            detail,
        };
        if to.is_terminal() {
            self.remove(id);
        }
        Ok(Some(t))
    }

    /// Records the venue id of an acknowledged place.
    pub fn set_venue_id(&mut self, id: &ClientOrderId, venue: VenueOrderId) {
        if let Some(o) = self.orders.get_mut(id) {
            self.by_venue.insert(venue.clone(), id.clone());
            o.venue_order_id = Some(venue);
        }
    }

    /// Raises the filled size of an order to `filled` (fills and updates may arrive in any
    /// order; the larger cumulative figure wins). Returns true when it changed.
    pub fn set_filled(&mut self, id: &ClientOrderId, filled: Decimal) -> bool {
        if self.orders.get(id).is_none_or(|o| filled <= o.filled) {
            return false;
        }
        self.change(id, |o| o.filled = filled.min(o.size)).is_some()
    }

    /// A fill brought the order's filled size to `cumulative` (the sum of its fills seen):
    /// records it and returns the event to apply.
    pub fn fill_event(&mut self, id: &ClientOrderId, cumulative: Decimal) -> OrderEvent {
        self.set_filled(id, cumulative);
        OrderEvent::Filled {
            complete: self.get(id).is_some_and(|o| o.filled >= o.size),
        }
    }

    /// The venue reported the order as `vo` (stream, query or listing); `fills_seen` is the
    /// sum of its fills we applied. Records its venue id and filled size and returns the
    /// event to apply.
    pub fn report_event(
        &mut self,
        id: &ClientOrderId,
        vo: &crate::venue::VenueOrder,
        fills_seen: Decimal,
    ) -> OrderEvent {
        if self.get(id).is_some_and(|o| o.venue_order_id.is_none()) {
            self.set_venue_id(id, vo.venue_order_id.clone());
        }
        self.set_filled(id, vo.filled.max(fills_seen));
        super::state::event_of_status(vo.status)
    }

    fn remove(&mut self, id: &ClientOrderId) {
        if let Some(o) = self.orders.remove(id) {
            self.recount(&o.market, Some(&Share::of(&o)), None);
            if let Some(v) = o.venue_order_id {
                self.by_venue.remove(&v);
            }
        }
    }
}

fn cancel_of(o: &Order) -> Intent {
    Intent::Cancel {
        client_order_id: o.client_order_id.clone(),
        market: o.market.clone(),
        venue_order_id: o.venue_order_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Side, Slot};

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }
    fn m() -> MarketId {
        MarketId("ADAUSDM".into())
    }
    fn want(side: Side, level: u8, price: &str, size: &str) -> DesiredOrder {
        DesiredOrder {
            slot: Slot { side, level },
            side,
            price: d(price),
            size: d(size),
        }
    }
    fn place_all(t: &mut OrderTracker, desired: &[DesiredOrder]) -> Vec<ClientOrderId> {
        let intents = t.diff(&m(), desired, d("3"));
        let mut ids = Vec::new();
        for i in &intents {
            t.apply_intent(i, 1, None);
            if let Intent::Place {
                client_order_id, ..
            } = i
            {
                ids.push(client_order_id.clone());
            }
        }
        ids
    }

    #[test]
    fn first_diff_places_every_level() {
        let mut t = OrderTracker::new("mm", "r1");
        let intents = t.diff(
            &m(),
            &[
                want(Side::Buy, 0, "0.4496", "100"),
                want(Side::Sell, 0, "0.4506", "100"),
            ],
            d("3"),
        );
        assert_eq!(intents.len(), 2);
        assert!(intents.iter().all(|i| matches!(i, Intent::Place { .. })));
        assert_eq!(
            intents[0].client_order_id().map(|c| c.as_str()),
            Some("mm-r1-1")
        );
    }

    /// Funds are summed per asset across markets, all orders and the unacknowledged apart,
    /// as adding each order alone does.
    #[test]
    fn funds_in_use_sum_each_asset_across_markets() {
        let mut t = OrderTracker::new("mm", "r1");
        place_all(
            &mut t,
            &[
                want(Side::Buy, 0, "0.45", "100"),
                want(Side::Buy, 1, "0.44", "200"),
                want(Side::Sell, 0, "0.46", "50"),
            ],
        );
        let mut iag = Order {
            client_order_id: ClientOrderId("iag-1".into()),
            market: MarketId("IAGUSDM".into()),
            slot: Slot {
                side: Side::Buy,
                level: 0,
            },
            side: Side::Buy,
            price: d("0.30"),
            size: d("10"),
            filled: d("4"),
            state: OrderState::Working,
            venue_order_id: None,
            created_at_ms: 1,
            traceparent: None,
        };
        t.load_one(iag.clone());
        iag.client_order_id = ClientOrderId("iag-2".into());
        iag.side = Side::Sell;
        t.load_one(iag);
        let f = t.funds_in_use();
        let mut expected = FundsInUse::default();
        for o in t.orders() {
            let acked = o.state.is_acknowledged();
            expected.add(&o.market, o.side, o.price, o.remaining(), acked);
        }
        assert_eq!(f, expected);
        let usdm = f.0["usdm"];
        // 0.45 x 100 + 0.44 x 200 unacknowledged, and 0.30 x 6 acknowledged.
        assert_eq!(usdm.buy_notional, d("134.8"));
        assert_eq!(usdm.unacked_buy_notional, d("133"));
        assert_eq!(f.0["ada"].unacked_sell_base, d("50"));
        assert_eq!(f.0["iag"].sell_base, d("6"));
        assert_eq!(f.0["iag"].unacked_sell_base, Decimal::ZERO);
    }

    proptest::proptest! {
        /// Summing per market first gives, for any mix of markets, sides, states and fills,
        /// the map that adding each live order alone gives (an asset appears only where an
        /// order locks it).
        #[test]
        fn funds_in_use_is_the_sum_of_each_live_order(
            orders in proptest::collection::vec(
                (0usize..3, proptest::bool::ANY, 0..OrderState::ALL.len(), 1i64..1_000_000, 1i64..100_000, 0i64..100),
                0..40,
            ),
        ) {
            const MARKETS: [&str; 3] = ["ADAUSDM", "IAGUSDM", "ADAIAG"];
            let markets: Vec<MarketId> = MARKETS.iter().map(|m| MarketId((*m).into())).collect();
            let mut t = OrderTracker::new("mm", "r1");
            for (i, (m, buy, state, price, size, filled_pct)) in orders.into_iter().enumerate() {
                let side = if buy { Side::Buy } else { Side::Sell };
                let size = Decimal::new(size, 1);
                t.load_one(Order {
                    client_order_id: ClientOrderId(format!("o-{i}").into()),
                    market: markets[m].clone(),
                    slot: Slot { side, level: 0 },
                    side,
                    price: Decimal::new(price, 6),
                    size,
                    filled: (size * Decimal::new(filled_pct, 2)).round_dp(1),
                    state: OrderState::ALL[state],
                    venue_order_id: None,
                    created_at_ms: 1,
                    traceparent: None,
                });
            }
            let mut expected = FundsInUse::default();
            for o in t.orders().filter(|o| !o.state.is_terminal()) {
                let acked = o.state.is_acknowledged();
                expected.add(&o.market, o.side, o.price, o.remaining(), acked);
            }
            proptest::prop_assert_eq!(t.funds_in_use(), expected);
        }
    }

    /// One step of a random life of the tracker, for the running sums' property test.
    #[derive(Debug, Clone)]
    enum Step {
        /// An approved place: market, buy, price mantissa and scale, size mantissa and scale.
        Place(usize, bool, i128, u32, i128, u32),
        /// An event to the `n`th tracked order (in id order).
        Event(usize, usize),
        /// A cumulative fill of that order, in percent of its size.
        Fill(usize, i64),
        /// An order adopted as it is, in any state.
        Adopt(usize, bool, usize, i128, i128),
        /// A cancel-all of a market.
        CancelAll(usize),
        /// Everything reloaded from the orders tracked now (a restart).
        Reload,
    }

    fn decimal(mantissa: i128, scale: u32) -> Decimal {
        Decimal::try_from_i128_with_scale(mantissa, scale).unwrap_or(Decimal::MAX)
    }

    fn step_strategy() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        // Everyday prices and sizes, and figures that overflow or cannot keep every place.
        let mantissa = prop_oneof![
            4 => 1i128..2_000_000,
            1 => (10i128.pow(26))..(7 * 10i128.pow(28)),
        ];
        prop_oneof![
            4 => (0usize..3, any::<bool>(), mantissa.clone(), 0u32..29, mantissa.clone(), 0u32..29)
                .prop_map(|(m, b, p, ps, q, qs)| Step::Place(m, b, p, ps, q, qs)),
            4 => (0usize..64, 0usize..7).prop_map(|(n, e)| Step::Event(n, e)),
            2 => (0usize..64, 0i64..=100).prop_map(|(n, pct)| Step::Fill(n, pct)),
            1 => (0usize..3, any::<bool>(), 0..OrderState::ALL.len(), mantissa.clone(), mantissa)
                .prop_map(|(m, b, st, p, q)| Step::Adopt(m, b, st, p, q)),
            1 => (0usize..3).prop_map(Step::CancelAll),
            1 => Just(Step::Reload),
        ]
    }

    proptest::proptest! {
        /// Whatever happens to the orders, the exposure and funds in use kept as they change
        /// are what adding up the orders gives (with huge figures too, where the running sums
        /// must notice they cannot stay exact and count afresh).
        #[test]
        fn running_sums_are_always_the_orders_sums(
            steps in proptest::collection::vec(step_strategy(), 1..80),
        ) {
            const MARKETS: [&str; 3] = ["ADAUSDM", "IAGUSDM", "ADAIAG"];
            let markets: Vec<MarketId> = MARKETS.iter().map(|m| MarketId((*m).into())).collect();
            let events = [
                OrderEvent::Accepted,
                OrderEvent::Filled { complete: false },
                OrderEvent::Filled { complete: true },
                OrderEvent::CancelRequested,
                OrderEvent::Cancelled,
                OrderEvent::Rejected,
                OrderEvent::OutcomeUnknown,
            ];
            let mut t = OrderTracker::new("mm", "r1");
            let nth = |t: &OrderTracker, n: usize| {
                let mut ids: Vec<ClientOrderId> =
                    t.orders().map(|o| o.client_order_id.clone()).collect();
                ids.sort();
                (!ids.is_empty()).then(|| ids[n % ids.len()].clone())
            };
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Place(m, buy, p, ps, q, qs) => {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        let intent = Intent::Place {
                            client_order_id: t.next_id(),
                            market: markets[m].clone(),
                            slot: Slot { side, level: 0 },
                            side,
                            price: decimal(p, ps),
                            size: decimal(q, qs),
                        };
                        t.apply_intent(&intent, 1, None);
                    }
                    Step::Event(n, e) => {
                        if let Some(id) = nth(&t, n) {
                            let _ = t.apply(&id, &events[e], None);
                        }
                    }
                    Step::Fill(n, pct) => {
                        if let Some(id) = nth(&t, n) {
                            let size = t.get(&id).map_or(Decimal::ZERO, |o| o.size);
                            let ev = t.fill_event(&id, size.saturating_mul(Decimal::new(pct, 2)));
                            let _ = t.apply(&id, &ev, None);
                        }
                    }
                    Step::Adopt(m, buy, st, p, q) => {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        t.load_one(Order {
                            client_order_id: ClientOrderId(format!("adopted-{i}").into()),
                            market: markets[m].clone(),
                            slot: Slot { side, level: 0 },
                            side,
                            price: decimal(p, 6),
                            size: decimal(q, 1),
                            filled: Decimal::ZERO,
                            state: OrderState::ALL[st],
                            venue_order_id: None,
                            created_at_ms: 1,
                            traceparent: None,
                        });
                    }
                    Step::CancelAll(m) => {
                        t.apply_intent(&Intent::CancelAll { market: markets[m].clone() }, 1, None);
                    }
                    Step::Reload => {
                        let all: Vec<Order> = t.orders().cloned().collect();
                        t.load(all);
                    }
                }
                proptest::prop_assert_eq!(t.funds_in_use(), t.funds_counted());
                for m in &markets {
                    proptest::prop_assert_eq!(t.exposure(m), t.exposure_counted(m));
                }
            }
        }
    }

    /// Orders too large to add up exactly are still reported (saturated, as they always were)
    /// and never make a check panic; once they are gone the sums are exact again.
    #[test]
    fn huge_orders_fall_back_to_counting_and_recover() {
        let mut t = OrderTracker::new("mm", "r1");
        let ids = place_all(&mut t, &[want(Side::Buy, 0, "0.45", "100")]);
        let huge = Decimal::MAX / Decimal::TWO + Decimal::ONE;
        for n in 0..3 {
            t.apply_intent(
                &Intent::Place {
                    client_order_id: ClientOrderId(format!("huge-{n}").into()),
                    market: m(),
                    slot: Slot {
                        side: Side::Sell,
                        level: 1,
                    },
                    side: Side::Sell,
                    price: d("0.46"),
                    size: huge,
                },
                1,
                None,
            );
        }
        assert!(t.sums.iter().any(|s| !s.exact), "three huge sells overflow");
        let e = t.exposure(&m());
        assert_eq!((e.open_orders, e.open_sell), (4, Decimal::MAX));
        assert_eq!(t.funds_in_use().0["ada"].sell_base, Decimal::MAX);
        for n in 0..3 {
            let id = ClientOrderId(format!("huge-{n}").into());
            t.apply(&id, &OrderEvent::Rejected, None).expect("rejected");
        }
        assert!(
            t.sums.iter().all(|s| s.exact),
            "exact again once they are gone"
        );
        let e = t.exposure(&m());
        assert_eq!(
            (e.open_orders, e.open_buy, e.open_sell),
            (1, d("100"), Decimal::ZERO)
        );
        assert_eq!(t.funds_in_use().0["usdm"].buy_notional, d("45.00"));
        assert_eq!(
            t.get(&ids[0]).map(|o| o.state),
            Some(OrderState::PendingNew)
        );
    }

    #[test]
    fn approved_intents_are_recorded_as_transitions_then_numbered_outbox_rows() {
        let mut t = OrderTracker::new("mm", "r1");
        let ids = place_all(&mut t, &[want(Side::Buy, 0, "0.4496", "100")]);
        // The price moved: a cancel of the resting order, then a place.
        let intents = t.diff(&m(), &[want(Side::Buy, 0, "0.4520", "100")], d("3"));
        let approved: Vec<(Intent, Option<String>)> = intents
            .into_iter()
            .zip(["tp-cancel", "tp-place"])
            .map(|(i, tp)| (i, Some(tp.to_string())))
            .collect();
        let (mut next, at) = (7, Instant::now());
        let (writes, rows) = t.record_approved(approved, &mut next, 42, Some(at));
        assert_eq!(next, 9);
        let shape: Vec<String> = writes
            .iter()
            .map(|w| match w {
                Write::Order { transition, ts_ms } => format!(
                    "order {} {} at {ts_ms}",
                    transition.order.client_order_id.as_str(),
                    transition.event
                ),
                Write::Outbox(r) => format!("outbox {} {}", r.id, r.intent.kind().as_str()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                format!("order {} cancel_requested at 42", ids[0].as_str()),
                "outbox 7 cancel".to_string(),
                "order mm-r1-2 created at 42".to_string(),
                "outbox 8 place".to_string(),
            ]
        );
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [7, 8]);
        assert!(rows.iter().all(|r| r.tick_recv_at == Some(at)));
        assert_eq!(rows[1].traceparent.as_deref(), Some("tp-place"));
        // The place's order carries its trace, for the acknowledgement and fills to join.
        let placed = t.get(&ClientOrderId("mm-r1-2".into())).expect("placed");
        assert_eq!(placed.traceparent.as_deref(), Some("tp-place"));
    }

    #[test]
    fn within_tolerance_keeps_orders() {
        let mut t = OrderTracker::new("mm", "r1");
        place_all(&mut t, &[want(Side::Buy, 0, "0.4496", "100")]);
        let intents = t.diff(&m(), &[want(Side::Buy, 0, "0.4497", "100")], d("3"));
        assert!(intents.is_empty(), "{intents:?}");
    }

    #[test]
    fn moved_price_cancels_then_places() {
        let mut t = OrderTracker::new("mm", "r1");
        let ids = place_all(&mut t, &[want(Side::Buy, 0, "0.4496", "100")]);
        let intents = t.diff(&m(), &[want(Side::Buy, 0, "0.4520", "100")], d("3"));
        assert_eq!(intents.len(), 2);
        assert!(
            matches!(&intents[0], Intent::Cancel { client_order_id, .. } if *client_order_id == ids[0])
        );
        assert!(matches!(&intents[1], Intent::Place { price, .. } if *price == d("0.4520")));
        for i in &intents {
            t.apply_intent(i, 2, None);
        }
        assert_eq!(
            t.get(&ids[0]).map(|o| o.state),
            Some(OrderState::PendingCancel)
        );
        // A second diff with the same target changes nothing: the cancel is not repeated.
        assert!(
            t.diff(&m(), &[want(Side::Buy, 0, "0.4520", "100")], d("3"))
                .is_empty()
        );
    }

    #[test]
    fn empty_target_cancels_everything_quoting() {
        let mut t = OrderTracker::new("mm", "r1");
        place_all(
            &mut t,
            &[
                want(Side::Buy, 0, "0.4496", "100"),
                want(Side::Sell, 0, "0.4506", "100"),
            ],
        );
        let intents = t.diff(&m(), &[], d("3"));
        assert_eq!(intents.len(), 2);
        assert!(
            intents
                .iter()
                .all(|i| i.kind() == crate::intent::IntentKind::Cancel)
        );
    }

    #[test]
    fn terminal_orders_are_pruned_and_exposure_follows() {
        let mut t = OrderTracker::new("mm", "r1");
        let ids = place_all(&mut t, &[want(Side::Buy, 0, "0.4496", "100")]);
        assert_eq!(t.exposure(&m()).open_buy, d("100"));
        t.apply(&ids[0], &OrderEvent::Accepted, None).expect("ack");
        t.set_filled(&ids[0], d("40"));
        t.apply(&ids[0], &OrderEvent::Filled { complete: false }, None)
            .expect("partial");
        assert_eq!(t.exposure(&m()).open_buy, d("60"));
        let done = t
            .apply(&ids[0], &OrderEvent::Filled { complete: true }, None)
            .expect("fill");
        assert_eq!(done.map(|t| t.order.state), Some(OrderState::Filled));
        assert!(t.get(&ids[0]).is_none());
        assert_eq!(t.exposure(&m()), OpenExposure::default());
    }

    #[test]
    fn cancel_all_moves_every_live_order() {
        let mut t = OrderTracker::new("mm", "r1");
        place_all(
            &mut t,
            &[
                want(Side::Buy, 0, "0.4496", "100"),
                want(Side::Sell, 0, "0.4506", "100"),
            ],
        );
        let ts = t.apply_intent(&Intent::CancelAll { market: m() }, 5, None);
        assert_eq!(ts.len(), 2);
        assert!(t.orders().all(|o| o.state == OrderState::PendingCancel));
    }
}
