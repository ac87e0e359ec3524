//! QuoteEngine is an actor. It owns the pricing of every configured market: the last reference
//! book, our inventory and the sides RiskGuard allows. On each tick it prices the desired book
//! ([`pricing::price_book`]) and sends a [`QuoteTarget`] to OrderManager only when the book
//! moved beyond the requote tolerance, so ticks that change nothing cost one comparison.

pub mod pricing;

use std::time::Instant;

use actix::prelude::*;
use rust_decimal::Decimal;

use crate::config::MarketConfig;
pub use crate::messages::{InventoryChanged, ReferenceTicks, RequestRequote, TickReceived};
use crate::messages::{QuoteReason, QuoteTarget, TradingStateChanged};
use crate::registry::Reg;
use crate::store::{Store, Write};
use crate::supervision::ActorHealth;
use crate::types::{MarketId, Side, now_ms};
use crate::venue_book::TouchCache;
use pricing::MarketPricer;

/// Asks for per-market quote figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<MarketQuoteStats>")]
pub struct GetQuoteStats;

/// Quote figures of one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketQuoteStats {
    pub market: MarketId,
    pub ref_mid: Option<Decimal>,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub ticks: u64,
    pub targets: u64,
}

/// The pricer.
pub struct QuoteEngine {
    reg: Reg,
    store: Store,
    max_position: Decimal,
    markets: Vec<MarketPricer>,
    /// Each market's metric attributes, made once.
    market_attrs: Vec<MarketAttrs>,
    /// Each market's venue touch as last worked out (read again only when the book changed).
    touches: Vec<TouchCache>,
    /// Decisions priced in this handler, persisted in one write when it ends.
    decisions: Vec<Write>,
    health: ActorHealth,
}

/// A market's metric attributes, made once and passed by reference: cloning them per decision,
/// even as a shared string, was 1.5 % of the hot thread at max speed.
struct MarketAttrs {
    /// A decision's count: (market, reason) for each of [`QuoteReason::KINDS`], in order.
    quotes: Vec<[opentelemetry::KeyValue; 2]>,
    /// A clamped level's count: (market, stage "quote").
    clamped: [opentelemetry::KeyValue; 2],
}

impl MarketAttrs {
    fn new(market: &MarketId) -> Self {
        let market = crate::metrics::market_attr(market);
        Self {
            quotes: crate::metrics::market_reason_attrs(&market, &QuoteReason::KINDS),
            clamped: [market, opentelemetry::KeyValue::new("stage", "quote")],
        }
    }
}

impl QuoteEngine {
    /// An engine for `markets`; every market starts with no side allowed until RiskGuard speaks.
    pub fn new(reg: Reg, store: Store, markets: &[MarketConfig], max_position: Decimal) -> Self {
        let market_attrs = markets
            .iter()
            .map(|cfg| MarketAttrs::new(&cfg.market))
            .collect();
        let markets: Vec<_> = markets
            .iter()
            .map(|cfg| MarketPricer::new(cfg.clone()))
            .collect();
        Self {
            touches: vec![TouchCache::default(); markets.len()],
            reg,
            store,
            max_position,
            markets,
            market_attrs,
            decisions: Vec::new(),
            health: ActorHealth::default(),
        }
    }

    fn on_restart(&mut self, _: &mut Context<Self>) {
        // Forget what was sent: the next tick re-emits every market's target. OrderManager
        // diffs against working orders, so a repeated target costs nothing at the venue.
        for m in &mut self.markets {
            m.last = None;
        }
    }

    /// Prices market `idx` at wall-clock `now` (ms; a handler reads the clock once for all it
    /// prices); `tick` is the Binance tick that caused it, if one did.
    fn reprice(
        &mut self,
        idx: usize,
        reason: QuoteReason,
        tick: Option<&TickReceived>,
        force: bool,
        now: i64,
    ) {
        let max_position = self.max_position;
        let (Some(m), Some(attrs), Some(touch)) = (
            self.markets.get_mut(idx),
            self.market_attrs.get(idx),
            self.touches.get_mut(idx),
        ) else {
            return;
        };
        // Post-only orders at or through the venue's opposite touch would only earn a 4104:
        // keep them one step behind the others' touch (the venue's book as last seen, without
        // our orders, which this target replaces; a stale or unknown book leaves the quote
        // alone). The send path checks again against what still rests when it is written.
        let books = &self.reg.books;
        let touches = books
            .others_touch_cached(&m.cfg.market, now, touch)
            .unwrap_or((None, None));
        let Some(priced) = m.reprice(max_position, touches, reason, force) else {
            return;
        };
        if priced.moved > 0 {
            books.note_clamped(&m.cfg.market, u64::from(priced.moved));
            crate::metrics::metrics()
                .avoided_crosses
                .add(u64::from(priced.moved), &attrs.clamped);
        }
        let record = m.record(&priced, now, touches);
        self.decisions.push(Write::Quote(record));
        if let Some(a) = attrs.quotes.get(priced.reason.kind_index()) {
            crate::metrics::metrics().quotes.add(1, a);
        }
        self.reg.quote_targets.do_send(QuoteTarget {
            market: m.cfg.market.clone(),
            book: priced.book,
            tolerance_bps: m.cfg.requote_tolerance_bps,
            reason: priced.reason,
            tick: tick.map(|t| Box::new(t.clone())),
            priced_at: Instant::now(),
        });
    }

