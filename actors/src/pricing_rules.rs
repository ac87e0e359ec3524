//! The venue's trading rules of one market: precision, minimums and the reference basis.
//! Shared by the quote engine's config and the mock exchange.

use rust_decimal::Decimal;

use crate::config::MarketConfig;
use crate::types::MarketId;

/// True when `working` is further than `tolerance_bps` from `desired`.
#[inline]
pub fn moved_beyond(working: Decimal, desired: Decimal, tolerance_bps: Decimal) -> bool {
    (working - desired).abs() > desired.abs() * crate::types::bps(tolerance_bps)
}

/// Distance between two prices in bps of `base` (0 when `base` is 0).
#[inline]
pub fn distance_bps(a: Decimal, base: Decimal) -> Decimal {
    if base.is_zero() {
        Decimal::ZERO
    } else {
        ((a - base) / base * Decimal::from(10_000)).abs()
    }
}

/// Precision and minimum-size rules of a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRules {
    pub market: MarketId,
    pub price_decimals: u32,
    pub size_decimals: u32,
    pub min_order_size: Decimal,
    pub min_order_notional: Decimal,
    /// Basis between the reference and this market, in bps.
    pub anchor_bps: Decimal,
}

impl From<&MarketConfig> for MarketRules {
    fn from(m: &MarketConfig) -> Self {
        Self {
            market: m.market.clone(),
            price_decimals: m.price_dp(),
            size_decimals: m.size_dp(),
            min_order_size: m.min_size(),
            min_order_notional: m.min_notional(),
            anchor_bps: m.anchor_bps,
        }
    }
}
