//! MockExchange's pure core: a simulated DeltaDeFi account that matches our resting orders
//! against the reference price path.
//!
//! A resting buy fills when the (basis-adjusted) reference ask trades through its price (or
//! touches it, with `fill_on_touch`); a sell when the reference bid does. Each crossing tick
//! fills `partial_fill_ratio` of the order's size (at least one lot), at the order's price,
//! as maker, with `maker_fee_bps` charged in the quote asset. Requests are checked like the
//! venue does, with DeltaDeFi's codes: precision (4102/4103), minimum size (4100), post-only
//! crossing (4104), balance (4050), unknown market (4106), unknown order (4200/4201), and the
//! order-action budget over a sliding second (4290). `reject_probability` adds random 5000s.

use std::collections::{HashMap, VecDeque};

use rust_decimal::Decimal;

use crate::pricing_rules::MarketRules;
use crate::rng::SplitMix64;
use crate::types::{ClientOrderId, MarketId, Side, TradeId, VenueOrderId, bps};
use crate::venue::{
    Balance, Liquidity, NewOrder, VenueError, VenueEvent, VenueFill, VenueOrder, VenueOrderStatus,
};

/// The knobs of the simulation.
#[derive(Debug, Clone)]
pub struct MatchingParams {
    pub maker_fee_bps: Decimal,
    pub partial_fill_ratio: Decimal,
    pub fill_on_touch: bool,
    pub actions_per_second: u32,
    /// Random 5000 errors per million requests.
    pub reject_ppm: u64,
    pub seed: u64,
    pub base_balance: Decimal,
    pub quote_balance: Decimal,
}

#[derive(Debug, Clone, Default)]
struct Asset {
    free: Decimal,
    locked: Decimal,
}

/// The simulated account and book of our orders.
#[derive(Debug)]
pub struct MatchingCore {
    params: MatchingParams,
    markets: HashMap<MarketId, MarketRules>,
    /// Orders resting on the book; the only ones a tick is matched against.
    orders: HashMap<VenueOrderId, VenueOrder>,
    /// Finished orders, kept for queries; the oldest go beyond [`CLOSED_KEPT`].
    closed: HashMap<VenueOrderId, VenueOrder>,
    closed_order: VecDeque<VenueOrderId>,
    by_client: HashMap<ClientOrderId, VenueOrderId>,
    assets: HashMap<String, Asset>,
    references: HashMap<MarketId, (Decimal, Decimal)>,
    actions: VecDeque<i64>,
    rng: SplitMix64,
    order_seq: u64,
    trade_seq: u64,
}

/// How many finished orders the mock remembers for queries.
pub const CLOSED_KEPT: usize = 50_000;

/// Base and quote asset names of a market (`ADAUSDM` → `ada`, `usdm`).
pub fn assets_of(market: &MarketId) -> (String, String) {
    let m = market.as_str();
    match m.strip_suffix("USDM") {
        Some(base) if !base.is_empty() => (base.to_ascii_lowercase(), "usdm".into()),
        _ => (m.to_ascii_lowercase(), "quote".into()),
    }
}

impl MatchingCore {
    /// A fresh account holding the configured balances of every market's assets.
    pub fn new(params: MatchingParams, markets: Vec<MarketRules>) -> Self {
        let mut assets = HashMap::new();
        for m in &markets {
            let (base, quote) = assets_of(&m.market);
            assets.entry(base).or_insert(Asset {
                free: params.base_balance,
                locked: Decimal::ZERO,
            });
            assets.entry(quote).or_insert(Asset {
                free: params.quote_balance,
                locked: Decimal::ZERO,
            });
        }
        Self {
            rng: SplitMix64::new(params.seed),
            params,
            markets: markets.into_iter().map(|m| (m.market.clone(), m)).collect(),
            orders: HashMap::new(),
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            by_client: HashMap::new(),
            assets,
            references: HashMap::new(),
            actions: VecDeque::new(),
            order_seq: 0,
            trade_seq: 0,
        }
    }

    fn spend_action(&mut self, now_ms: i64) -> Result<(), VenueError> {
        while self.actions.front().is_some_and(|t| *t <= now_ms - 1_000) {
            self.actions.pop_front();
        }
        if self.actions.len() >= self.params.actions_per_second as usize {
            return Err(VenueError::new(4290, "rate limit exceeded"));
        }
        self.actions.push_back(now_ms);
        if self.rng.chance_ppm(self.params.reject_ppm) {
            return Err(VenueError::new(5000, "Internal Server Error"));
        }
        Ok(())
    }

