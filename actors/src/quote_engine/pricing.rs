//! Pricing: from a reference best bid/ask and our inventory to the desired book of a market.
//!
//! Arithmetic is `Decimal` throughout. Rounding happens only in the named functions below and
//! always in the safe direction: bids down, asks up, sizes down to the lot.
//!
//! Invariants of [`price_book`] (checked by `property_tests`):
//! - every price is on the venue's tick grid and > 0, every size on the lot grid;
//! - every bid < every ask, and each level is further from the anchor than the one before;
//! - no bid reaches the (basis-adjusted) reference ask and no ask reaches the reference bid;
//! - every size ≥ the minimum order size and every notional ≥ the minimum notional.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::config::{Anchor, MarketConfig};
use crate::messages::QuoteReason;
pub use crate::messages::{DesiredOrder, QuoteBook, SidesAllowed};
use crate::store::rows::QuoteRecord;
use crate::types::{Side, Slot, bps};

impl QuoteBook {
    /// Returns the best (level-0) order of `side`, if quoted.
    pub fn best(&self, side: Side) -> Option<&DesiredOrder> {
        self.orders
            .iter()
            .filter(|o| o.side == side)
            .min_by_key(|o| o.slot.level)
    }
}

impl SidesAllowed {
    pub const BOTH: SidesAllowed = SidesAllowed {
        buy: true,
        sell: true,
    };
    pub const NONE: SidesAllowed = SidesAllowed {
        buy: false,
        sell: false,
    };

    fn allows(self, side: Side) -> bool {
        match side {
            Side::Buy => self.buy,
            Side::Sell => self.sell,
        }
    }
}

/// The grid step for `decimals` places: 10^-decimals.
pub fn step(decimals: u32) -> Decimal {
    Decimal::new(1, decimals)
}

/// Rounds a bid down to the tick grid.
pub fn round_bid(price: Decimal, decimals: u32) -> Decimal {
    price.round_dp_with_strategy(decimals, RoundingStrategy::ToNegativeInfinity)
}

/// Rounds an ask up to the tick grid.
pub fn round_ask(price: Decimal, decimals: u32) -> Decimal {
    price.round_dp_with_strategy(decimals, RoundingStrategy::ToPositiveInfinity)
}

/// Rounds a size down to the lot grid.
pub fn round_size(size: Decimal, decimals: u32) -> Decimal {
    size.round_dp_with_strategy(decimals, RoundingStrategy::ToZero)
}

/// The largest grid price strictly below `x`.
pub fn grid_below(x: Decimal, decimals: u32) -> Decimal {
    round_ask(x, decimals) - step(decimals)
}

/// The smallest grid price strictly above `x`.
pub fn grid_above(x: Decimal, decimals: u32) -> Decimal {
    round_bid(x, decimals) + step(decimals)
}

pub use crate::pricing_rules::{distance_bps, moved_beyond};

/// Prices the desired book of one market.
///
/// `inventory` is the base position; `max_position` scales the skew: at `+max_position` both
/// sides move down by `skew_bps_at_max_position` (we want to sell), at `-max_position` up.
pub fn price_book(
    m: &MarketConfig,
    max_position: Decimal,
    ref_bid: Decimal,
    ref_ask: Decimal,
    inventory: Decimal,
    sides: SidesAllowed,
) -> QuoteBook {
    price_book_with(
        m,
        &Spreads::of(m),
        max_position,
        (ref_bid, ref_ask),
        inventory,
        sides,
    )
}

/// The fractions pricing takes from a market's config alone (its bps divided out), worked out
/// once per market rather than four times per book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spreads {
    basis: Decimal,
    skew: Decimal,
    half: Decimal,
    spacing: Decimal,
}

impl Spreads {
    /// `m`'s fractions, as [`price_book`] has always computed them.
    pub fn of(m: &MarketConfig) -> Self {
        Self {
            basis: Decimal::ONE + bps(m.anchor_bps),
            skew: bps(m.skew_bps_at_max_position),
            half: bps(m.venue_spread_bps) / Decimal::TWO,
            spacing: bps(m.level_spacing_bps),
        }
    }
}

