//! The venue's trading rules of one market: precision, minimums and the reference basis.
//! Shared by the quote engine's config and the mock exchange.

use rust_decimal::Decimal;

use crate::config::MarketConfig;
use crate::types::MarketId;

/// True when `working` is further than `tolerance_bps` from `desired` (any distance from a
/// zero `desired`). Asked of every order on every priced tick: [`within_bps`] multiplies where
/// the tolerance was divided.
#[inline]
pub fn moved_beyond(working: Decimal, desired: Decimal, tolerance_bps: Decimal) -> bool {
    if desired.is_zero() {
        return !working.is_zero();
    }
    !within_bps(working, desired, tolerance_bps)
}

/// Distance between two prices in bps of `base` (0 when `base` is 0; `Decimal::MAX` when it is
/// beyond any `Decimal`, as from a dust-priced base: valid ticks can be both).
#[inline]
pub fn distance_bps(a: Decimal, base: Decimal) -> Decimal {
    if base.is_zero() {
        return Decimal::ZERO;
    }
    a.checked_sub(base)
        .and_then(|diff| diff.checked_div(base))
        .and_then(|ratio| ratio.checked_mul(Decimal::from(10_000)))
        .map_or(Decimal::MAX, |d| d.abs())
}

/// True when `a` is within `limit` bps of `base`: `distance_bps(a, base) <= limit`, computed
/// as `|a − base| × 10 000 ≤ limit × |base|`, without a division. The reference guard asks this
/// of every tick. Exact where the division rounds (beyond 28 digits); the division answers
/// where a product would overflow, and a distance beyond any `Decimal` is beyond the limit.
#[inline]
pub fn within_bps(a: Decimal, base: Decimal, limit: Decimal) -> bool {
    if base.is_zero() {
        return Decimal::ZERO <= limit;
    }
    let products = a
        .checked_sub(base)
        .and_then(|diff| diff.checked_mul(Decimal::from(10_000)))
        .zip(limit.checked_mul(base.abs()));
    match products {
        Some((diff, allowed)) => diff.abs() <= allowed,
        // A distance no Decimal can hold is beyond any limit.
        None => {
            let dist = distance_bps(a, base);
            dist < Decimal::MAX && dist <= limit
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    #[test]
    fn within_bps_holds_at_the_limit_and_not_beyond() {
        // 0.4545 is 100 bps above 0.45; 0.45 is 99.0099... bps below 0.4545.
        let cases = [
            ("0.4545", "0.45", "100", true),
            ("0.45450001", "0.45", "100", false),
            ("0.4455", "0.45", "100", true),
            ("0.44549999", "0.45", "100", false),
            ("0.45", "0.4545", "99.01", true),
            ("0.45", "0.4545", "99", false),
            ("-0.4545", "-0.45", "100", true),
            ("0.45", "0", "0", true),
            ("0.45", "0", "-1", false),
            ("79228162514264337593543950335", "1", "1", false),
            (
                "1",
                "0.0000000000000000000000000001",
                "79228162514264337593543950335",
                false,
            ),
        ];
        for (a, base, limit, want) in cases {
            assert_eq!(
                within_bps(d(a), d(base), d(limit)),
                want,
                "{a} vs {base}, {limit}"
            );
        }
    }

    proptest::proptest! {
        /// Multiplying, the requote test answers as dividing the tolerance did.
        #[test]
        fn moved_beyond_agrees_with_the_divided_tolerance(
            working in -10_000_000_000i64..10_000_000_000,
            desired in -10_000_000_000i64..10_000_000_000,
            scale in 0u32..12,
            tolerance in 0i64..100_000,
        ) {
            let (w, d) = (Decimal::new(working, scale), Decimal::new(desired, scale));
            let tol = Decimal::new(tolerance, 2);
            let divided = (w - d).abs() > d.abs() * crate::types::bps(tol);
            proptest::prop_assert_eq!(moved_beyond(w, d, tol), divided);
        }

        /// Without its division, the test answers as the distance does, wherever the
        /// distance's rounding (beyond 28 digits) cannot decide it.
        #[test]
        fn within_bps_agrees_with_distance_bps(
            a in 1i64..10_000_000_000,
            base in 1i64..10_000_000_000,
            scale in 0u32..12,
            limit in 0i64..100_000,
        ) {
            let (a, base) = (Decimal::new(a, scale), Decimal::new(base, scale));
            let limit = Decimal::new(limit, 2);
            let dist = distance_bps(a, base);
            proptest::prop_assume!((dist - limit).abs() > Decimal::new(1, 20));
            proptest::prop_assert_eq!(within_bps(a, base, limit), dist <= limit);
        }
    }
}