    /// Balances of every asset.
    pub fn balances(&self) -> Vec<Balance> {
        let mut v: Vec<Balance> = self
            .assets
            .iter()
            .map(|(k, a)| Balance {
                asset: k.clone(),
                free: a.free,
                locked: a.locked,
            })
            .collect();
        v.sort_by(|a, b| a.asset.cmp(&b.asset));
        v
    }

    /// Places a post-only limit order.
    ///
    /// # Errors
    /// A [`VenueError`] with DeltaDeFi's code for whatever the venue would refuse.
    pub fn place(
        &mut self,
        req: &NewOrder,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.place_as(req, None, now_ms)
    }

    /// Places an order under a venue id chosen beforehand (DeltaDeFi names an order when it
    /// builds its transaction, before submit).
    ///
    /// # Errors
    /// As [`MatchingCore::place`].
    pub fn place_as(
        &mut self,
        req: &NewOrder,
        venue_id: Option<VenueOrderId>,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.spend_action(now_ms)?;
        let rules = self
            .markets
            .get(&req.market)
            .ok_or_else(|| VenueError::new(4106, "invalid symbol"))?;
        if req.price <= Decimal::ZERO {
            return Err(VenueError::new(4101, "price must be greater than 0"));
        }
        if req.size <= Decimal::ZERO {
            return Err(VenueError::new(4107, "quantity must be greater than 0"));
        }
        if req.price.normalize().scale() > rules.price_decimals {
            return Err(VenueError::new(
                4102,
                format!("price has more than {} decimals", rules.price_decimals),
            ));
        }
        if req.size.normalize().scale() > rules.size_decimals {
            return Err(VenueError::new(
                4103,
                format!("quantity has more than {} decimals", rules.size_decimals),
            ));
        }
        if req.size < rules.min_order_size || req.size * req.price < rules.min_order_notional {
            return Err(VenueError::new(
                4100,
                format!("order size must be at least {}", rules.min_order_size),
            ));
        }
        if self.by_client.contains_key(&req.client_order_id) {
            return Err(VenueError::new(4302, "transaction already submitted"));
        }
        if let Some((bid, ask)) = self.references.get(&req.market) {
            let crosses = match req.side {
                Side::Buy => req.price >= *ask,
                Side::Sell => req.price <= *bid,
            };
            if crosses {
                return Err(VenueError::new(4104, "post only order would cross"));
            }
        }
        let (base, quote) = assets_of(&req.market);
        let (asset, need) = match req.side {
            Side::Buy => (quote, req.size * req.price),
            Side::Sell => (base, req.size),
        };
        let a = self.assets.entry(asset).or_default();
        if a.free < need {
            return Err(VenueError::new(4050, "insufficient balance to place order"));
        }
        a.free -= need;
        a.locked += need;
        self.order_seq += 1;
        let seq = self.order_seq;
        let order = VenueOrder {
            venue_order_id: venue_id
                .unwrap_or_else(|| VenueOrderId(format!("00000000-0000-4000-8000-{seq:012x}"))),
            client_order_id: Some(req.client_order_id.clone()),
            market: req.market.clone(),
            side: req.side,
            price: req.price,
            size: req.size,
            filled: Decimal::ZERO,
            status: VenueOrderStatus::Open,
            ts_ms: now_ms,
        };
        self.by_client
            .insert(req.client_order_id.clone(), order.venue_order_id.clone());
        self.put(order.clone());
        let events = vec![
            VenueEvent::Order(order.clone()),
            VenueEvent::Balances(self.balances()),
        ];
        Ok((order, events))
    }

    /// Stores an order where it belongs: on the book while live, in the history once finished.
    fn put(&mut self, o: VenueOrder) {
        if o.status.is_terminal() {
            self.orders.remove(&o.venue_order_id);
            self.closed_order.push_back(o.venue_order_id.clone());
            self.closed.insert(o.venue_order_id.clone(), o);
            while self.closed_order.len() > CLOSED_KEPT {
                if let Some(old) = self.closed_order.pop_front()
                    && let Some(gone) = self.closed.remove(&old)
                    && let Some(c) = &gone.client_order_id
                {
                    self.by_client.remove(c);
                }
            }
        } else {
            self.orders.insert(o.venue_order_id.clone(), o);
        }
    }