/// [`price_book`] with `m`'s [`Spreads`] already worked out.
fn price_book_with(
    m: &MarketConfig,
    s: &Spreads,
    max_position: Decimal,
    (ref_bid, ref_ask): (Decimal, Decimal),
    inventory: Decimal,
    sides: SidesAllowed,
) -> QuoteBook {
    let basis = s.basis;
    let rb = ref_bid * basis;
    let ra = ref_ask * basis;
    let mid = (rb + ra) / Decimal::TWO;
    let ratio = if max_position.is_zero() {
        Decimal::ZERO
    } else {
        (inventory / max_position).clamp(Decimal::NEGATIVE_ONE, Decimal::ONE)
    };
    let shift = Decimal::ONE - s.skew * ratio;
    let (bid_anchor, ask_anchor) = match m.anchor {
        Anchor::Mid => (mid * shift, mid * shift),
        Anchor::Touch => (rb * shift, ra * shift),
    };
    let half = s.half;
    let bid_cap = grid_below(ra, m.price_dp());
    let ask_floor = grid_above(rb, m.price_dp());

    let mut orders = Vec::with_capacity(usize::from(m.levels) * 2);
    let mut size = m.order_size;
    for level in 0..m.levels {
        let off = half + s.spacing * Decimal::from(level);
        let qty = round_size(size, m.size_dp());
        let bid = round_bid(bid_anchor * (Decimal::ONE - off), m.price_dp()).min(bid_cap);
        let ask = round_ask(ask_anchor * (Decimal::ONE + off), m.price_dp()).max(ask_floor);
        for (side, price) in [(Side::Buy, bid), (Side::Sell, ask)] {
            let tradable = price > Decimal::ZERO
                && qty >= m.min_size()
                && qty > Decimal::ZERO
                && qty * price >= m.min_notional();
            let further_than_previous = orders
                .iter()
                .rev()
                .find(|o: &&DesiredOrder| o.side == side)
                .is_none_or(|prev| match side {
                    Side::Buy => price < prev.price,
                    Side::Sell => price > prev.price,
                });
            if tradable && further_than_previous && sides.allows(side) {
                orders.push(DesiredOrder {
                    slot: Slot { side, level },
                    side,
                    price,
                    size: qty,
                });
            }
        }
        size *= m.level_size_multiplier;
    }
    QuoteBook {
        ref_bid: rb,
        ref_ask: ra,
        fair: (bid_anchor + ask_anchor) / Decimal::TWO,
        orders,
    }
}

/// Keeps a post-only book behind the venue's opposite touch: a bid at or above `ask_touch`
/// moves to one price step below it, an ask at or below `bid_touch` to one step above it.
/// A moved order that is no longer further out than its side's previous level, not positive,
/// or under the minimum notional is dropped. Returns how many orders were moved or dropped.
///
/// The touches are the venue's book without our orders being cancelled
/// ([`crate::venue_book::VenueBooks::opposite_touch`]); `None` leaves that side alone.
pub fn keep_behind_touch(
    m: &MarketConfig,
    book: &mut QuoteBook,
    bid_touch: Option<Decimal>,
    ask_touch: Option<Decimal>,
) -> u32 {
    let tick = step(m.price_dp());
    let mut changed = 0u32;
    let mut last_kept: [Option<Decimal>; 2] = [None, None];
    book.orders.retain_mut(|o| {
        let (limit, side_idx) = match o.side {
            Side::Buy => (ask_touch.map(|a| round_ask(a, m.price_dp()) - tick), 0),
            Side::Sell => (bid_touch.map(|b| round_bid(b, m.price_dp()) + tick), 1),
        };
        let crossing = match (o.side, limit) {
            (Side::Buy, Some(l)) => o.price > l,
            (Side::Sell, Some(l)) => o.price < l,
            (_, None) => false,
        };
        if let (true, Some(l)) = (crossing, limit) {
            changed += 1;
            o.price = l;
        }
        let further = last_kept[side_idx].is_none_or(|prev| match o.side {
            Side::Buy => o.price < prev,
            Side::Sell => o.price > prev,
        });
        // A level that was not moved may now sit at its moved predecessor's price: it goes
        // too, so that the side stays strictly ordered.
        let keep = further
            && (!crossing || (o.price > Decimal::ZERO && o.size * o.price >= m.min_notional()));
        if keep {
            last_kept[side_idx] = Some(o.price);
        } else if !crossing {
            changed += 1;
        }
        keep
    });
    changed
}

