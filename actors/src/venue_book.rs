//! The venue's own order book, per market, readable from any thread: what DeltaDeFi's depth
//! stream (or the mock in process) last showed, when, and which of its orders are ours.
//!
//! It answers three questions:
//! - **Would a post-only order cross?** QuoteEngine prices against the others' touch (the book
//!   without any order of ours: OrderManager replaces ours by slot, cancels first) and keeps
//!   each quote one price step behind it, or drops it. The send path checks again right before
//!   the write ([`VenueBooks::would_cross`]), this time counting our own orders that still rest
//!   (all but those whose cancel is decided), and skips a place that would cross. A crossing
//!   post-only order is a wasted action of a small budget: the venue only answers 4104.
//! - **Where is the rest of the market?** ([`VenueBooks::others_touch`]): the book without any
//!   order of ours, which RiskGuard compares with the Binance-derived fair price.
//! - **What does the operator see?** ([`VenueBooks::view`]): the touch, its age, the counts.
//!
//! A book older than `max_age_ms`, or one whose stream is down, answers nothing: no clamp, no
//! divergence check, shown stale. Our own orders are published by OrderManager whenever they
//! change; the subtraction is by price level, never below zero.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rust_decimal::Decimal;

use crate::types::{FastMap, MarketId, Side};
use crate::venue::{Depth, Level};

/// One of our orders that may rest on the venue's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnOrder {
    pub side: Side,
    pub price: Decimal,
    pub remaining: Decimal,
    /// A cancel of it is decided: it does not count against a new order.
    pub cancelling: bool,
}

/// What the operator sees of a market's venue book.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookView {
    /// The venue's best bid and ask (our orders included), when fresh.
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    /// Mid of the book without our orders (both sides needed).
    pub others_mid: Option<Decimal>,
    /// Milliseconds since the last snapshot arrived (`None`: never, or the stream is down).
    pub age_ms: Option<i64>,
    /// Quotes QuoteEngine moved behind the opposite touch, or dropped, so far.
    pub clamped: u64,
    /// Places skipped right before their write because they would have crossed.
    pub skipped: u64,
}

#[derive(Debug, Default)]
struct MarketBook {
    depth: Option<Depth>,
    own: Vec<OwnOrder>,
}

#[derive(Debug, Default)]
struct Counts {
    clamped: AtomicU64,
    skipped: AtomicU64,
    /// Bumped, under the book's lock, by every change of its depth or of our orders: what the
    /// touch is worked out from ([`TouchCache`]).
    version: AtomicU64,
    /// When the book's depth last arrived or was shown again: written under the book's lock,
    /// read with it or without it (the cached touch).
    recv_ms: AtomicI64,
}

/// The others' touch of one market as [`VenueBooks::others_touch_cached`] last worked it out,
/// with the version of the book it came from. QuoteEngine asks on every tick; the book
/// changes less often than that, and then a lock taken and the levels scanned.
#[derive(Debug, Clone, Default)]
pub struct TouchCache {
    version: u64,
    /// `None`: the book had no depth.
    touch: Option<(Option<Decimal>, Option<Decimal>)>,
}

/// Every market's venue book.
#[derive(Debug)]
pub struct VenueBooks {
    markets: FastMap<MarketId, (Mutex<MarketBook>, Counts)>,
    max_age_ms: i64,
}

/// The best price of `levels` (one side of the book, best first) that still has quantity once
/// the orders of ours on that side that `mine` selects are taken out (never below zero).
fn best_left(
    levels: &[Level],
    side: Side,
    own: &[OwnOrder],
    mine: impl Fn(&OwnOrder) -> bool,
) -> Option<Decimal> {
    levels
        .iter()
        .find(|(p, q)| {
            let ours: Decimal = own
                .iter()
                .filter(|o| o.side == side && o.price == *p && mine(o))
                .map(|o| o.remaining)
                .sum();
            *q > ours
        })
        .map(|(p, _)| *p)
}

/// The best bid and ask of `depth` left once all of `own` is taken out.
fn others(depth: &Depth, own: &[OwnOrder]) -> (Option<Decimal>, Option<Decimal>) {
    (
        best_left(&depth.bids, Side::Buy, own, |_| true),
        best_left(&depth.asks, Side::Sell, own, |_| true),
    )
}

