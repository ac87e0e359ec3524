//! What the mock remembers of the market for its public endpoints: the trades (ours, as
//! DeltaDeFi's public trades would include them), the last traded price, and one-minute candles
//! of the reference mid with the traded volume, aggregated on request (`/market/graph`).

use std::collections::VecDeque;

use rust_decimal::Decimal;

use crate::types::{FastMap, MarketId, Side};

/// One public trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTrade {
    pub ts_ms: i64,
    pub market: MarketId,
    /// The taker's side.
    pub side: Side,
    pub price: Decimal,
    pub qty: Decimal,
}

/// One OHLC candle; `t` is its start in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candle {
    pub t: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
}

/// Trades kept for the recent-trades endpoints.
const TRADES_KEPT: usize = 10_000;
/// One-minute candles kept per market (14 days).
const MINUTES_KEPT: usize = 14 * 24 * 60;

/// The market's memory.
#[derive(Debug, Default)]
pub struct History {
    trades: VecDeque<PublicTrade>,
    last_price: FastMap<MarketId, Decimal>,
    minutes: FastMap<MarketId, VecDeque<Candle>>,
}

impl History {
    fn minute(&mut self, market: &MarketId, ts_ms: i64, price: Decimal) -> Option<&mut Candle> {
        let t = ts_ms.div_euclid(60_000) * 60;
        // Looked up before it is inserted: a market's id is copied once, not per tick.
        if !self.minutes.contains_key(market) {
            self.minutes.insert(market.clone(), VecDeque::new());
        }
        let q = self.minutes.get_mut(market)?;
        if q.back().is_none_or(|c| c.t < t) {
            q.push_back(Candle {
                t,
                open: price,
                high: price,
                low: price,
                close: price,
                volume: Decimal::ZERO,
            });
            if q.len() > MINUTES_KEPT {
                q.pop_front();
            }
        }
        // A clock that stepped back lands in the latest candle.
        q.back_mut()
    }

    /// The reference mid moved.
    pub fn on_mid(&mut self, market: &MarketId, mid: Decimal, ts_ms: i64) {
        if let Some(c) = self.minute(market, ts_ms, mid) {
            c.high = c.high.max(mid);
            c.low = c.low.min(mid);
            c.close = mid;
        }
    }

    /// A trade happened.
    pub fn on_trade(&mut self, trade: PublicTrade) {
        if let Some(c) = self.minute(&trade.market, trade.ts_ms, trade.price) {
            c.volume += trade.qty;
        }
        self.last_price.insert(trade.market.clone(), trade.price);
        self.trades.push_back(trade);
        if self.trades.len() > TRADES_KEPT {
            self.trades.pop_front();
        }
    }

    /// The last traded price of `market`.
    pub fn last_price(&self, market: &MarketId) -> Option<Decimal> {
        self.last_price.get(market).copied()
    }

    /// The latest `limit` trades of `market`, newest first.
    pub fn recent_trades(&self, market: &MarketId, limit: usize) -> Vec<PublicTrade> {
        self.trades
            .iter()
            .rev()
            .filter(|t| &t.market == market)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Candles of `interval_s` seconds whose start lies in `start_s..=end_s`, oldest first.
    pub fn candles(
        &self,
        market: &MarketId,
        interval_s: i64,
        start_s: i64,
        end_s: i64,
    ) -> Vec<Candle> {
        let mut out: Vec<Candle> = Vec::new();
        let Some(q) = self.minutes.get(market) else {
            return out;
        };
        for m in q {
            let t = m.t.div_euclid(interval_s.max(60)) * interval_s.max(60);
            if t < start_s || t > end_s {
                continue;
            }
            match out.last_mut() {
                Some(c) if c.t == t => {
                    c.high = c.high.max(m.high);
                    c.low = c.low.min(m.low);
                    c.close = m.close;
                    c.volume += m.volume;
                }
                _ => out.push(Candle { t, ..m.clone() }),
            }
        }
        out
    }
}

/// Seconds of a `/market/graph` interval (`5m`, `15m`, `30m`, `1h`, `1d`, `1w`, `1M` = 30 days).
pub fn interval_seconds(interval: &str) -> Option<i64> {
    Some(match interval {
        "1m" => 60,
        "5m" => 300,
        "15m" => 900,
        "30m" => 1_800,
        "1h" => 3_600,
        "1d" => 86_400,
        "1w" => 604_800,
        "1M" => 2_592_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn candles_aggregate_minutes_and_trades() {
        let m = MarketId("ADAUSDM".into());
        let mut h = History::default();
        h.on_mid(&m, d("0.45"), 0);
        h.on_mid(&m, d("0.47"), 30_000);
        h.on_mid(&m, d("0.44"), 61_000);
        h.on_trade(PublicTrade {
            ts_ms: 62_000,
            market: m.clone(),
            side: Side::Buy,
            price: d("0.445"),
            qty: d("10"),
        });
        h.on_mid(&m, d("0.46"), 400_000);
        let one = h.candles(&m, 60, 0, i64::MAX);
        assert_eq!(one.len(), 3);
        assert_eq!(
            (one[0].open, one[0].high, one[0].low, one[0].close),
            (d("0.45"), d("0.47"), d("0.45"), d("0.47"))
        );
        assert_eq!(one[1].volume, d("10"));
        let five = h.candles(&m, 300, 0, i64::MAX);
        assert_eq!(five.len(), 2);
        assert_eq!(
            (
                five[0].t,
                five[0].open,
                five[0].high,
                five[0].low,
                five[0].close
            ),
            (0, d("0.45"), d("0.47"), d("0.44"), d("0.44"))
        );
        assert_eq!(h.candles(&m, 300, 300, 300).len(), 1);
        assert_eq!(h.last_price(&m), Some(d("0.445")));
        assert_eq!(h.recent_trades(&m, 5).len(), 1);
        assert_eq!(interval_seconds("1h"), Some(3_600));
        assert_eq!(interval_seconds("2h"), None);
    }
}