/// True when `new` differs from `old` enough to be worth sending: a slot appeared or
/// vanished, a size changed, or a price moved beyond `tolerance_bps`.
pub fn book_changed(old: &QuoteBook, new: &QuoteBook, tolerance_bps: Decimal) -> bool {
    old.orders.len() != new.orders.len()
        || old.orders.iter().zip(&new.orders).any(|(a, b)| {
            a.slot != b.slot || a.size != b.size || moved_beyond(a.price, b.price, tolerance_bps)
        })
}

/// One market's pricing: the last reference, our inventory, the sides RiskGuard allows and
/// the last book sent. Shared by QuoteEngine and the backtest.
#[derive(Debug, Clone)]
pub struct MarketPricer {
    /// The market's config, fixed once the pricer is made (its [`Spreads`] are worked out
    /// from it then).
    pub cfg: MarketConfig,
    spreads: Spreads,
    /// Raw reference bid and ask.
    pub reference: Option<(Decimal, Decimal)>,
    pub inventory: Decimal,
    pub sides: SidesAllowed,
    /// The last book sent.
    pub last: Option<QuoteBook>,
    pub ticks: u64,
    pub targets: u64,
    /// What the last evaluation priced from: the same inputs price the same book, so a tick
    /// that changes none of them (a size-only update) costs one comparison.
    evaluated: Option<Inputs>,
}

/// Everything a book is priced from, besides the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inputs {
    reference: (Decimal, Decimal),
    touches: (Option<Decimal>, Option<Decimal>),
    inventory: Decimal,
    sides: SidesAllowed,
    max_position: Decimal,
}

/// A new target of one market.
#[derive(Debug, Clone)]
pub struct Priced {
    pub book: QuoteBook,
    pub reason: QuoteReason,
    /// Orders moved behind (or dropped at) the venue's opposite touch.
    pub moved: u32,
}

impl MarketPricer {
    /// A market with no reference yet and no side allowed until RiskGuard speaks.
    pub fn new(cfg: MarketConfig) -> Self {
        Self {
            spreads: Spreads::of(&cfg),
            cfg,
            reference: None,
            inventory: Decimal::ZERO,
            sides: SidesAllowed::NONE,
            last: None,
            ticks: 0,
            targets: 0,
            evaluated: None,
        }
    }

    /// Prices the market's book, kept one step behind the others' touch on the venue
    /// (`bid_touch`, `ask_touch`: the venue's book without our orders; `None` leaves a side
    /// alone). A price move that leaves the book within the requote tolerance of the last one
    /// sent yields nothing unless `force`. Every other reason always yields a target.
    pub fn reprice(
        &mut self,
        max_position: Decimal,
        (bid_touch, ask_touch): (Option<Decimal>, Option<Decimal>),
        reason: QuoteReason,
        force: bool,
    ) -> Option<Priced> {
        let (bid, ask) = self.reference?;
        let inputs = Inputs {
            reference: (bid, ask),
            touches: (bid_touch, ask_touch),
            inventory: self.inventory,
            sides: self.sides,
            max_position,
        };
        // The last evaluation priced these very inputs, and what it decided still holds (it
        // sent that book, or found it within tolerance of the one sent).
        let same = self.evaluated.replace(inputs) == Some(inputs);
        if same && !force && matches!(reason, QuoteReason::PriceMoved { .. }) && self.last.is_some()
        {
            return None;
        }
        let mut book = price_book_with(
            &self.cfg,
            &self.spreads,
            max_position,
            (bid, ask),
            self.inventory,
            self.sides,
        );
        let moved = keep_behind_touch(&self.cfg, &mut book, bid_touch, ask_touch);
        let reason = match (&self.last, reason) {
            (Some(last), QuoteReason::PriceMoved { .. }) => {
                if !force && !book_changed(last, &book, self.cfg.requote_tolerance_bps) {
                    return None;
                }
                QuoteReason::PriceMoved {
                    bps: distance_bps(book.fair, last.fair).round_dp(2),
                }
            }
            (None, QuoteReason::PriceMoved { .. }) => QuoteReason::Start,
            (_, r) => r,
        };
        self.targets += 1;
        self.last = Some(book.clone());
        Some(Priced {
            book,
            reason,
            moved,
        })
    }