    /// Every order, open and finished (as far as remembered).
    pub fn all_orders(&self) -> Vec<VenueOrder> {
        self.orders
            .values()
            .chain(self.closed.values())
            .cloned()
            .collect()
    }

    fn lookup(&self, id: &VenueOrderId) -> Option<&VenueOrder> {
        self.orders.get(id).or_else(|| self.closed.get(id))
    }

    fn find(&self, venue: Option<&VenueOrderId>, client: &ClientOrderId) -> Option<VenueOrderId> {
        venue
            .cloned()
            .or_else(|| self.by_client.get(client).cloned())
    }

    fn release(&mut self, o: &VenueOrder) {
        let (base, quote) = assets_of(&o.market);
        let remaining = o.size - o.filled;
        let (asset, amount) = match o.side {
            Side::Buy => (quote, remaining * o.price),
            Side::Sell => (base, remaining),
        };
        let a = self.assets.entry(asset).or_default();
        a.locked -= amount;
        a.free += amount;
    }

    /// Cancels one order.
    ///
    /// # Errors
    /// 4200 when the venue does not know the order, 4201 when it is no longer open.
    pub fn cancel(
        &mut self,
        venue: Option<&VenueOrderId>,
        client: &ClientOrderId,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.spend_action(now_ms)?;
        let id = self
            .find(venue, client)
            .ok_or_else(|| VenueError::new(4200, "Order not found"))?;
        let order = self
            .lookup(&id)
            .cloned()
            .ok_or_else(|| VenueError::new(4200, "Order not found"))?;
        if order.status.is_terminal() {
            return Err(VenueError::new(4201, "order is not open"));
        }
        self.release(&order);
        let mut done = order;
        done.status = VenueOrderStatus::Cancelled;
        done.ts_ms = now_ms;
        self.put(done.clone());
        Ok((
            done.clone(),
            vec![
                VenueEvent::Order(done),
                VenueEvent::Balances(self.balances()),
            ],
        ))
    }

    /// Cancels every open order of a market.
    ///
    /// # Errors
    /// 4200 "Order not found" when nothing is open, as DeltaDeFi answers.
    pub fn cancel_all(
        &mut self,
        market: &MarketId,
        now_ms: i64,
    ) -> Result<(Vec<VenueOrderId>, Vec<VenueEvent>), VenueError> {
        self.spend_action(now_ms)?;
        let mut open: Vec<VenueOrder> = self
            .orders
            .values()
            .filter(|o| &o.market == market)
            .cloned()
            .collect();
        if open.is_empty() {
            return Err(VenueError::new(4200, "Order not found"));
        }
        open.sort_by(|a, b| a.venue_order_id.cmp(&b.venue_order_id));
        let mut events = Vec::new();
        for o in &open {
            self.release(o);
            let mut done = o.clone();
            done.status = VenueOrderStatus::Cancelled;
            done.ts_ms = now_ms;
            self.put(done.clone());
            events.push(VenueEvent::Order(done));
        }
        events.push(VenueEvent::Balances(self.balances()));
        Ok((open.into_iter().map(|o| o.venue_order_id).collect(), events))
    }

    /// Looks an order up.
    pub fn query(
        &self,
        venue: Option<&VenueOrderId>,
        client: &ClientOrderId,
    ) -> Option<VenueOrder> {
        self.find(venue, client)
            .and_then(|id| self.lookup(&id).cloned())
    }

