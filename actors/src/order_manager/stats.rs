//! OrderManager's figures for the operator and the benchmark.

use actix::prelude::*;

use super::OrderManager;
use crate::latency::{LatencyHistogram, LatencySummary};
use crate::types::MarketId;

/// Asks for order figures.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "OrderStats")]
pub struct GetOrderStats;

/// Order figures.
#[derive(Debug, Clone, Default, PartialEq, MessageResponse)]
pub struct OrderStats {
    pub markets: Vec<MarketOrderStats>,
    /// Tick → approved intent latency.
    pub latency: LatencySummary,
    pub intents: u64,
    pub reconciled: bool,
}

/// Order figures of one market.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketOrderStats {
    pub market: MarketId,
    /// Non-terminal orders.
    pub live: usize,
    pub working: usize,
    pub fills: u64,
    /// The last flatten was confirmed by a listing with nothing open at the venue.
    pub flat: bool,
    /// A flatten is under way.
    pub flattening: bool,
}

/// Clears the tick → intent latency histogram (the benchmark does after its warm-up).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResetLatency;

impl Handler<ResetLatency> for OrderManager {
    type Result = ();
    fn handle(&mut self, _: ResetLatency, _: &mut Context<Self>) {
        self.latency = LatencyHistogram::default();
        if let Ok(mut h) = crate::latency::tick_to_write().lock() {
            *h = LatencyHistogram::default();
        }
    }
}

impl Handler<GetOrderStats> for OrderManager {
    type Result = OrderStats;
    fn handle(&mut self, _: GetOrderStats, _: &mut Context<Self>) -> OrderStats {
        OrderStats {
            markets: self
                .markets
                .iter()
                .map(|m| MarketOrderStats {
                    market: m.market.clone(),
                    live: self.tracker.live(&m.market),
                    working: self.tracker.working(&m.market),
                    fills: self.fills.get(&m.market).copied().unwrap_or(0),
                    flat: self.flattener.is_flat(&m.market),
                    flattening: self.flattener.in_progress(&m.market),
                })
                .collect(),
            latency: self.latency.summary(),
            intents: self.intents,
            reconciled: self
                .markets
                .iter()
                .all(|m| self.reconciled.contains(&m.market)),
        }
    }
}
