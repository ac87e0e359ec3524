//! The rest of the market, as the mock simulates it: around the reference touch (after the
//! market's basis, on the venue's tick grid: bid rounded down, ask up), `book_levels` price
//! levels per side one tick apart with `book_level_size` base each. The book is rebuilt on every
//! reference move; what a taker order consumed stays consumed until then.

use std::collections::HashMap;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::types::Side;

/// How much a taker order wants: a base size, or a quote amount to spend (market buys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Base(Decimal),
    Quote(Decimal),
}

/// Other participants' resting liquidity in one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OthersBook {
    /// Best bid and ask on the tick grid, bid < ask.
    pub bid: Decimal,
    pub ask: Decimal,
    step: Decimal,
    levels: u32,
    size: Decimal,
    /// Base consumed at (side of the resting liquidity, price) since the last move.
    consumed: HashMap<(Side, Decimal), Decimal>,
}

impl OthersBook {
    /// The book around a raw (basis-adjusted) touch; `None` when there is no positive bid.
    pub fn new(
        raw_bid: Decimal,
        raw_ask: Decimal,
        price_decimals: u32,
        levels: u32,
        size: Decimal,
    ) -> Option<Self> {
        let step = Decimal::new(1, price_decimals);
        let bid =
            raw_bid.round_dp_with_strategy(price_decimals, RoundingStrategy::ToNegativeInfinity);
        let mut ask =
            raw_ask.round_dp_with_strategy(price_decimals, RoundingStrategy::ToPositiveInfinity);
        if ask <= bid {
            ask = bid + step;
        }
        (bid > Decimal::ZERO).then(|| Self {
            bid,
            ask,
            step,
            levels: levels.max(1),
            size,
            consumed: HashMap::new(),
        })
    }

    /// What the levels shown depend on, besides the fixed level count and size: the touch,
    /// and whether any of it was consumed since the last move. Equal shapes show equal levels.
    pub fn shape(&self) -> (Decimal, Decimal, bool) {
        (self.bid, self.ask, self.consumed.is_empty())
    }

    /// The levels of resting liquidity on `side` (bids best first, descending; asks ascending)
    /// with what is left at each, empty ones omitted.
    pub fn levels(&self, side: Side) -> Vec<(Decimal, Decimal)> {
        // Built on every change of the book: one step added per level (the same price as the
        // touch plus its offset, exactly), and no lookups while nothing was consumed.
        let mut out = Vec::with_capacity(usize::try_from(self.levels).unwrap_or(0));
        let mut p = match side {
            Side::Buy => self.bid,
            Side::Sell => self.ask,
        };
        for _ in 0..self.levels {
            // Bids descend: once a level is not positive, none further is.
            if p <= Decimal::ZERO {
                break;
            }
            let left = match self.consumed.get(&(side, p)) {
                Some(used) => (self.size - used).max(Decimal::ZERO),
                None => self.size,
            };
            if left > Decimal::ZERO {
                out.push((p, left));
            }
            p = match side {
                Side::Buy => p - self.step,
                Side::Sell => p + self.step,
            };
        }
        out
    }

    /// The best price with liquidity left on `side`.
    pub fn best(&self, side: Side) -> Option<Decimal> {
        self.levels(side).first().map(|(p, _)| *p)
    }

    /// What a taker order of `taker` side would execute: (price, base) per level, best first,
    /// at prices no worse than `limit`, in lots of `size_decimals`. Changes nothing.
    pub fn walk(
        &self,
        taker: Side,
        limit: Option<Decimal>,
        want: Want,
        size_decimals: u32,
    ) -> Vec<(Decimal, Decimal)> {
        let resting = match taker {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        };
        let mut left = want;
        let mut out = Vec::new();
        for (price, available) in self.levels(resting) {
            let acceptable = limit.is_none_or(|l| match taker {
                Side::Buy => price <= l,
                Side::Sell => price >= l,
            });
            if !acceptable {
                break;
            }
            let qty = match left {
                Want::Base(b) => b.min(available),
                Want::Quote(q) => (q / price)
                    .round_dp_with_strategy(size_decimals, RoundingStrategy::ToZero)
                    .min(available),
            };
            if qty <= Decimal::ZERO {
                break;
            }
            out.push((price, qty));
            left = match left {
                Want::Base(b) => Want::Base(b - qty),
                Want::Quote(q) => Want::Quote(q - qty * price),
            };
            if matches!(left, Want::Base(b) if b <= Decimal::ZERO) {
                break;
            }
        }
        out
    }

    /// Consumes `qty` base at `price` of the resting liquidity of `side`.
    pub fn take(&mut self, side: Side, price: Decimal, qty: Decimal) {
        *self.consumed.entry((side, price)).or_default() += qty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn levels_are_on_the_grid_and_walks_consume() {
        let mut b = OthersBook::new(d("0.45003"), d("0.45012"), 4, 3, d("100")).expect("book");
        assert_eq!((b.bid, b.ask), (d("0.4500"), d("0.4502")));
        assert_eq!(
            b.levels(Side::Sell),
            vec![
                (d("0.4502"), d("100")),
                (d("0.4503"), d("100")),
                (d("0.4504"), d("100"))
            ]
        );
        let fills = b.walk(Side::Buy, Some(d("0.4503")), Want::Base(d("250")), 2);
        assert_eq!(
            fills,
            vec![(d("0.4502"), d("100")), (d("0.4503"), d("100"))]
        );
        for (p, q) in &fills {
            b.take(Side::Sell, *p, *q);
        }
        assert_eq!(b.best(Side::Sell), Some(d("0.4504")));
        // Spending quote buys whole lots only.
        let q = b.walk(Side::Buy, None, Want::Quote(d("10")), 2);
        assert_eq!(q, vec![(d("0.4504"), d("22.20"))]);
        // A market sell walks the bids down.
        let s = b.walk(Side::Sell, None, Want::Base(d("150")), 2);
        assert_eq!(s, vec![(d("0.4500"), d("100")), (d("0.4499"), d("50"))]);
    }

    #[test]
    fn a_touch_tighter_than_a_tick_still_has_two_sides() {
        let b = OthersBook::new(d("0.45"), d("0.45"), 4, 1, d("1")).expect("book");
        assert!(b.bid < b.ask);
        assert!(OthersBook::new(d("0"), d("0.1"), 4, 1, d("1")).is_none());
    }
}