    /// Open orders of a market, oldest first.
    pub fn open_orders(&self, market: &MarketId) -> Vec<VenueOrder> {
        let mut v: Vec<VenueOrder> = self
            .orders
            .values()
            .filter(|o| &o.market == market)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.venue_order_id.cmp(&b.venue_order_id));
        v
    }

    /// Moves the reference of a market (raw reference prices; the market's `anchor_bps`
    /// basis is applied here) and fills whatever it trades through.
    pub fn on_reference(
        &mut self,
        market: &MarketId,
        ref_bid: Decimal,
        ref_ask: Decimal,
        now_ms: i64,
    ) -> Vec<VenueEvent> {
        let Some(rules) = self.markets.get(market).cloned() else {
            return Vec::new();
        };
        let basis = Decimal::ONE + bps(rules.anchor_bps);
        let (bid, ask) = (ref_bid * basis, ref_ask * basis);
        self.references.insert(market.clone(), (bid, ask));
        let touch = self.params.fill_on_touch;
        let mut crossing: Vec<VenueOrderId> = self
            .orders
            .values()
            .filter(|o| &o.market == market)
            .filter(|o| match (o.side, touch) {
                (Side::Buy, false) => ask < o.price,
                (Side::Buy, true) => ask <= o.price,
                (Side::Sell, false) => bid > o.price,
                (Side::Sell, true) => bid >= o.price,
            })
            .map(|o| o.venue_order_id.clone())
            .collect();
        crossing.sort();
        let mut events = Vec::new();
        for id in crossing {
            if let Some(ev) = self.fill_one(&id, &rules, now_ms) {
                events.extend(ev);
            }
        }
        if !events.is_empty() {
            events.push(VenueEvent::Balances(self.balances()));
        }
        events
    }

    fn fill_one(
        &mut self,
        id: &VenueOrderId,
        rules: &MarketRules,
        now_ms: i64,
    ) -> Option<Vec<VenueEvent>> {
        let mut o = self.orders.get(id)?.clone();
        let lot = Decimal::new(1, rules.size_decimals);
        let remaining = o.size - o.filled;
        let chunk = (o.size * self.params.partial_fill_ratio)
            .round_dp_with_strategy(rules.size_decimals, rust_decimal::RoundingStrategy::ToZero);
        let qty = chunk.max(lot).min(remaining);
        if qty <= Decimal::ZERO {
            return None;
        }
        let notional = qty * o.price;
        let fee = (notional * bps(self.params.maker_fee_bps)).round_dp(6);
        let (base, quote) = assets_of(&o.market);
        match o.side {
            Side::Buy => {
                let q = self.assets.entry(quote).or_default();
                q.locked -= notional;
                q.free -= fee;
                self.assets.entry(base).or_default().free += qty;
            }
            Side::Sell => {
                self.assets.entry(base).or_default().locked -= qty;
                self.assets.entry(quote).or_default().free += notional - fee;
            }
        }
        o.filled += qty;
        o.status = if o.filled >= o.size {
            VenueOrderStatus::Filled
        } else {
            VenueOrderStatus::PartiallyFilled
        };
        o.ts_ms = now_ms;
        self.trade_seq += 1;
        let fill = VenueFill {
            trade_id: TradeId(format!("T{:010}", self.trade_seq)),
            venue_order_id: o.venue_order_id.clone(),
            client_order_id: o.client_order_id.clone(),
            market: o.market.clone(),
            side: o.side,
            price: o.price,
            size: qty,
            fee,
            liquidity: Liquidity::Maker,
            ts_ms: now_ms,
        };
        self.put(o.clone());
        Some(vec![VenueEvent::Fill(fill), VenueEvent::Order(o)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }
    fn m() -> MarketId {
        MarketId("ADAUSDM".into())
    }
    fn core(aps: u32) -> MatchingCore {
        MatchingCore::new(
            MatchingParams {
                maker_fee_bps: d("10"),
                partial_fill_ratio: d("0.5"),
                fill_on_touch: false,
                actions_per_second: aps,
                reject_ppm: 0,
                seed: 1,
                base_balance: d("1000"),
                quote_balance: d("1000"),
            },
            vec![MarketRules {
                market: m(),
                price_decimals: 4,
                size_decimals: 2,
                min_order_size: d("5"),
                min_order_notional: d("1"),
                anchor_bps: Decimal::ZERO,
            }],
        )
    }
    fn order(coid: &str, side: Side, price: &str, size: &str) -> NewOrder {
        NewOrder {
            client_order_id: ClientOrderId(coid.into()),
            market: m(),
            side,
            price: d(price),
            size: d(size),
            traceparent: None,
            tag: crate::venue::SendTag::default(),
        }
    }
    fn code(r: Result<(VenueOrder, Vec<VenueEvent>), VenueError>) -> u32 {
        r.err().map(|e| e.code).unwrap_or(0)
    }

    #[test]
    fn validation_codes() {
        let mut c = core(100);
        c.on_reference(&m(), d("0.45"), d("0.4502"), 0);
        let cases = [
            (
                "too many price decimals",
                order("a", Side::Buy, "0.44991", "10"),
                4102,
            ),
            (
                "too many size decimals",
                order("b", Side::Buy, "0.4499", "10.001"),
                4103,
            ),
            (
                "below minimum",
                order("c", Side::Buy, "0.4499", "4.99"),
                4100,
            ),
            (
                "post-only cross",
                order("d", Side::Buy, "0.4502", "10"),
                4104,
            ),
            (
                "insufficient balance",
                order("e", Side::Buy, "0.4499", "5000"),
                4050,
            ),
            ("zero price", order("f", Side::Buy, "0", "10"), 4101),
            ("accepted", order("g", Side::Buy, "0.4499", "10"), 0),
            (
                "duplicate client id",
                order("g", Side::Buy, "0.4499", "10"),
                4302,
            ),
        ];
        for (name, o, want) in cases {
            assert_eq!(code(c.place(&o, 1)), want, "{name}");
        }
    }

    #[test]
    fn buy_fills_when_reference_ask_trades_through_in_parts() {
        let mut c = core(100);
        c.on_reference(&m(), d("0.45"), d("0.4502"), 0);
        let (o, _) = c
            .place(&order("a", Side::Buy, "0.4499", "100"), 1)
            .expect("placed");
        assert_eq!(
            c.balances()
                .iter()
                .find(|b| b.asset == "usdm")
                .map(|b| b.locked),
            Some(d("44.99"))
        );
        assert!(
            c.on_reference(&m(), d("0.4498"), d("0.4499"), 2).is_empty(),
            "touch does not fill"
        );
        let ev = c.on_reference(&m(), d("0.4497"), d("0.4498"), 3);
        let fills: Vec<&VenueFill> = ev
            .iter()
            .filter_map(|e| {
                if let VenueEvent::Fill(f) = e {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(fills.len(), 1);
        assert_eq!(
            (fills[0].size, fills[0].price, fills[0].fee),
            (d("50"), d("0.4499"), d("0.022495"))
        );
        c.on_reference(&m(), d("0.4497"), d("0.4498"), 4);
        let done = c
            .query(Some(&o.venue_order_id), &ClientOrderId("a".into()))
            .expect("known");
        assert_eq!(
            (done.status, done.filled),
            (VenueOrderStatus::Filled, d("100"))
        );
        let ada = c
            .balances()
            .into_iter()
            .find(|b| b.asset == "ada")
            .expect("ada");
        assert_eq!(ada.free, d("1100"));
    }

    #[test]
    fn budget_is_enforced_over_a_sliding_second() {
        let mut c = core(2);
        assert_eq!(code(c.place(&order("a", Side::Sell, "0.46", "10"), 0)), 0);
        assert_eq!(code(c.place(&order("b", Side::Sell, "0.46", "10"), 500)), 0);
        assert_eq!(
            code(c.place(&order("c", Side::Sell, "0.46", "10"), 999)),
            4290
        );
        assert_eq!(
            code(c.place(&order("d", Side::Sell, "0.46", "10"), 1_000)),
            0
        );
    }

    #[test]
    fn cancel_and_cancel_all_codes() {
        let mut c = core(100);
        let (o, _) = c
            .place(&order("a", Side::Sell, "0.46", "10"), 0)
            .expect("placed");
        assert!(
            c.cancel(Some(&o.venue_order_id), &ClientOrderId("a".into()), 1)
                .is_ok()
        );
        assert_eq!(
            c.cancel(Some(&o.venue_order_id), &ClientOrderId("a".into()), 2)
                .err()
                .map(|e| e.code),
            Some(4201)
        );
        assert_eq!(
            c.cancel(None, &ClientOrderId("zz".into()), 3)
                .err()
                .map(|e| e.code),
            Some(4200)
        );
        assert_eq!(c.cancel_all(&m(), 4).err().map(|e| e.code), Some(4200));
        c.place(&order("b", Side::Sell, "0.46", "10"), 5)
            .expect("placed");
        assert_eq!(
            c.cancel_all(&m(), 6).map(|(ids, _)| ids.len()).ok(),
            Some(1)
        );
        let ada = c
            .balances()
            .into_iter()
            .find(|b| b.asset == "ada")
            .expect("ada");
        assert_eq!((ada.free, ada.locked), (d("1000"), d("0")));
    }
}
