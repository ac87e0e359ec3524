//! What each market's live orders expose and lock, kept up to date as orders change: every
//! risk check asks for them, and adding every live order up again per check (a Decimal
//! multiplication and two saturating additions per order, a few tens of orders at max speed)
//! was a quarter of OrderManager's time.
//!
//! A running sum is only as good as its arithmetic: an order's share is added when it appears
//! or changes and the same share taken away when it changes again or goes, so one rounded or
//! saturated step would leave the sum wrong for good. Each step is checked to be exact (no
//! overflow, no lost digit); the first that is not marks the market's sums as not to be
//! trusted, and [`super::book::OrderTracker`] adds its orders up again (as it always did)
//! until a recount from the orders is exact again.

use rust_decimal::Decimal;

use crate::orders::Order;
use crate::types::{MarketId, Side};

/// One order's part in its market's sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Share {
    side: Side,
    remaining: Decimal,
    /// Buys only: price × remaining (`None` if that product is not exact).
    notional: Option<Decimal>,
    /// Not finished: counted in the funds in use (every tracked order counts in the exposure).
    live: bool,
    /// Acknowledged by the venue.
    acked: bool,
}

impl Share {
    pub(super) fn of(o: &Order) -> Self {
        let remaining = o.remaining();
        Self {
            side: o.side,
            remaining,
            notional: match o.side {
                Side::Buy => mul_exact(o.price, remaining),
                Side::Sell => None,
            },
            live: !o.state.is_terminal(),
            acked: o.state.is_acknowledged(),
        }
    }
}

/// The sums of one market's tracked orders.
#[derive(Debug, Clone)]
pub(super) struct MarketSums {
    pub market: MarketId,
    /// Every step so far was exact: the figures below are the orders' sums.
    pub exact: bool,
    /// Tracked orders (the exposure's count), and the live buys and sells among them.
    pub orders: u32,
    pub live_buys: u32,
    pub live_sells: u32,
    /// Remaining size of every tracked buy / sell (the exposure).
    pub open_buy: Decimal,
    pub open_sell: Decimal,
    /// Live buys' notional, all and unacknowledged; live sells' remaining size, all and
    /// unacknowledged (the funds in use).
    pub buy_notional: Decimal,
    pub unacked_buy_notional: Decimal,
    pub sell_base: Decimal,
    pub unacked_sell_base: Decimal,
}

impl MarketSums {
    pub(super) fn new(market: MarketId) -> Self {
        Self {
            market,
            exact: true,
            orders: 0,
            live_buys: 0,
            live_sells: 0,
            open_buy: Decimal::ZERO,
            open_sell: Decimal::ZERO,
            buy_notional: Decimal::ZERO,
            unacked_buy_notional: Decimal::ZERO,
            sell_base: Decimal::ZERO,
            unacked_sell_base: Decimal::ZERO,
        }
    }

    /// Counts `share` in (`add`) or out; the sums stop being trusted at the first step that
    /// is not exact.
    pub(super) fn count(&mut self, share: &Share, add: bool) {
        if self.step(share, add).is_none() {
            self.exact = false;
        }
    }

    fn step(&mut self, s: &Share, add: bool) -> Option<()> {
        let op = |a: Decimal, b: Decimal| {
            if add {
                add_exact(a, b)
            } else {
                sub_exact(a, b)
            }
        };
        let n = |c: u32| {
            if add {
                c.checked_add(1)
            } else {
                c.checked_sub(1)
            }
        };
        self.orders = n(self.orders)?;
        match s.side {
            Side::Buy => {
                self.open_buy = op(self.open_buy, s.remaining)?;
                if s.live {
                    let notional = s.notional?;
                    self.live_buys = n(self.live_buys)?;
                    self.buy_notional = op(self.buy_notional, notional)?;
                    if !s.acked {
                        self.unacked_buy_notional = op(self.unacked_buy_notional, notional)?;
                    }
                }
            }
            Side::Sell => {
                self.open_sell = op(self.open_sell, s.remaining)?;
                if s.live {
                    self.live_sells = n(self.live_sells)?;
                    self.sell_base = op(self.sell_base, s.remaining)?;
                    if !s.acked {
                        self.unacked_sell_base = op(self.unacked_sell_base, s.remaining)?;
                    }
                }
            }
        }
        Some(())
    }
}

/// `a + b` when it is exact: no overflow, and no digit rounded off (rust_decimal keeps the
/// larger scale of the two unless the result does not fit, and then rounds to fewer places).
fn add_exact(a: Decimal, b: Decimal) -> Option<Decimal> {
    let r = a.checked_add(b)?;
    (r.scale() >= a.scale().max(b.scale())).then_some(r)
}

/// `a - b` when it is exact, as [`add_exact`].
fn sub_exact(a: Decimal, b: Decimal) -> Option<Decimal> {
    let r = a.checked_sub(b)?;
    (r.scale() >= a.scale().max(b.scale())).then_some(r)
}

/// `a × b` when it is exact: the product keeps every place of both factors.
fn mul_exact(a: Decimal, b: Decimal) -> Option<Decimal> {
    let r = a.checked_mul(b)?;
    (r.scale() == a.scale() + b.scale()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    /// The checked steps refuse what would round or overflow, and give the plain result
    /// otherwise.
    #[test]
    fn exact_steps_refuse_rounding_and_overflow() {
        assert_eq!(add_exact(d("0.45"), d("100.5")), Some(d("100.95")));
        assert_eq!(sub_exact(d("100.95"), d("100.5")), Some(d("0.45")));
        assert_eq!(mul_exact(d("0.4501"), d("1000.5")), Some(d("450.32505")));
        assert_eq!(add_exact(Decimal::MAX, Decimal::ONE), None, "overflow");
        assert_eq!(mul_exact(Decimal::MAX, Decimal::TWO), None, "overflow");
        // 28 places and 27 digits before the point cannot both be kept.
        let big = d("100000000000000000000000000");
        let tiny = d("0.0000000000000000000000000001");
        assert_eq!(add_exact(big, tiny), None, "a digit would be rounded off");
        assert_eq!(mul_exact(tiny, tiny), None, "56 places round to 28");
        assert_eq!(big + tiny, big, "where the plain sum rounds it away");
    }
}
