//! MockExchange's pure core: a simulated DeltaDeFi account and the market around it.
//!
//! The rest of the market is a book of other participants around the (basis-adjusted)
//! reference touch ([`book::OthersBook`]). Our resting orders fill against the reference path:
//! a resting buy fills when the reference ask trades through its price (or touches it, with
//! `fill_on_touch`), a sell when the reference bid does; each crossing tick fills
//! `partial_fill_ratio` of the order's size (at least one lot) at the order's price, as maker.
//! An order that crosses when it arrives is a taker: a post-only one is refused (4104), any
//! other executes at once against the others' levels it reaches (a limit order rests with what
//! is left; a market order, bounded by its slippage, cancels the rest). Fees are charged in the
//! quote asset; a buy locks its notional plus the maker fee, a sell its base size.
//!
//! Requests are checked like the venue does, with DeltaDeFi's codes: type and post-only
//! (4105), slippage (4108), price (4101), quantity (4107), precision (4102/4103), minimum size
//! (4100), unknown market (4106), post-only crossing (4104), balance (4050), market-order
//! liquidity (4109), unknown or finished order (4200/4201), duplicate (4302), and the
//! order-action budget over a sliding second (4290). `reject_probability` adds random 5000s.
//! Our own orders never trade with each other (whether DeltaDeFi prevents self-trades is
//! unconfirmed), but a post-only order that would cross one of ours is refused like any other.

pub mod book;
pub mod history;

use std::collections::{HashMap, VecDeque};

use rust_decimal::Decimal;

use crate::config::MockExchangeConfig;
use crate::pricing_rules::MarketRules;
use crate::rng::SplitMix64;
use crate::types::{ClientOrderId, FastMap, MarketId, Side, TradeId, VenueOrderId, bps};
use crate::venue::{
    Balance, Depth, Level, Liquidity, NewOrder, VenueError, VenueEvent, VenueFill, VenueOrder,
    VenueOrderStatus, VenueReply, VenueRequest,
};
use book::{OthersBook, Want};
use history::{History, PublicTrade};

/// The knobs of the simulation.
#[derive(Debug, Clone)]
pub struct MatchingParams {
    pub maker_fee_bps: Decimal,
    pub taker_fee_bps: Decimal,
    pub partial_fill_ratio: Decimal,
    pub fill_on_touch: bool,
    pub actions_per_second: u32,
    /// Random 5000 errors per million requests.
    pub reject_ppm: u64,
    pub seed: u64,
    pub base_balance: Decimal,
    pub quote_balance: Decimal,
    /// Price levels per side of the other participants' book.
    pub book_levels: u32,
    /// Base size of each of those levels.
    pub book_level_size: Decimal,
    /// Finished orders remembered for queries (the oldest are forgotten first).
    pub closed_kept: usize,
}

impl MatchingParams {
    /// The simulation `cfg` describes, enforcing `actions_per_second`.
    pub fn from_config(cfg: &MockExchangeConfig, actions_per_second: u32) -> Self {
        let ppm = (cfg.reject_probability * Decimal::from(1_000_000)).trunc();
        Self {
            maker_fee_bps: cfg.maker_fee_bps,
            taker_fee_bps: cfg.taker_fee_bps,
            partial_fill_ratio: cfg.partial_fill_ratio,
            fill_on_touch: cfg.fill_on_touch,
            actions_per_second,
            reject_ppm: rust_decimal::prelude::ToPrimitive::to_u64(&ppm).unwrap_or(0),
            seed: cfg.seed,
            base_balance: cfg.base_balance,
            quote_balance: cfg.quote_balance,
            book_levels: cfg.book_levels,
            book_level_size: cfg.book_level_size,
            closed_kept: CLOSED_KEPT,
        }
    }
}

impl Default for MatchingParams {
    fn default() -> Self {
        Self::from_config(&MockExchangeConfig::default(), 5)
    }
}

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    Limit,
    Market,
}

impl OrderKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Limit => "limit",
            OrderKind::Market => "market",
        }
    }
}

/// An order's size: in base, or (market buys and sells, limit orders) a quote amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Base(Decimal),
    Quote(Decimal),
}

/// What a client asks the venue to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub client_order_id: ClientOrderId,
    pub market: MarketId,
    pub side: Side,
    pub kind: OrderKind,
    /// Limit orders only.
    pub price: Option<Decimal>,
    pub quantity: Quantity,
    pub post_only: bool,
    /// Market orders only: the worst price accepted, in bps from the best.
    pub slippage_bp: Option<u32>,
}

impl From<&NewOrder> for OrderRequest {
    /// The service's orders are post-only limit orders.
    fn from(o: &NewOrder) -> Self {
        Self {
            client_order_id: o.client_order_id.clone(),
            market: o.market.clone(),
            side: o.side,
            kind: OrderKind::Limit,
            price: Some(o.price),
            quantity: Quantity::Base(o.size),
            post_only: true,
            slippage_bp: None,
        }
    }
}

/// The venue's whole record of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOrder {
    pub order: VenueOrder,
    pub kind: OrderKind,
    pub post_only: bool,
    pub slippage_bp: Option<u32>,
    /// A market order's worst accepted price.
    pub limit_price: Option<Decimal>,
    /// Quote value of the executions so far.
    pub executed_quote: Decimal,
    pub fees: Decimal,
    /// Funds still locked for the rest of the order: quote for a buy, base for a sell.
    pub locked: Decimal,
    pub created_ms: i64,
}

