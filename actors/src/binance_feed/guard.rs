//! Sanity of the reference itself: a jump is held back until it is confirmed.
//!
//! A bookTicker can be well-formed and still wrong (a feed stuck at ×10, a bad print). The
//! price band cannot catch it, since it is measured from the same reference. So every valid
//! tick's mid is compared with the *anchor*: the oldest confirmed mid of the last second (the
//! latest confirmed one when none is that recent), which bounds the move per tick and per
//! second. A tick further than `jump_limit_bps` from the anchor is held, not forwarded, and the
//! symbol is reported as held (RiskGuard pauses quoting with reason `reference_unconfirmed`).
//! The new level is adopted only once held ticks agreeing with each other (within the same
//! limit of the first held one) have come for `confirm_ticks` ticks and `confirm_ms` ms; a tick
//! back near the anchor drops the held level.
//!
//! The first level after start has nothing to be compared with: it is adopted once
//! `confirm_ticks` consecutive ticks agree.
//!
//! All arithmetic is checked; it takes `now_ms` as an argument and imports no actix.

use std::collections::VecDeque;

use rust_decimal::Decimal;

use crate::config::ReferenceGuardConfig;
use crate::pricing_rules::within_bps;
use crate::types::{BinanceSymbol, FastMap};

/// What to do with one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it: it is within the limit, or it confirms a new level.
    Pass,
    /// Hold it back: a jump not yet confirmed (or the first level not yet established).
    Hold,
}

#[derive(Debug, Clone, Default)]
struct Held {
    first_ms: i64,
    mid: Decimal,
    ticks: u32,
}

#[derive(Debug, Clone, Default)]
struct SymbolGuard {
    /// The first confirmed mid of each [`BUCKET_MS`] slice (receive ms, mid), oldest first,
    /// back to the last second: at most ~21 entries whatever the tick rate.
    confirmed: VecDeque<(i64, Decimal)>,
    held: Option<Held>,
}

/// The anchor's time resolution: one confirmed mid is kept per slice of this many ms.
const BUCKET_MS: i64 = 50;

/// The reference guard of every symbol.
#[derive(Debug, Clone)]
pub struct ReferenceGuard {
    cfg: ReferenceGuardConfig,
    symbols: FastMap<BinanceSymbol, SymbolGuard>,
    held_total: u64,
}

/// How far back the anchor reaches.
const WINDOW_MS: i64 = 1_000;

impl ReferenceGuard {
    /// A guard with `cfg`'s limits and no level yet.
    pub fn new(cfg: ReferenceGuardConfig) -> Self {
        Self {
            cfg,
            symbols: FastMap::default(),
            held_total: 0,
        }
    }

    /// Ticks held back so far.
    pub fn held_total(&self) -> u64 {
        self.held_total
    }

    /// True once `symbol` has a confirmed level (its first one was agreed).
    pub fn has_level(&self, symbol: &BinanceSymbol) -> bool {
        self.symbols
            .get(symbol)
            .is_some_and(|g| !g.confirmed.is_empty())
    }

    /// True while `symbol` has no confirmed level, or a jump of it is held back.
    pub fn is_held(&self, symbol: &BinanceSymbol) -> bool {
        self.symbols
            .get(symbol)
            .is_none_or(|g| g.held.is_some() || g.confirmed.is_empty())
    }