    /// The persisted record of a target decided at `ts_ms` against the venue's `touches`.
    pub fn record(
        &self,
        p: &Priced,
        ts_ms: i64,
        (venue_bid, venue_ask): (Option<Decimal>, Option<Decimal>),
    ) -> QuoteRecord {
        QuoteRecord {
            market: self.cfg.market.clone(),
            ts_ms,
            reason: p.reason.clone(),
            ref_bid: p.book.ref_bid,
            ref_ask: p.book.ref_ask,
            fair: p.book.fair,
            bid: p.book.best(Side::Buy).map(|o| o.price),
            ask: p.book.best(Side::Sell).map(|o| o.price),
            inventory: self.inventory,
            levels: p.book.orders.clone(),
            venue_bid,
            venue_ask,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::{BinanceSymbol, MarketId};

    /// The levels' JSON is what serde_json writes of the same objects.
    #[test]
    fn levels_json_is_serde_jsons() {
        let mut m = MarketPricer::new(market());
        m.reference = Some(("0.4500".parse().expect("d"), "0.4501".parse().expect("d")));
        m.sides = crate::messages::SidesAllowed::BOTH;
        let priced = m
            .reprice(
                Decimal::from(1_000_000),
                (None, None),
                QuoteReason::Start,
                true,
            )
            .expect("a book");
        assert!(priced.book.orders.len() >= 2, "{:?}", priced.book);
        let by_serde: Vec<serde_json::Value> = priced
            .book
            .orders
            .iter()
            .map(|o| serde_json::json!({"slot": o.slot.to_string(), "price": o.price.to_string(), "size": o.size.to_string()}))
            .collect();
        assert_eq!(
            crate::store::rows::levels_json(&priced.book.orders),
            serde_json::Value::Array(by_serde).to_string()
        );
        assert_eq!(crate::store::rows::levels_json(&[]), "[]");
    }

    #[test]
    fn a_tick_that_changes_no_input_is_skipped_exactly() {
        // The same decisions with the skip as with every tick priced afresh.
        let mut fast = MarketPricer::new(market());
        let mut slow = MarketPricer::new(market());
        for p in [&mut fast, &mut slow] {
            p.sides = SidesAllowed::BOTH;
        }
        let mut rng = crate::rng::SplitMix64::new(42);
        let mut mid = 4_500i64;
        for i in 0..5_000u32 {
            let x = rng.next_u64();
            if x.is_multiple_of(5) {
                mid += if x.is_multiple_of(2) { 1 } else { -1 };
            }
            let reference = Some((
                Decimal::new(mid, 4),
                Decimal::new(mid + 1 + x.is_multiple_of(7) as i64, 4),
            ));
            let inventory = Decimal::from(((i / 700) % 3) as i64 * 100);
            let touches = if x.is_multiple_of(11) {
                (None, Some(Decimal::new(mid + 2, 4)))
            } else {
                (None, None)
            };
            let reason = if x.is_multiple_of(97) {
                QuoteReason::Inventory
            } else {
                QuoteReason::PriceMoved { bps: Decimal::ZERO }
            };
            for p in [&mut fast, &mut slow] {
                p.reference = reference;
                p.inventory = inventory;
            }
            slow.evaluated = None;
            let a = fast.reprice(Decimal::from(2_000), touches, reason.clone(), false);
            let b = slow.reprice(Decimal::from(2_000), touches, reason, false);
            assert_eq!(
                a.map(|p| (p.book, p.reason, p.moved)),
                b.map(|p| (p.book, p.reason, p.moved)),
                "tick {i}"
            );
        }
        assert_eq!(fast.targets, slow.targets);
        assert!(
            fast.targets > 100,
            "the walk moved the book {} times",
            fast.targets
        );
    }

    pub(crate) fn market() -> MarketConfig {
        MarketConfig {
            market: MarketId("ADAUSDM".into()),
            reference: BinanceSymbol("ADAUSDT".into()),
            anchor: Anchor::Mid,
            anchor_bps: Decimal::ZERO,
            venue_spread_bps: Decimal::from(20),
            order_size: Decimal::from(100),
            levels: 2,
            level_spacing_bps: Decimal::from(10),
            level_size_multiplier: Decimal::new(15, 1),
            skew_bps_at_max_position: Decimal::from(10),
            requote_tolerance_bps: Decimal::from(3),
            price_decimals: Some(4),
            size_decimals: Some(2),
            min_order_size: Some(Decimal::from(5)),
            min_order_notional: Some(Decimal::from(5)),
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    #[test]
    fn a_reference_from_dust_to_a_price_is_priced_without_overflow() {
        // Positive and within range, so valid ticks: a dust-priced level, then (once the guard
        // confirmed it) a real one. The move's size in bps is beyond any Decimal.
        let mut m = MarketPricer::new(market());
        m.sides = SidesAllowed::BOTH;
        let moved = || QuoteReason::PriceMoved { bps: Decimal::ZERO };
        m.reference = Some((
            d("0.0000000000000000000000000001"),
            d("0.0000000000000000000000000002"),
        ));
        assert!(m.reprice(d("2000"), (None, None), moved(), false).is_some());
        m.reference = Some((d("0.4500"), d("0.4501")));
        let next = m
            .reprice(d("2000"), (None, None), moved(), false)
            .expect("a new target");
        assert_eq!(
            next.reason,
            QuoteReason::PriceMoved {
                bps: Decimal::MAX.round_dp(2)
            }
        );
        assert_eq!(next.book.orders.len(), usize::from(market().levels) * 2);
    }

    #[test]
    fn quotes_stay_one_step_behind_the_venues_opposite_touch() {
        let m = market();
        let fresh = || {
            price_book(
                &m,
                d("2000"),
                d("0.4500"),
                d("0.4502"),
                Decimal::ZERO,
                SidesAllowed::BOTH,
            )
        };
        // Bids 0.4496/0.4491, asks 0.4506/0.4511 (see flat_inventory_quotes_symmetric_levels).
        let prices = |b: &QuoteBook, side: Side| -> Vec<Decimal> {
            b.orders
                .iter()
                .filter(|o| o.side == side)
                .map(|o| o.price)
                .collect()
        };
        // A venue book outside ours changes nothing.
        let mut book = fresh();
        assert_eq!(
            keep_behind_touch(&m, &mut book, Some(d("0.4497")), Some(d("0.4505"))),
            0
        );
        assert_eq!(book, fresh());
        // The venue's ask at our bid: the bid moves one step behind it; level 1 stays.
        let mut book = fresh();
        assert_eq!(keep_behind_touch(&m, &mut book, None, Some(d("0.4496"))), 1);
        assert_eq!(prices(&book, Side::Buy), vec![d("0.4495"), d("0.4491")]);
        assert_eq!(prices(&book, Side::Sell), vec![d("0.4506"), d("0.4511")]);
        // The venue's bid above both our asks: level 0 moves to touch + step, level 1 would
        // land on the same price and is dropped.
        let mut book = fresh();
        assert_eq!(keep_behind_touch(&m, &mut book, Some(d("0.4520")), None), 2);
        assert_eq!(prices(&book, Side::Sell), vec![d("0.4521")]);
        assert!(
            book.orders
                .iter()
                .all(|o| o.side == Side::Buy || o.slot.level == 0)
        );
        // An off-grid touch rounds the safe way: a bid never reaches the ask.
        let mut book = fresh();
        keep_behind_touch(&m, &mut book, None, Some(d("0.44955")));
        assert_eq!(prices(&book, Side::Buy)[0], d("0.4495"));
        // A touch at one tick: the bid would be 0, dropped.
        let mut book = fresh();
        keep_behind_touch(&m, &mut book, None, Some(d("0.0001")));
        assert!(prices(&book, Side::Buy).is_empty());
        // Too small a notional at the clamped price is dropped too: 100 x 0.0399 < 5 USDM,
        // while level 1's 150 x 0.0399 still makes it and takes the price.
        let mut book = fresh();
        keep_behind_touch(&m, &mut book, None, Some(d("0.0400")));
        let bids: Vec<(Decimal, Decimal)> = book
            .orders
            .iter()
            .filter(|o| o.side == Side::Buy)
            .map(|o| (o.price, o.size))
            .collect();
        assert_eq!(bids, vec![(d("0.0399"), d("150"))]);
    }

    #[test]
    fn rounding_directions_at_the_boundaries() {
        let cases = [
            ("exact stays", "0.4500", "0.4500", "0.4500"),
            ("just above grid", "0.45001", "0.4500", "0.4501"),
            ("just below grid", "0.44999", "0.4499", "0.4500"),
            ("half tick", "0.45005", "0.4500", "0.4501"),
        ];
        for (name, raw, bid, ask) in cases {
            assert_eq!(round_bid(d(raw), 4), d(bid), "{name} bid");
            assert_eq!(round_ask(d(raw), 4), d(ask), "{name} ask");
        }
        assert_eq!(round_size(d("100.999"), 2), d("100.99"));
        assert_eq!(round_size(d("-1.005"), 2), d("-1.00"));
        assert_eq!(grid_below(d("0.4500"), 4), d("0.4499"));
        assert_eq!(grid_below(d("0.45003"), 4), d("0.4500"));
        assert_eq!(grid_above(d("0.4500"), 4), d("0.4501"));
        assert_eq!(grid_above(d("0.44997"), 4), d("0.4500"));
    }

    #[test]
    fn flat_inventory_quotes_symmetric_levels() {
        let book = price_book(
            &market(),
            d("2000"),
            d("0.4500"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        // mid 0.4501, half spread 10 bps: bid 0.4501*0.999 = 0.4496499 -> 0.4496; ask 0.4505501 -> 0.4506
        let prices: Vec<(Slot, Decimal, Decimal)> = book
            .orders
            .iter()
            .map(|o| (o.slot, o.price, o.size))
            .collect();
        assert_eq!(
            prices,
            vec![
                (
                    Slot {
                        side: Side::Buy,
                        level: 0
                    },
                    d("0.4496"),
                    d("100")
                ),
                (
                    Slot {
                        side: Side::Sell,
                        level: 0
                    },
                    d("0.4506"),
                    d("100")
                ),
                (
                    Slot {
                        side: Side::Buy,
                        level: 1
                    },
                    d("0.4491"),
                    d("150")
                ),
                (
                    Slot {
                        side: Side::Sell,
                        level: 1
                    },
                    d("0.4511"),
                    d("150")
                ),
            ]
        );
    }

    #[test]
    fn long_inventory_skews_both_sides_down() {
        let flat = price_book(
            &market(),
            d("2000"),
            d("0.4500"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        let long = price_book(
            &market(),
            d("2000"),
            d("0.4500"),
            d("0.4502"),
            d("2000"),
            SidesAllowed::BOTH,
        );
        assert!(long.fair < flat.fair);
        assert!(
            long.best(Side::Sell).expect("ask").price < flat.best(Side::Sell).expect("ask").price
        );
        assert!(
            long.best(Side::Buy).expect("bid").price <= flat.best(Side::Buy).expect("bid").price
        );
    }

    #[test]
    fn sizes_below_minimum_are_not_quoted() {
        let mut m = market();
        m.order_size = d("4.999");
        m.min_order_size = Some(d("5"));
        m.levels = 1;
        let book = price_book(
            &m,
            d("2000"),
            d("0.45"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        assert!(book.orders.is_empty());
        m.order_size = d("12");
        m.min_order_notional = Some(d("6")); // 12 * 0.45 = 5.4 < 6
        let book = price_book(
            &m,
            d("2000"),
            d("0.45"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        assert!(book.orders.is_empty());
    }

    #[test]
    fn disallowed_side_is_omitted() {
        let book = price_book(
            &market(),
            d("2000"),
            d("0.45"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed {
                buy: false,
                sell: true,
            },
        );
        assert!(book.orders.iter().all(|o| o.side == Side::Sell));
        assert_eq!(book.orders.len(), 2);
    }

    #[test]
    fn requote_tolerance() {
        assert!(!moved_beyond(d("0.4500"), d("0.4501"), d("3")));
        assert!(moved_beyond(d("0.4500"), d("0.4502"), d("3")));
        let a = price_book(
            &market(),
            d("2000"),
            d("0.4500"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        let b = price_book(
            &market(),
            d("2000"),
            d("0.4501"),
            d("0.4502"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        let c = price_book(
            &market(),
            d("2000"),
            d("0.4520"),
            d("0.4522"),
            Decimal::ZERO,
            SidesAllowed::BOTH,
        );
        assert!(!book_changed(&a, &b, d("3")));
        assert!(book_changed(&a, &c, d("3")));
    }

    mod property_tests {
        //! Invariants: prices on the tick grid and > 0; sizes on the lot grid and ≥ the
        //! minimums; every bid < every ask; no bid ≥ reference ask, no ask ≤ reference bid;
        //! levels move away from the anchor; the same inputs give the same book. Kept behind
        //! any venue touch: no bid ≥ the venue's ask, no ask ≤ its bid, still ordered.
        use super::*;
        use proptest::prelude::*;

        fn arb_market() -> impl Strategy<Value = MarketConfig> {
            (
                1u32..400,
                1u8..5,
                0u32..50,
                0u32..100,
                -200i64..200,
                any::<bool>(),
                2u32..6,
                0u32..3,
            )
                .prop_map(
                    |(spread, levels, spacing, skew, anchor_bps, touch, pdp, sdp)| {
                        let mut m = market();
                        m.venue_spread_bps = Decimal::from(spread);
                        m.levels = levels;
                        m.level_spacing_bps = Decimal::from(spacing);
                        m.skew_bps_at_max_position = Decimal::from(skew);
                        m.anchor_bps = Decimal::from(anchor_bps);
                        m.anchor = if touch { Anchor::Touch } else { Anchor::Mid };
                        m.price_decimals = Some(pdp);
                        m.size_decimals = Some(sdp);
                        m
                    },
                )
        }

        proptest! {
            #[test]
            fn prop_book_invariants(
                m in arb_market(),
                bid_units in 1_000i64..2_000_000,
                spread_units in 1i64..500,
                inv in -5_000i64..5_000,
            ) {
                let ref_bid = Decimal::new(bid_units, 6);
                let ref_ask = ref_bid + Decimal::new(spread_units, 6);
                let inventory = Decimal::from(inv);
                let book = price_book(&m, d("2000"), ref_bid, ref_ask, inventory, SidesAllowed::BOTH);
                let again = price_book(&m, d("2000"), ref_bid, ref_ask, inventory, SidesAllowed::BOTH);
                prop_assert_eq!(&book, &again);
                let max_bid = book.orders.iter().filter(|o| o.side == Side::Buy).map(|o| o.price).max();
                let min_ask = book.orders.iter().filter(|o| o.side == Side::Sell).map(|o| o.price).min();
                if let (Some(b), Some(a)) = (max_bid, min_ask) {
                    prop_assert!(b < a, "crossed own book: bid {} ask {}", b, a);
                }
                for o in &book.orders {
                    prop_assert!(o.price > Decimal::ZERO);
                    prop_assert_eq!(o.price, o.price.round_dp(m.price_dp()), "price off grid");
                    prop_assert_eq!(o.size, o.size.round_dp(m.size_dp()), "size off grid");
                    prop_assert!(o.size >= m.min_size());
                    prop_assert!(o.size * o.price >= m.min_notional());
                    match o.side {
                        Side::Buy => prop_assert!(o.price < book.ref_ask, "bid {} crosses ref ask {}", o.price, book.ref_ask),
                        Side::Sell => prop_assert!(o.price > book.ref_bid, "ask {} crosses ref bid {}", o.price, book.ref_bid),
                    }
                }
                for side in [Side::Buy, Side::Sell] {
                    let prices: Vec<Decimal> = book.orders.iter().filter(|o| o.side == side).map(|o| o.price).collect();
                    for w in prices.windows(2) {
                        match side {
                            Side::Buy => prop_assert!(w[1] < w[0]),
                            Side::Sell => prop_assert!(w[1] > w[0]),
                        }
                    }
                }
            }

            #[test]
            fn prop_kept_behind_the_venues_touch(
                m in arb_market(),
                bid_units in 100_000i64..2_000_000,
                inv in -2_000i64..2_000,
                bid_off in -300i64..300,
                ask_off in -300i64..300,
                gap in 1i64..200,
            ) {
                // A venue book anywhere around the reference, possibly far through our quotes.
                let ref_bid = Decimal::new(bid_units, 6);
                let ref_ask = ref_bid + Decimal::new(1, 4);
                let vb = ref_bid * (Decimal::ONE + Decimal::new(bid_off, 4));
                let va = (vb + Decimal::new(gap, 4)).max(ref_ask * (Decimal::ONE + Decimal::new(ask_off, 4)));
                let mut book = price_book(&m, d("2000"), ref_bid, ref_ask, Decimal::from(inv), SidesAllowed::BOTH);
                let before = book.orders.len();
                let moved = keep_behind_touch(&m, &mut book, Some(vb), Some(va));
                prop_assert!(book.orders.len() <= before);
                prop_assert!(moved as usize >= before - book.orders.len());
                for o in &book.orders {
                    prop_assert!(o.price > Decimal::ZERO);
                    prop_assert_eq!(o.price, o.price.round_dp(m.price_dp()), "price off grid");
                    prop_assert!(o.size * o.price >= m.min_notional());
                    match o.side {
                        Side::Buy => prop_assert!(o.price < va, "bid {} at or above the venue's ask {}", o.price, va),
                        Side::Sell => prop_assert!(o.price > vb, "ask {} at or below the venue's bid {}", o.price, vb),
                    }
                }
                for side in [Side::Buy, Side::Sell] {
                    let prices: Vec<Decimal> = book.orders.iter().filter(|o| o.side == side).map(|o| o.price).collect();
                    for w in prices.windows(2) {
                        match side {
                            Side::Buy => prop_assert!(w[1] < w[0]),
                            Side::Sell => prop_assert!(w[1] > w[0]),
                        }
                    }
                }
            }

            #[test]
            fn prop_rounding_is_directional(units in 0i64..10_000_000_000, dp in 0u32..8) {
                let raw = Decimal::new(units, 8);
                let bid = round_bid(raw, dp);
                let ask = round_ask(raw, dp);
                prop_assert!(bid <= raw && raw - bid < step(dp));
                prop_assert!(ask >= raw && ask - raw < step(dp));
                prop_assert!(round_size(raw, dp) <= raw);
            }
        }
    }
}