impl MockOrder {
    /// Average execution price (0 before any execution).
    pub fn avg_price(&self) -> Decimal {
        if self.order.filled.is_zero() {
            Decimal::ZERO
        } else {
            (self.executed_quote / self.order.filled).round_dp(8)
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Asset {
    free: Decimal,
    locked: Decimal,
}

/// The simulated account, our orders and the market around them.
#[derive(Debug)]
pub struct MatchingCore {
    params: MatchingParams,
    markets: FastMap<MarketId, MarketRules>,
    /// Orders resting on the book; the only ones a tick is matched against.
    orders: FastMap<VenueOrderId, MockOrder>,
    /// Finished orders, kept for queries; the oldest go beyond `params.closed_kept`.
    closed: FastMap<VenueOrderId, MockOrder>,
    closed_order: VecDeque<VenueOrderId>,
    by_client: FastMap<ClientOrderId, VenueOrderId>,
    assets: HashMap<String, Asset>,
    /// Basis-adjusted reference bid and ask per market.
    references: FastMap<MarketId, (Decimal, Decimal)>,
    others: FastMap<MarketId, OthersBook>,
    history: History,
    actions: VecDeque<i64>,
    /// Places refused so far, by code.
    rejects: HashMap<u32, u64>,
    rng: SplitMix64,
    order_seq: u64,
    trade_seq: u64,
}

/// How many finished orders the mock remembers for queries by default.
pub const CLOSED_KEPT: usize = 50_000;

/// Base and quote asset names of a market (`ADAUSDM` → `ada`, `usdm`).
pub fn assets_of(market: &MarketId) -> (String, String) {
    market.assets()
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
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
            orders: FastMap::default(),
            closed: FastMap::default(),
            closed_order: VecDeque::new(),
            by_client: FastMap::default(),
            assets,
            references: FastMap::default(),
            others: FastMap::default(),
            history: History::default(),
            actions: VecDeque::new(),
            rejects: HashMap::new(),
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

    /// The rules of a listed market.
    pub fn rules(&self, market: &MarketId) -> Option<&MarketRules> {
        self.markets.get(market)
    }

    /// Checks a request as the venue does before anything else (what DeltaDeFi's build
    /// checks): market, type, slippage, price, quantity, precision and minimum size.
    ///
    /// # Errors
    /// The [`VenueError`] with DeltaDeFi's code.
    pub fn validate(&self, req: &OrderRequest) -> Result<(), VenueError> {
        let rules = self
            .markets
            .get(&req.market)
            .ok_or_else(|| VenueError::new(4106, "invalid symbol"))?;
        if req.kind == OrderKind::Market && req.post_only {
            return Err(VenueError::new(
                4105,
                "post only is only allowed on limit orders",
            ));
        }
        if req.slippage_bp.is_some_and(|s| s > 10_000) {
            return Err(VenueError::new(
                4108,
                "max slippage bp must be in 0..=10000",
            ));
        }
        let price = match (req.kind, req.price) {
            (OrderKind::Limit, None) => {
                return Err(VenueError::new(4000, "price is required for limit orders"));
            }
            (OrderKind::Limit, Some(p)) if p <= Decimal::ZERO => {
                return Err(VenueError::new(4101, "price must be greater than 0"));
            }
            (OrderKind::Limit, Some(p)) => Some(p),
            (OrderKind::Market, _) => None,
        };
        if let Some(p) = price
            && p.normalize().scale() > rules.price_decimals
        {
            return Err(VenueError::new(
                4102,
                format!("price has more than {} decimals", rules.price_decimals),
            ));
        }
        let amount = match req.quantity {
            Quantity::Base(q) | Quantity::Quote(q) => q,
        };
        if amount <= Decimal::ZERO {
            return Err(VenueError::new(4107, "quantity must be greater than 0"));
        }
        if let Quantity::Base(q) = req.quantity
            && q.normalize().scale() > rules.size_decimals
        {
            return Err(VenueError::new(
                4103,
                format!("quantity has more than {} decimals", rules.size_decimals),
            ));
        }
        let too_small = match (req.quantity, price) {
            (Quantity::Base(q), Some(p)) => {
                q < rules.min_order_size || q * p < rules.min_order_notional
            }
            (Quantity::Base(q), None) => q < rules.min_order_size,
            (Quantity::Quote(q), Some(p)) => {
                base_of(q, p, rules.size_decimals) < rules.min_order_size
                    || q < rules.min_order_notional
            }
            (Quantity::Quote(q), None) => q < rules.min_order_notional,
        };
        if too_small {
            return Err(VenueError::new(
                4100,
                format!(
                    "order size must be at least {} and {} in value",
                    rules.min_order_size, rules.min_order_notional
                ),
            ));
        }
        Ok(())
    }

    /// Places a post-only limit order (the service's kind).
    ///
    /// # Errors
    /// A [`VenueError`] with DeltaDeFi's code for whatever the venue would refuse.
    pub fn place(
        &mut self,
        req: &NewOrder,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.place_order(&OrderRequest::from(req), None, now_ms)
    }

    /// Places a post-only limit order under a venue id chosen beforehand (DeltaDeFi names an
    /// order when it builds its transaction, before submit).
    ///
    /// # Errors
    /// As [`MatchingCore::place`].
    pub fn place_as(
        &mut self,
        req: &NewOrder,
        venue_id: Option<VenueOrderId>,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.place_order(&OrderRequest::from(req), venue_id, now_ms)
    }

    /// The best resting price on `side` that an order of ours must not cross: the book as the
    /// depth stream shows it (the others' best with liquidity left, or one of our own orders
    /// if better; never crossed), so that what a client sees is what the venue checks.
    fn best_resting(&self, market: &MarketId, side: Side) -> Option<Decimal> {
        let depth = self.depth(market);
        let levels = match side {
            Side::Buy => depth.bids,
            Side::Sell => depth.asks,
        };
        levels.first().map(|(p, _)| *p)
    }

    /// Places any order: validated, post-only refused when crossing, the crossing part
    /// executed against the others' book as taker, the rest resting (limit) or cancelled
    /// (market).
    ///
    /// # Errors
    /// A [`VenueError`] with DeltaDeFi's code; nothing happened then.
    pub fn place_order(
        &mut self,
        req: &OrderRequest,
        venue_id: Option<VenueOrderId>,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        let r = self.try_place(req, venue_id, now_ms);
        if let Err(e) = &r {
            *self.rejects.entry(e.code).or_default() += 1;
        }
        r
    }

    /// Places refused so far, by DeltaDeFi code (4104: post-only would cross, ...).
    pub fn rejects(&self) -> &HashMap<u32, u64> {
        &self.rejects
    }

    fn try_place(
        &mut self,
        req: &OrderRequest,
        venue_id: Option<VenueOrderId>,
        now_ms: i64,
    ) -> Result<(VenueOrder, Vec<VenueEvent>), VenueError> {
        self.spend_action(now_ms)?;
        self.validate(req)?;
        if self.by_client.contains_key(&req.client_order_id) {
            return Err(VenueError::new(4302, "transaction already submitted"));
        }
        let rules = self
            .markets
            .get(&req.market)
            .cloned()
            .ok_or_else(|| VenueError::new(4106, "invalid symbol"))?;
        let opposite_best = self.best_resting(&req.market, opposite(req.side));
        if let (OrderKind::Limit, true, Some(price), Some(best)) =
            (req.kind, req.post_only, req.price, opposite_best)
        {
            let crosses = match req.side {
                Side::Buy => price >= best,
                Side::Sell => price <= best,
            };
            if crosses {
                return Err(VenueError::new(
                    4104,
                    format!(
                        "post only order would cross: {} at {price}, best {} {best}",
                        req.side.as_str(),
                        match req.side {
                            Side::Buy => "ask",
                            Side::Sell => "bid",
                        }
                    ),
                ));
            }
        }
        // The market order's bound: `slippage_bp` from the others' best, else unbounded.
        let others_best = self
            .others
            .get(&req.market)
            .and_then(|b| b.best(opposite(req.side)));
        let market_bound = match (req.kind, req.slippage_bp, others_best) {
            (OrderKind::Market, Some(bp), Some(best)) => {
                let f = bps(Decimal::from(bp));
                Some(match req.side {
                    Side::Buy => best * (Decimal::ONE + f),
                    Side::Sell => best * (Decimal::ONE - f),
                })
            }
            _ => None,
        };
        let limit = match req.kind {
            OrderKind::Limit => req.price,
            OrderKind::Market => market_bound,
        };
        let want = match (req.quantity, req.price) {
            (Quantity::Base(q), _) => Want::Base(q),
            (Quantity::Quote(q), Some(p)) => Want::Base(base_of(q, p, rules.size_decimals)),
            (Quantity::Quote(q), None) => Want::Quote(q),
        };
        let takes = self
            .others
            .get(&req.market)
            .map(|b| b.walk(req.side, limit, want, rules.size_decimals))
            .unwrap_or_default();
        let taken: Decimal = takes.iter().map(|(_, q)| *q).sum();
        if req.kind == OrderKind::Market && taken.is_zero() {
            return Err(VenueError::new(
                4109,
                "insufficient liquidity for market order",
            ));
        }
        let size = match want {
            Want::Base(q) => q,
            Want::Quote(_) => taken,
        };
        let rest = if req.kind == OrderKind::Limit {
            size - taken
        } else {
            Decimal::ZERO
        };
        let taker_rate = bps(self.params.taker_fee_bps);
        let maker_rate = bps(self.params.maker_fee_bps);
        let (base, quote) = assets_of(&req.market);
        let price = req.price.unwrap_or(Decimal::ZERO);
        // Everything the order needs, checked before anything happens.
        let (asset, need, lock) = match req.side {
            Side::Buy => {
                let spent: Decimal = takes
                    .iter()
                    .map(|(p, q)| p * q + fee(p * q, taker_rate))
                    .sum();
                let lock = rest * price * (Decimal::ONE + maker_rate);
                (quote.clone(), spent + lock, lock)
            }
            Side::Sell => (base.clone(), taken + rest, rest),
        };
        if self.assets.get(&asset).map_or(Decimal::ZERO, |a| a.free) < need {
            return Err(VenueError::new(4050, "insufficient balance to place order"));
        }
        self.order_seq += 1;
        let seq = self.order_seq;
        let mut rec = MockOrder {
            order: VenueOrder {
                venue_order_id: venue_id.unwrap_or_else(|| {
                    VenueOrderId(format!("00000000-0000-4000-8000-{seq:012x}").into())
                }),
                client_order_id: Some(req.client_order_id.clone()),
                market: req.market.clone(),
                side: req.side,
                price: if req.kind == OrderKind::Limit {
                    price
                } else {
                    Decimal::ZERO
                },
                size,
                filled: Decimal::ZERO,
                status: VenueOrderStatus::Open,
                ts_ms: now_ms,
            },
            kind: req.kind,
            post_only: req.post_only,
            slippage_bp: req.slippage_bp,
            limit_price: market_bound,
            executed_quote: Decimal::ZERO,
            fees: Decimal::ZERO,
            locked: Decimal::ZERO,
            created_ms: now_ms,
        };
        let mut events = Vec::new();
        for (p, q) in takes {
            if let Some(b) = self.others.get_mut(&req.market) {
                b.take(opposite(req.side), p, q);
            }
            let f = fee(p * q, taker_rate);
            match req.side {
                Side::Buy => {
                    self.asset(&quote).free -= p * q + f;
                    self.asset(&base).free += q;
                }
                Side::Sell => {
                    self.asset(&base).free -= q;
                    self.asset(&quote).free += p * q - f;
                }
            }
            events.push(VenueEvent::Fill(self.execute(
                &mut rec,
                p,
                q,
                f,
                Liquidity::Taker,
                now_ms,
            )));
        }
        let a = self.asset(&asset);
        a.free -= lock;
        a.locked += lock;
        rec.locked = lock;
        rec.order.status = if rec.order.filled >= size {
            VenueOrderStatus::Filled
        } else if req.kind == OrderKind::Market {
            VenueOrderStatus::Cancelled
        } else if rec.order.filled > Decimal::ZERO {
            VenueOrderStatus::PartiallyFilled
        } else {
            VenueOrderStatus::Open
        };
        self.by_client.insert(
            req.client_order_id.clone(),
            rec.order.venue_order_id.clone(),
        );
        let order = rec.order.clone();
        self.put(rec);
        events.push(VenueEvent::Order(order.clone()));
        events.push(VenueEvent::Balances(self.balances()));
        Ok((order, events))
    }

    fn asset(&mut self, name: &str) -> &mut Asset {
        self.assets.entry(name.to_string()).or_default()
    }

    /// Records one execution of `rec` (its balances already moved) and returns the fill.
    fn execute(
        &mut self,
        rec: &mut MockOrder,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        liquidity: Liquidity,
        now_ms: i64,
    ) -> VenueFill {
        rec.order.filled += qty;
        rec.executed_quote += price * qty;
        rec.fees += fee;
        rec.order.ts_ms = now_ms;
        self.trade_seq += 1;
        let o = &rec.order;
        self.history.on_trade(PublicTrade {
            ts_ms: now_ms,
            market: o.market.clone(),
            side: match liquidity {
                Liquidity::Taker => o.side,
                Liquidity::Maker => opposite(o.side),
            },
            price,
            qty,
        });
        VenueFill {
            trade_id: TradeId(format!("T{:010}", self.trade_seq)),
            venue_order_id: o.venue_order_id.clone(),
            client_order_id: o.client_order_id.clone(),
            market: o.market.clone(),
            side: o.side,
            price,
            size: qty,
            fee,
            liquidity,
            ts_ms: now_ms,
        }
    }

    /// Stores an order where it belongs: on the book while live, in the history once finished.
    fn put(&mut self, o: MockOrder) {
        let id = o.order.venue_order_id.clone();
        if o.order.status.is_terminal() {
            self.orders.remove(&id);
            self.closed_order.push_back(id.clone());
            self.closed.insert(id, o);
            while self.closed_order.len() > self.params.closed_kept {
                if let Some(old) = self.closed_order.pop_front()
                    && let Some(gone) = self.closed.remove(&old)
                    && let Some(c) = &gone.order.client_order_id
                {
                    self.by_client.remove(c);
                }
            }
        } else {
            self.orders.insert(id, o);
        }
    }

    /// Every order, open and finished (as far as remembered).
    pub fn all_orders(&self) -> Vec<VenueOrder> {
        self.orders
            .values()
            .chain(self.closed.values())
            .map(|o| o.order.clone())
            .collect()
    }

    /// The venue's full record of an order, open or finished.
    pub fn record(&self, id: &VenueOrderId) -> Option<&MockOrder> {
        self.orders.get(id).or_else(|| self.closed.get(id))
    }

    fn find(&self, venue: Option<&VenueOrderId>, client: &ClientOrderId) -> Option<VenueOrderId> {
        venue
            .cloned()
            .or_else(|| self.by_client.get(client).cloned())
    }

    /// Gives back what a finished order still had locked.
    fn release(&mut self, rec: &mut MockOrder) {
        let (base, quote) = assets_of(&rec.order.market);
        let asset = match rec.order.side {
            Side::Buy => quote,
            Side::Sell => base,
        };
        let amount = rec.locked;
        let a = self.asset(&asset);
        a.locked -= amount;
        a.free += amount;
        rec.locked = Decimal::ZERO;
    }

    /// Answers one request as the venue does, with the events it causes. Shared by the
    /// in-process mock and the backtest.
    ///
    /// # Errors
    /// A [`VenueError`] with DeltaDeFi's code; nothing happened then.
    pub fn handle(
        &mut self,
        req: VenueRequest,
        now_ms: i64,
    ) -> Result<(VenueReply, Vec<VenueEvent>), VenueError> {
        Ok(match req {
            VenueRequest::Place(o) => {
                let (order, ev) = self.place(&o, now_ms)?;
                (VenueReply::Placed(order), ev)
            }
            VenueRequest::Cancel {
                venue_order_id,
                client_order_id,
                ..
            } => {
                let (order, ev) = self.cancel(venue_order_id.as_ref(), &client_order_id, now_ms)?;
                (VenueReply::Cancelled(order.venue_order_id), ev)
            }
            VenueRequest::CancelAll { market, .. } => {
                let (ids, ev) = self.cancel_all(&market, now_ms)?;
                (VenueReply::CancelledAll(ids), ev)
            }
            VenueRequest::Query {
                venue_order_id,
                client_order_id,
            } => (
                VenueReply::Order {
                    order: self.query(venue_order_id.as_ref(), &client_order_id),
                    fills: Vec::new(),
                },
                Vec::new(),
            ),
            VenueRequest::OpenOrders { market } => (
                VenueReply::OpenOrders(self.open_orders(&market)),
                Vec::new(),
            ),
            VenueRequest::Balances => (VenueReply::Balances(self.balances()), Vec::new()),
            // In process every fill reaches AccountFeed as an event; there is nothing to catch up.
            VenueRequest::RecentTrades { .. } => (VenueReply::Trades(Vec::new()), Vec::new()),
        })
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
        if self.closed.contains_key(&id) {
            return Err(VenueError::new(4201, "order is not open"));
        }
        let mut rec = self
            .orders
            .remove(&id)
            .ok_or_else(|| VenueError::new(4200, "Order not found"))?;
        let done = self.finish_cancelled(&mut rec, now_ms);
        self.put(rec);
        Ok((
            done.clone(),
            vec![
                VenueEvent::Order(done),
                VenueEvent::Balances(self.balances()),
            ],
        ))
    }

    fn finish_cancelled(&mut self, rec: &mut MockOrder, now_ms: i64) -> VenueOrder {
        self.release(rec);
        rec.order.status = VenueOrderStatus::Cancelled;
        rec.order.ts_ms = now_ms;
        rec.order.clone()
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
        let mut ids: Vec<VenueOrderId> = self
            .orders
            .values()
            .filter(|o| &o.order.market == market)
            .map(|o| o.order.venue_order_id.clone())
            .collect();
        if ids.is_empty() {
            return Err(VenueError::new(4200, "Order not found"));
        }
        ids.sort();
        let mut events = Vec::new();
        for id in &ids {
            if let Some(mut rec) = self.orders.remove(id) {
                events.push(VenueEvent::Order(self.finish_cancelled(&mut rec, now_ms)));
                self.put(rec);
            }
        }
        events.push(VenueEvent::Balances(self.balances()));
        Ok((ids, events))
    }

    /// Looks an order up.
    pub fn query(
        &self,
        venue: Option<&VenueOrderId>,
        client: &ClientOrderId,
    ) -> Option<VenueOrder> {
        self.find(venue, client)
            .and_then(|id| self.record(&id).map(|o| o.order.clone()))
    }

    /// Open orders of a market, oldest first.
    pub fn open_orders(&self, market: &MarketId) -> Vec<VenueOrder> {
        self.open_records(market)
            .into_iter()
            .map(|o| o.order.clone())
            .collect()
    }

    /// The venue's records of a market's open orders, oldest first.
    pub fn open_records(&self, market: &MarketId) -> Vec<&MockOrder> {
        let mut v: Vec<&MockOrder> = self
            .orders
            .values()
            .filter(|o| &o.order.market == market)
            .collect();
        v.sort_by(|a, b| {
            (a.created_ms, &a.order.venue_order_id).cmp(&(b.created_ms, &b.order.venue_order_id))
        });
        v
    }

    /// The records of a market's orders that traded (open or finished), newest first.
    pub fn traded_records(&self, market: &MarketId) -> Vec<&MockOrder> {
        let mut v: Vec<&MockOrder> = self
            .orders
            .values()
            .chain(self.closed.values())
            .filter(|o| &o.order.market == market && o.order.filled > Decimal::ZERO)
            .collect();
        v.sort_by(|a, b| {
            (b.order.ts_ms, &b.order.venue_order_id).cmp(&(a.order.ts_ms, &a.order.venue_order_id))
        });
        v
    }

    /// The market's trades, prices and candles.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The others' book of a market (known once its reference has moved).
    pub fn others(&self, market: &MarketId) -> Option<&OthersBook> {
        self.others.get(market)
    }

    /// The venue's order book of a market, as its depth stream shows it: the others' levels
    /// and our resting orders, aggregated by price; bids descending, asks ascending.
    pub fn depth(&self, market: &MarketId) -> Depth {
        let mut bids: Vec<Level> = Vec::new();
        let mut asks: Vec<Level> = Vec::new();
        let ours = || self.orders.values().filter(|o| &o.order.market == market);
        if let Some(b) = self.others.get(market) {
            // Our orders fill a share per reference move, so the others' levels can have moved
            // onto one of ours that is still partly resting; a real book would have traded
            // them away. The snapshot shows what a venue would: never crossed.
            let our_best = |side: Side| {
                ours()
                    .filter(move |o| o.order.side == side)
                    .map(|o| o.order.price)
            };
            let (our_bid, our_ask) = (our_best(Side::Buy).max(), our_best(Side::Sell).min());
            bids = b.levels(Side::Buy);
            asks = b.levels(Side::Sell);
            bids.retain(|(p, _)| our_ask.is_none_or(|a| *p < a));
            asks.retain(|(p, _)| our_bid.is_none_or(|b| *p > b));
        }
        for o in ours() {
            let left = o.order.size - o.order.filled;
            let side = match o.order.side {
                Side::Buy => &mut bids,
                Side::Sell => &mut asks,
            };
            match side.iter_mut().find(|(p, _)| *p == o.order.price) {
                Some((_, q)) => *q += left,
                None => side.push((o.order.price, left)),
            }
        }
        bids.sort_by_key(|l| std::cmp::Reverse(l.0));
        asks.sort_by_key(|l| l.0);
        Depth { bids, asks }
    }

    /// Moves the reference of a market (raw reference prices; the market's `anchor_bps`
    /// basis is applied here), rebuilds the others' book around it and fills whatever it
    /// trades through.
    pub fn on_reference(
        &mut self,
        market: &MarketId,
        ref_bid: Decimal,
        ref_ask: Decimal,
        now_ms: i64,
    ) -> Vec<VenueEvent> {
        self.move_reference(market, ref_bid, ref_ask, now_ms).events
    }

    /// [`Self::on_reference`], saying also whether the market's [`Self::depth`] may differ
    /// from before: the others' book changed shape, or something traded. Most reference
    /// ticks move the book by less than a price step, and its snapshot need not be rebuilt.
    pub fn move_reference(
        &mut self,
        market: &MarketId,
        ref_bid: Decimal,
        ref_ask: Decimal,
        now_ms: i64,
    ) -> ReferenceMoved {
        let shape_before = self.others.get(market).map(OthersBook::shape);
        let events = self.move_reference_inner(market, ref_bid, ref_ask, now_ms);
        let depth_changed =
            !events.is_empty() || self.others.get(market).map(OthersBook::shape) != shape_before;
        ReferenceMoved {
            events,
            depth_changed,
        }
    }

    fn move_reference_inner(
        &mut self,
        market: &MarketId,
        ref_bid: Decimal,
        ref_ask: Decimal,
        now_ms: i64,
    ) -> Vec<VenueEvent> {
        let Some(rules) = self.markets.get(market) else {
            return Vec::new();
        };
        // Every reference tick passes here: the market's entries are updated in place (no copy
        // of its id or rules), and a zero basis multiplies nothing.
        let (bid, ask) = if rules.anchor_bps.is_zero() {
            (ref_bid, ref_ask)
        } else {
            let basis = Decimal::ONE + bps(rules.anchor_bps);
            (ref_bid * basis, ref_ask * basis)
        };
        let book = OthersBook::new(
            bid,
            ask,
            rules.price_decimals,
            self.params.book_levels,
            self.params.book_level_size,
        );
        match self.references.get_mut(market) {
            Some(r) => *r = (bid, ask),
            None => {
                self.references.insert(market.clone(), (bid, ask));
            }
        }
        match (book, self.others.get_mut(market)) {
            (Some(b), Some(old)) => *old = b,
            (Some(b), None) => {
                self.others.insert(market.clone(), b);
            }
            (None, _) => {
                self.others.remove(market);
            }
        }
        self.history
            .on_mid(market, (bid + ask) / Decimal::TWO, now_ms);
        let touch = self.params.fill_on_touch;
        let mut crossing: Vec<VenueOrderId> = self
            .orders
            .values()
            .map(|o| &o.order)
            .filter(|o| &o.market == market)
            .filter(|o| match (o.side, touch) {
                (Side::Buy, false) => ask < o.price,
                (Side::Buy, true) => ask <= o.price,
                (Side::Sell, false) => bid > o.price,
                (Side::Sell, true) => bid >= o.price,
            })
            .map(|o| o.venue_order_id.clone())
            .collect();
        if crossing.is_empty() {
            return Vec::new();
        }
        crossing.sort();
        let Some(rules) = self.markets.get(market).cloned() else {
            return Vec::new();
        };
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

    /// One maker execution of a resting order at its price.
    fn fill_one(
        &mut self,
        id: &VenueOrderId,
        rules: &MarketRules,
        now_ms: i64,
    ) -> Option<Vec<VenueEvent>> {
        let mut rec = self.orders.remove(id)?;
        let lot = Decimal::new(1, rules.size_decimals);
        let remaining = rec.order.size - rec.order.filled;
        let chunk = (rec.order.size * self.params.partial_fill_ratio)
            .round_dp_with_strategy(rules.size_decimals, rust_decimal::RoundingStrategy::ToZero);
        let qty = chunk.max(lot).min(remaining);
        if qty <= Decimal::ZERO {
            self.orders.insert(id.clone(), rec);
            return None;
        }
        let price = rec.order.price;
        let notional = qty * price;
        let fee = fee(notional, bps(self.params.maker_fee_bps));
        let complete = rec.order.filled + qty >= rec.order.size;
        let (base, quote) = assets_of(&rec.order.market);
        match rec.order.side {
            Side::Buy => {
                // The lock of this part (its notional and maker fee); all of it at the end.
                let release = if complete {
                    rec.locked
                } else {
                    (notional * (Decimal::ONE + bps(self.params.maker_fee_bps))).min(rec.locked)
                };
                rec.locked -= release;
                let q = self.asset(&quote);
                q.locked -= release;
                q.free += release - notional - fee;
                self.asset(&base).free += qty;
            }
            Side::Sell => {
                let release = if complete {
                    rec.locked
                } else {
                    qty.min(rec.locked)
                };
                rec.locked -= release;
                let b = self.asset(&base);
                b.locked -= release;
                b.free += release - qty;
                self.asset(&quote).free += notional - fee;
            }
        }
        let fill = self.execute(&mut rec, price, qty, fee, Liquidity::Maker, now_ms);
        rec.order.status = if complete {
            VenueOrderStatus::Filled
        } else {
            VenueOrderStatus::PartiallyFilled
        };
        let order = rec.order.clone();
        self.put(rec);
        Some(vec![VenueEvent::Fill(fill), VenueEvent::Order(order)])
    }
}

/// A fee on `notional` at `rate`, to the micro-unit.
fn fee(notional: Decimal, rate: Decimal) -> Decimal {
    (notional * rate).round_dp(6)
}

/// The base size a quote amount buys at `price`, in whole lots.
fn base_of(quote: Decimal, price: Decimal, size_decimals: u32) -> Decimal {
    if price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    (quote / price).round_dp_with_strategy(size_decimals, rust_decimal::RoundingStrategy::ToZero)
}

/// What a reference move did at the venue.
#[derive(Debug)]
pub struct ReferenceMoved {
    /// Fills (and the balances after them) it caused.
    pub events: Vec<VenueEvent>,
    /// The market's depth may differ from the one before it.
    pub depth_changed: bool,
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
                taker_fee_bps: d("20"),
                partial_fill_ratio: d("0.5"),
                fill_on_touch: false,
                actions_per_second: aps,
                reject_ppm: 0,
                seed: 1,
                base_balance: d("1000"),
                quote_balance: d("1000"),
                book_levels: 3,
                book_level_size: d("100"),
                closed_kept: CLOSED_KEPT,
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
    fn the_depth_snapshot_is_never_crossed_by_a_partly_filled_order_of_ours() {
        let mut c = core(100);
        c.on_reference(&m(), d("0.45"), d("0.4502"), 0);
        c.place(&order("a", Side::Sell, "0.4505", "100"), 1)
            .expect("rests");
        // The reference bid reaches our ask without trading through it: nothing fills, and the
        // others' bid at our price is not shown (it would have traded with us).
        c.on_reference(&m(), d("0.4505"), d("0.4507"), 2);
        let depth = c.depth(&m());
        assert_eq!(depth.bids[0].0, d("0.4504"), "{depth:?}");
        assert_eq!(depth.asks[0], (d("0.4505"), d("100")), "{depth:?}");
        // It trades through: half fills, the rest still rests, and every bid the others show
        // is below it.
        c.on_reference(&m(), d("0.4507"), d("0.4509"), 3);
        let depth = c.depth(&m());
        assert_eq!(depth.asks[0], (d("0.4505"), d("50")), "{depth:?}");
        assert!(
            depth.bids.iter().all(|(p, _)| *p < d("0.4505")),
            "crossed: {depth:?}"
        );
    }

    #[test]
    fn a_reference_move_said_not_to_change_the_depth_leaves_it_as_it_was() {
        // A walk of sub-step and step moves, with orders of ours resting near the touch and
        // filled as the walk trades through them: whenever the move says the depth did not
        // change, a rebuilt snapshot equals the one before.
        let mut c = core(1_000_000);
        let mut rng = SplitMix64::new(7);
        let mut mid = d("0.45");
        let mut before = Depth::default();
        let (mut unchanged, mut changed) = (0, 0);
        for i in 0..5_000i64 {
            let step = Decimal::new(rng.below(7) as i64 - 3, 5);
            mid = (mid + step).max(d("0.3"));
            let moved = c.move_reference(&m(), mid - d("0.0001"), mid + d("0.0001"), i);
            let depth = c.depth(&m());
            if moved.depth_changed {
                changed += 1;
            } else {
                unchanged += 1;
                assert_eq!(depth, before, "move {i} said unchanged");
            }
            if i % 97 == 0 {
                // A taker: it consumes the others' touch until the next move rebuilds it.
                let r = req(OrderKind::Market, Side::Buy, None, Quantity::Base(d("30")));
                let _ = c.place_order(&r, None, i);
                before = c.depth(&m());
                continue;
            }
            if i % 50 == 0 {
                let side = if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let price = (mid + Decimal::new(rng.below(5) as i64 - 2, 4)).round_dp(4);
                let _ = c.place(&order(&format!("o{i}"), side, &price.to_string(), "20"), i);
            }
            before = c.depth(&m());
        }
        assert!(
            unchanged > 1_000 && changed > 500,
            "{unchanged} unchanged, {changed} changed"
        );
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
            Some(d("44.99") * d("1.001")),
            "a buy locks its notional and the maker fee"
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

    fn usdm(c: &MatchingCore) -> Balance {
        c.balances()
            .into_iter()
            .find(|b| b.asset == "usdm")
            .expect("usdm")
    }
    fn req(kind: OrderKind, side: Side, price: Option<&str>, q: Quantity) -> OrderRequest {
        OrderRequest {
            client_order_id: ClientOrderId(format!("r{side:?}{kind:?}{price:?}{q:?}").into()),
            market: m(),
            side,
            kind,
            price: price.map(d),
            quantity: q,
            post_only: false,
            slippage_bp: None,
        }
    }

    #[test]
    fn a_crossing_limit_order_takes_then_rests() {
        let mut c = core(100);
        c.on_reference(&m(), d("0.45"), d("0.4502"), 0);
        // Asks of the others: 0.4502, 0.4503, 0.4504 (100 each). Buy 250 up to 0.4503.
        let r = req(
            OrderKind::Limit,
            Side::Buy,
            Some("0.4503"),
            Quantity::Base(d("250")),
        );
        let (o, ev) = c.place_order(&r, None, 1).expect("placed");
        let fills: Vec<(Decimal, Decimal, Liquidity)> = ev
            .iter()
            .filter_map(|e| match e {
                VenueEvent::Fill(f) => Some((f.price, f.size, f.liquidity)),
                _ => None,
            })
            .collect();
        assert_eq!(
            fills,
            vec![
                (d("0.4502"), d("100"), Liquidity::Taker),
                (d("0.4503"), d("100"), Liquidity::Taker)
            ]
        );
        assert_eq!(
            (o.status, o.filled, o.size),
            (VenueOrderStatus::PartiallyFilled, d("200"), d("250"))
        );
        // Spent 90.05 + 0.2% taker fee; 50 rest locked at 0.4503 with the maker fee.
        let spent = d("90.05") + d("0.180100");
        let lock = d("50") * d("0.4503") * d("1.001");
        let u = usdm(&c);
        assert_eq!((u.free, u.locked), (d("1000") - spent - lock, lock));
        let rec = c.record(&o.venue_order_id).expect("record");
        assert_eq!(rec.avg_price(), d("0.45025"));
        // The rest now rests at the top of the venue's book.
        let book = c.depth(&m());
        assert_eq!(book.bids[0], (d("0.4503"), d("50")));
        assert_eq!(book.asks[0], (d("0.4504"), d("100")));
        // Post-only is refused against the others and against our own orders alike.
        let mut p = req(
            OrderKind::Limit,
            Side::Sell,
            Some("0.4503"),
            Quantity::Base(d("10")),
        );
        p.post_only = true;
        assert_eq!(c.place_order(&p, None, 2).err().map(|e| e.code), Some(4104));
    }

    #[test]
    fn market_orders_walk_the_book_within_their_slippage() {
        let mut c = core(100);
        let sell = req(OrderKind::Market, Side::Sell, None, Quantity::Base(d("10")));
        assert_eq!(
            c.place_order(&sell, None, 0).err().map(|e| e.code),
            Some(4109),
            "no book yet"
        );
        c.on_reference(&m(), d("0.45"), d("0.4502"), 0);
        let (o, _) = c.place_order(&sell, None, 1).expect("sold");
        assert_eq!((o.status, o.filled), (VenueOrderStatus::Filled, d("10")));
        let mut big = req(
            OrderKind::Market,
            Side::Sell,
            None,
            Quantity::Base(d("250")),
        );
        big.slippage_bp = Some(3); // 0.45 * (1 - 3 bp) = 0.449865: the 0.4499 level, not 0.4498
        let (o, _) = c.place_order(&big, None, 2).expect("sold");
        assert_eq!(
            (o.status, o.filled),
            (VenueOrderStatus::Cancelled, d("190")),
            "90 left at 0.45 and 100 at 0.4499; the rest is cancelled"
        );
        let buy = req(
            OrderKind::Market,
            Side::Buy,
            None,
            Quantity::Quote(d("9.0")),
        );
        let (o, _) = c.place_order(&buy, None, 3).expect("bought");
        assert_eq!(o.filled, d("19.99"), "9 USDM at 0.4502 buys 19.99 ADA");
        let mut bad = req(OrderKind::Market, Side::Buy, None, Quantity::Base(d("10")));
        bad.post_only = true;
        assert_eq!(
            c.place_order(&bad, None, 4).err().map(|e| e.code),
            Some(4105)
        );
        let mut bad = req(OrderKind::Market, Side::Buy, None, Quantity::Base(d("11")));
        bad.slippage_bp = Some(10_001);
        assert_eq!(
            c.place_order(&bad, None, 5).err().map(|e| e.code),
            Some(4108)
        );
        // Three ask levels of 100, 19.99 of them taken: a market buy of 299 gets what is left.
        let rich = req(OrderKind::Market, Side::Buy, None, Quantity::Base(d("299")));
        assert_eq!(
            c.place_order(&rich, None, 6)
                .map(|(o, _)| (o.status, o.filled))
                .ok(),
            Some((VenueOrderStatus::Cancelled, d("280.01")))
        );
        let poor = req(
            OrderKind::Limit,
            Side::Buy,
            Some("0.44"),
            Quantity::Base(d("3000")),
        );
        assert_eq!(
            c.place_order(&poor, None, 7).err().map(|e| e.code),
            Some(4050)
        );
    }
}