    /// Judges one tick's mid, received at `now_ms`. Any fixed multiple of the mid judges the
    /// same (the limit is relative), so a caller may pass `bid + ask` and save the division.
    pub fn check(&mut self, symbol: &BinanceSymbol, mid: Decimal, now_ms: i64) -> Verdict {
        let cfg = &self.cfg;
        let limit = cfg.jump_limit_bps;
        // One lookup per tick; a symbol's name is cloned once, at its first tick.
        let g = match self.symbols.get_mut(symbol) {
            Some(g) => g,
            None => self.symbols.entry(symbol.clone()).or_default(),
        };
        while g.confirmed.len() > 1
            && g.confirmed
                .front()
                .is_some_and(|(t, _)| now_ms - t > WINDOW_MS)
        {
            g.confirmed.pop_front();
        }
        let anchor = g.confirmed.front().map(|(_, m)| *m);
        let verdict = match anchor {
            Some(a) if within_bps(mid, a, limit) => {
                g.held = None;
                Verdict::Pass
            }
            _ => {
                let held = match g.held.take() {
                    Some(h) if within_bps(mid, h.mid, limit) => Held {
                        ticks: h.ticks + 1,
                        ..h
                    },
                    _ => Held {
                        first_ms: now_ms,
                        mid,
                        ticks: 1,
                    },
                };
                let long_enough = anchor.is_none()
                    || now_ms - held.first_ms >= i64::try_from(cfg.confirm_ms).unwrap_or(i64::MAX);
                if held.ticks >= cfg.confirm_ticks && long_enough {
                    // Confirmed: the new level becomes the anchor.
                    g.confirmed.clear();
                    Verdict::Pass
                } else {
                    g.held = Some(held);
                    Verdict::Hold
                }
            }
        };
        match verdict {
            Verdict::Pass => {
                // The anchor is the oldest of the window: a slice keeps its first mid only.
                let same_slice = g
                    .confirmed
                    .back()
                    .is_some_and(|(t, _)| t.div_euclid(BUCKET_MS) == now_ms.div_euclid(BUCKET_MS));
                if !same_slice {
                    g.confirmed.push_back((now_ms, mid));
                }
            }
            Verdict::Hold => self.held_total += 1,
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }
    fn sym() -> BinanceSymbol {
        BinanceSymbol("ADAUSDT".into())
    }
    fn guard() -> ReferenceGuard {
        ReferenceGuard::new(ReferenceGuardConfig {
            jump_limit_bps: d("500"),
            confirm_ticks: 3,
            confirm_ms: 3_000,
        })
    }

    #[test]
    fn the_first_level_needs_agreeing_ticks() {
        let mut g = guard();
        assert!(g.is_held(&sym()));
        assert_eq!(g.check(&sym(), d("0.45"), 0), Verdict::Hold);
        assert_eq!(g.check(&sym(), d("0.451"), 10), Verdict::Hold);
        assert_eq!(g.check(&sym(), d("0.452"), 20), Verdict::Pass);
        assert!(!g.is_held(&sym()));
        assert_eq!(g.check(&sym(), d("0.453"), 30), Verdict::Pass);
    }

    #[test]
    fn a_tenfold_feed_for_two_seconds_never_passes() {
        let mut g = guard();
        for t in 0..3 {
            g.check(&sym(), d("0.45"), t);
        }
        // Held at ×10 for 2 s, a tick every 10 ms.
        for i in 0..200 {
            assert_eq!(
                g.check(&sym(), d("4.5"), 100 + i * 10),
                Verdict::Hold,
                "{i}"
            );
            assert!(g.is_held(&sym()));
        }
        // Back to the market: passes, and the hold is over.
        assert_eq!(g.check(&sym(), d("0.4502"), 2_200), Verdict::Pass);
        assert!(!g.is_held(&sym()));
        // The 200 of the fault, and the 2 that waited for the first level to be agreed.
        assert_eq!(g.held_total(), 202);
    }

    #[test]
    fn a_real_move_is_adopted_once_confirmed_by_ticks_and_time() {
        let mut g = guard();
        for t in 0..3 {
            g.check(&sym(), d("0.45"), t);
        }
        assert_eq!(g.check(&sym(), d("0.50"), 1_000), Verdict::Hold);
        assert_eq!(g.check(&sym(), d("0.501"), 2_000), Verdict::Hold);
        // Three ticks, but only 2 s: still held.
        assert_eq!(g.check(&sym(), d("0.50"), 3_000), Verdict::Hold);
        assert_eq!(g.check(&sym(), d("0.502"), 4_000), Verdict::Pass);
        assert_eq!(g.check(&sym(), d("0.503"), 4_010), Verdict::Pass);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_tick_rate() {
        let mut g = guard();
        for i in 0..100_000 {
            g.check(&sym(), d("0.45"), i / 10); // ten ticks a millisecond for 10 s
        }
        let kept = g.symbols.get(&sym()).map_or(0, |s| s.confirmed.len());
        assert!(kept <= 22, "{kept} confirmed mids kept");
    }

    #[test]
    fn a_slide_faster_than_the_limit_per_second_is_held() {
        let mut g = guard();
        for t in 0..3 {
            g.check(&sym(), d("1.00"), t);
        }
        // +2 % per 100 ms: each tick is small, but within a second it is 20 %.
        let mut held = 0;
        let mut price = d("1.00");
        for i in 1..10 {
            price *= d("1.02");
            if g.check(&sym(), price, 3 + i * 100) == Verdict::Hold {
                held += 1;
            }
        }
        assert!(held >= 6, "held {held}");
    }
}