impl VenueBooks {
    /// Books for `markets`, each unknown until its first snapshot; older than `max_age_ms`
    /// they answer nothing.
    pub fn new(markets: impl IntoIterator<Item = MarketId>, max_age_ms: u64) -> Self {
        Self {
            markets: markets
                .into_iter()
                .map(|m| (m, (Mutex::new(MarketBook::default()), Counts::default())))
                .collect(),
            max_age_ms: i64::try_from(max_age_ms).unwrap_or(i64::MAX),
        }
    }

    fn with<T>(
        &self,
        market: &MarketId,
        f: impl FnOnce(&mut MarketBook, &Counts) -> T,
    ) -> Option<T> {
        let (m, c) = self.markets.get(market)?;
        let mut g = m.lock().ok()?;
        Some(f(&mut g, c))
    }

    /// Runs `f` on `market`'s book under its lock, as a change: its version is bumped after
    /// `f` and before the lock is let go, so a reader that sees the new version also sees the
    /// receive time `f` stored.
    fn change<T>(
        &self,
        market: &MarketId,
        f: impl FnOnce(&mut MarketBook, &Counts) -> T,
    ) -> Option<T> {
        self.with(market, |b, c| {
            let out = f(b, c);
            c.version.fetch_add(1, Ordering::AcqRel);
            out
        })
    }

    /// A new snapshot of `market`'s book arrived at `now_ms`.
    pub fn set_depth(&self, market: &MarketId, depth: Depth, now_ms: i64) {
        self.change(market, |b, c| {
            b.depth = Some(depth);
            c.recv_ms.store(now_ms, Ordering::Release);
        });
    }

    /// The venue's stream showed `market`'s book again at `now_ms`, unchanged.
    pub fn refresh(&self, market: &MarketId, now_ms: i64) {
        self.with(market, |b, c| {
            if b.depth.is_some() {
                c.recv_ms.store(now_ms, Ordering::Release);
            }
        });
    }

    /// The market's stream is down: what it showed is no longer known.
    pub fn clear(&self, market: &MarketId) {
        self.change(market, |b, _| b.depth = None);
    }

    /// Our orders in `market` that may rest on its book.
    pub fn set_own(&self, market: &MarketId, own: Vec<OwnOrder>) {
        self.change(market, |b, _| b.own = own);
    }

    /// True while the depth `c` counts for, last shown at its receive time, is not older than
    /// `max_age_ms` at `now_ms`.
    fn is_fresh(&self, c: &Counts, now_ms: i64) -> bool {
        now_ms - c.recv_ms.load(Ordering::Acquire) <= self.max_age_ms
    }

    /// The fresh depth of a market, with our orders.
    fn fresh<T>(
        &self,
        market: &MarketId,
        now_ms: i64,
        f: impl FnOnce(&Depth, &[OwnOrder]) -> T,
    ) -> Option<T> {
        self.with(market, |b, c| match &b.depth {
            Some(d) if self.is_fresh(c, now_ms) => Some(f(d, &b.own)),
            _ => None,
        })
        .flatten()
    }

    /// The opposite touch a new post-only order of `side` must stay behind when it is sent:
    /// the venue's book without our orders whose cancel is decided (the outbox sends cancels
    /// first), so our own order still resting there counts.
    pub fn opposite_touch(&self, market: &MarketId, side: Side, now_ms: i64) -> Option<Decimal> {
        self.fresh(market, now_ms, |d, own| match side {
            Side::Buy => best_left(&d.asks, Side::Sell, own, |o| o.cancelling),
            Side::Sell => best_left(&d.bids, Side::Buy, own, |o| o.cancelling),
        })
        .flatten()
    }

    /// The opposite touch when a post-only `side` order at `price` would cross it (bid at or
    /// above the best ask, ask at or below the best bid); `None` when it would rest.
    pub fn would_cross(
        &self,
        market: &MarketId,
        side: Side,
        price: Decimal,
        now_ms: i64,
    ) -> Option<Decimal> {
        let touch = self.opposite_touch(market, side, now_ms)?;
        let crosses = match side {
            Side::Buy => price >= touch,
            Side::Sell => price <= touch,
        };
        crosses.then_some(touch)
    }

    /// The best bid and ask of the venue's book without any order of ours, when fresh.
    pub fn others_touch(
        &self,
        market: &MarketId,
        now_ms: i64,
    ) -> Option<(Option<Decimal>, Option<Decimal>)> {
        self.fresh(market, now_ms, others)
    }