    /// Persists the decisions of this handler in one write, before OrderManager (on this
    /// arbiter, after this handler) can write anything they caused.
    fn persist_decisions(&mut self) {
        if !self.decisions.is_empty() {
            self.store.write(std::mem::take(&mut self.decisions), None);
        }
    }

    fn index_of(&self, market: &MarketId) -> Option<usize> {
        self.markets.iter().position(|m| &m.cfg.market == market)
    }
}

impl Actor for QuoteEngine {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.health.starts += 1;
    }
}

crate::supervised_actor!(QuoteEngine, "quote_engine");

impl Handler<ReferenceTicks> for QuoteEngine {
    type Result = ();
    fn handle(&mut self, msg: ReferenceTicks, _: &mut Context<Self>) {
        // One clock read for the message's ticks: they were received together, and are priced
        // within microseconds of each other.
        let now = now_ms();
        for received in msg.iter() {
            let t = &received.tick;
            for idx in 0..self.markets.len() {
                let m = &mut self.markets[idx];
                if m.cfg.reference != t.symbol {
                    continue;
                }
                m.reference = Some((t.bid, t.ask));
                m.ticks += 1;
                self.reprice(
                    idx,
                    QuoteReason::PriceMoved { bps: Decimal::ZERO },
                    Some(received),
                    false,
                    now,
                );
            }
        }
        self.persist_decisions();
    }
}

impl Handler<InventoryChanged> for QuoteEngine {
    type Result = ();
    fn handle(&mut self, msg: InventoryChanged, _: &mut Context<Self>) {
        if let Some(idx) = self.index_of(&msg.market) {
            self.markets[idx].inventory = msg.position;
            self.reprice(idx, QuoteReason::Inventory, None, false, now_ms());
            self.persist_decisions();
        }
    }
}

impl Handler<TradingStateChanged> for QuoteEngine {
    type Result = ();
    fn handle(&mut self, msg: TradingStateChanged, _: &mut Context<Self>) {
        if let Some(idx) = self.index_of(&msg.market) {
            let m = &mut self.markets[idx];
            m.sides = msg.sides;
            m.inventory = msg.position;
            self.reprice(idx, QuoteReason::Risk, None, true, now_ms());
            self.persist_decisions();
        }
    }
}

impl Handler<RequestRequote> for QuoteEngine {
    type Result = ();
    fn handle(&mut self, msg: RequestRequote, _: &mut Context<Self>) {
        for idx in 0..self.markets.len() {
            if msg
                .market
                .as_ref()
                .is_none_or(|m| *m == self.markets[idx].cfg.market)
            {
                self.reprice(idx, msg.reason.clone(), None, true, now_ms());
            }
        }
        self.persist_decisions();
    }
}

impl Handler<GetQuoteStats> for QuoteEngine {
    type Result = MessageResult<GetQuoteStats>;
    fn handle(&mut self, _: GetQuoteStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.markets
                .iter()
                .map(|m| MarketQuoteStats {
                    market: m.cfg.market.clone(),
                    ref_mid: m.reference.map(|(b, a)| (b + a) / Decimal::TWO),
                    bid: m
                        .last
                        .as_ref()
                        .and_then(|b| b.best(Side::Buy))
                        .map(|o| o.price),
                    ask: m
                        .last
                        .as_ref()
                        .and_then(|b| b.best(Side::Sell))
                        .map(|o| o.price),
                    ticks: m.ticks,
                    targets: m.targets,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decision's attributes are its market and its reason's kind, for every reason; a
    /// clamp's, its market and the quote stage.
    #[test]
    fn market_attributes_name_the_market_and_the_reason() {
        let a = MarketAttrs::new(&MarketId("ADAUSDM".into()));
        let text = |kv: &opentelemetry::KeyValue| format!("{}={}", kv.key, kv.value);
        for reason in [
            QuoteReason::Start,
            QuoteReason::PriceMoved { bps: Decimal::ONE },
            QuoteReason::Inventory,
            QuoteReason::Risk,
            QuoteReason::Reconciliation,
            QuoteReason::NotSent,
        ] {
            let attrs = &a.quotes[reason.kind_index()];
            assert_eq!(
                attrs.iter().map(text).collect::<Vec<_>>(),
                [
                    "market=ADAUSDM".to_string(),
                    format!("reason={}", reason.kind())
                ]
            );
        }
        assert_eq!(
            a.clamped.iter().map(text).collect::<Vec<_>>(),
            ["market=ADAUSDM", "stage=quote"]
        );
    }
}