    /// [`Self::others_touch`], worked out again only when the book or our orders changed since
    /// `cache` (one per market) last was: otherwise an atomic read of the version and of the
    /// receive time, without the lock.
    pub fn others_touch_cached(
        &self,
        market: &MarketId,
        now_ms: i64,
        cache: &mut TouchCache,
    ) -> Option<(Option<Decimal>, Option<Decimal>)> {
        let (m, c) = self.markets.get(market)?;
        if c.version.load(Ordering::Acquire) != cache.version {
            let g = m.lock().ok()?;
            // Read under the lock: no change is under way, so this is the version of `g`.
            cache.version = c.version.load(Ordering::Acquire);
            cache.touch = g.depth.as_ref().map(|d| others(d, &g.own));
        }
        let touch = cache.touch?;
        self.is_fresh(c, now_ms).then_some(touch)
    }

    /// Mid of the venue's book without any order of ours (both sides needed).
    pub fn others_mid(&self, market: &MarketId, now_ms: i64) -> Option<Decimal> {
        match self.others_touch(market, now_ms)? {
            (Some(b), Some(a)) => Some((b + a) / Decimal::TWO),
            _ => None,
        }
    }

    /// Counts `n` quotes moved behind (or dropped at) the opposite touch.
    pub fn note_clamped(&self, market: &MarketId, n: u64) {
        if let Some((_, c)) = self.markets.get(market) {
            c.clamped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts a place skipped at its write because it would have crossed.
    pub fn note_skipped(&self, market: &MarketId) {
        if let Some((_, c)) = self.markets.get(market) {
            c.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the operator sees of `market`.
    pub fn view(&self, market: &MarketId, now_ms: i64) -> BookView {
        let Some((_, counts)) = self.markets.get(market) else {
            return BookView::default();
        };
        let (touch, age) = self
            .with(market, |b, c| {
                let age = b
                    .depth
                    .as_ref()
                    .map(|_| now_ms - c.recv_ms.load(Ordering::Acquire));
                let fresh = age.is_some_and(|a| a <= self.max_age_ms);
                let touch = b
                    .depth
                    .as_ref()
                    .filter(|_| fresh)
                    .map(|d| (d.bids.first().map(|l| l.0), d.asks.first().map(|l| l.0)));
                (touch, age)
            })
            .unwrap_or((None, None));
        let (bid, ask) = touch.unwrap_or((None, None));
        BookView {
            bid,
            ask,
            others_mid: self.others_mid(market, now_ms),
            age_ms: age,
            clamped: counts.clamped.load(Ordering::Relaxed),
            skipped: counts.skipped.load(Ordering::Relaxed),
        }
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
    fn book() -> Depth {
        Depth {
            bids: vec![(d("0.4500"), d("100")), (d("0.4499"), d("300"))],
            asks: vec![(d("0.4502"), d("50")), (d("0.4503"), d("500"))],
        }
    }

    #[test]
    fn the_cached_touch_answers_as_the_locked_one_through_every_change() {
        let books = VenueBooks::new([m()], 1_000);
        let mut cache = TouchCache::default();
        let mut rng = crate::rng::SplitMix64::new(11);
        let mut pick = |n: u64| rng.next_u64() % n;
        let mut now = 0_i64;
        let (mut changes, mut answers) = (0, 0);
        for step in 0..5_000 {
            let price = |tick: u64| Decimal::new(4_495 + i64::try_from(tick).unwrap_or(0), 4);
            match pick(6) {
                0 => {
                    let bid = pick(5);
                    let mut levels = |start: u64, down: bool| {
                        (0..3)
                            .map(|i| {
                                let p = if down { start - i } else { start + i };
                                (price(p), Decimal::from(pick(3) * 50))
                            })
                            .collect::<Vec<_>>()
                    };
                    let depth = Depth {
                        bids: levels(bid + 2, true),
                        asks: levels(bid + 3, false),
                    };
                    books.set_depth(&m(), depth, now);
                    changes += 1;
                }
                1 => {
                    let own = (0..pick(4))
                        .map(|_| OwnOrder {
                            side: if pick(2) == 0 { Side::Buy } else { Side::Sell },
                            price: price(pick(10)),
                            remaining: Decimal::from(pick(3) * 50),
                            cancelling: pick(2) == 0,
                        })
                        .collect();
                    books.set_own(&m(), own);
                    changes += 1;
                }
                2 => books.refresh(&m(), now),
                3 if pick(20) == 0 => books.clear(&m()),
                _ => now += i64::try_from(pick(400)).unwrap_or(0),
            }
            let locked = books.others_touch(&m(), now);
            let cached = books.others_touch_cached(&m(), now, &mut cache);
            assert_eq!(cached, locked, "step {step}");
            answers += usize::from(locked.is_some());
        }
        // The walk went through changes, fresh answers and stale ones.
        assert!(
            changes > 1_000 && answers > 1_000 && answers < 4_900,
            "{changes} {answers}"
        );
    }

    #[test]
    fn the_best_level_left_takes_out_only_our_orders_at_its_price() {
        let own = |side, price: &str, remaining: &str, cancelling| OwnOrder {
            side,
            price: d(price),
            remaining: d(remaining),
            cancelling,
        };
        let asks = [
            (d("0.4502"), d("50")),
            (d("0.4503"), d("80")),
            (d("0.4504"), d("500")),
        ];
        let all: fn(&OwnOrder) -> bool = |_| true;
        let cancelling: fn(&OwnOrder) -> bool = |o| o.cancelling;
        let sell = |price, remaining| own(Side::Sell, price, remaining, false);
        let cases = [
            ("none of ours", vec![], all, "0.4502"),
            (
                // The best level is all ours; the next holds 30 of others beside our 50.
                "best level ours",
                vec![sell("0.4502", "50"), own(Side::Sell, "0.4503", "50", true)],
                all,
                "0.4503",
            ),
            (
                "only the cancelling one taken out",
                vec![sell("0.4502", "50"), own(Side::Sell, "0.4503", "50", true)],
                cancelling,
                "0.4502",
            ),
            (
                "two levels exactly ours",
                vec![sell("0.4502", "50"), sell("0.4503", "80")],
                all,
                "0.4504",
            ),
            (
                "the other side, or other prices",
                vec![
                    own(Side::Buy, "0.4502", "50", false),
                    sell("0.4510", "1000"),
                ],
                all,
                "0.4502",
            ),
        ];
        for (name, ours, mine, want) in cases {
            assert_eq!(
                best_left(&asks, Side::Sell, &ours, mine),
                Some(d(want)),
                "{name}"
            );
        }
        let exactly = [sell("0.4502", "50")];
        assert_eq!(best_left(&asks[..1], Side::Sell, &exactly, all), None);
    }

    #[test]
    fn crossing_and_others_mid_without_our_orders() {
        let b = VenueBooks::new([m()], 1_000);
        assert_eq!(
            b.would_cross(&m(), Side::Buy, d("0.4600"), 0),
            None,
            "no book yet"
        );
        b.set_depth(&m(), book(), 0);
        assert_eq!(
            b.would_cross(&m(), Side::Buy, d("0.4502"), 10),
            Some(d("0.4502"))
        );
        assert_eq!(b.would_cross(&m(), Side::Buy, d("0.4501"), 10), None);
        assert_eq!(
            b.would_cross(&m(), Side::Sell, d("0.4500"), 10),
            Some(d("0.4500"))
        );
        // Our ask of 50 at 0.4502 is the venue's best ask.
        let ours = OwnOrder {
            side: Side::Sell,
            price: d("0.4502"),
            remaining: d("50"),
            cancelling: false,
        };
        b.set_own(&m(), vec![ours]);
        assert_eq!(
            b.would_cross(&m(), Side::Buy, d("0.4502"), 10),
            Some(d("0.4502")),
            "ours still rests"
        );
        assert_eq!(
            b.others_mid(&m(), 10),
            Some(d("0.45015")),
            "mid of 0.4500 and 0.4503"
        );
        // Once its cancel is decided, a bid may take its place.
        b.set_own(
            &m(),
            vec![OwnOrder {
                cancelling: true,
                ..ours
            }],
        );
        assert_eq!(b.would_cross(&m(), Side::Buy, d("0.4502"), 10), None);
        // A stale book answers nothing; a dropped stream neither.
        assert_eq!(b.would_cross(&m(), Side::Sell, d("0.4500"), 2_000), None);
        assert_eq!(b.view(&m(), 2_000).bid, None);
        assert_eq!(b.view(&m(), 2_000).age_ms, Some(2_000));
        b.set_depth(&m(), book(), 3_000);
        b.clear(&m());
        assert_eq!(b.others_mid(&m(), 3_000), None);
        assert_eq!(b.view(&m(), 3_000).age_ms, None);
    }

    #[test]
    fn a_one_sided_book_has_no_mid() {
        let b = VenueBooks::new([m()], 1_000);
        b.set_depth(
            &m(),
            Depth {
                bids: vec![(d("0.45"), d("10"))],
                asks: vec![],
            },
            0,
        );
        assert_eq!(b.others_mid(&m(), 0), None);
        let v = b.view(&m(), 0);
        assert_eq!((v.bid, v.ask), (Some(d("0.45")), None));
    }
}
