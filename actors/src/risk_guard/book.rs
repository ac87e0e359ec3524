//! What RiskGuard knows, as a pure core (no actix, no store, no logging): positions and marks,
//! the feed's freshness, the halts in force, each market's trading state and the denials
//! counted. It decides which halts hold for a market, which state follows from them, and what
//! the figures are; the actor around it logs, records, sets the gate and announces.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::rules::{self, Denial, DenialCounts, HaltReason, Overflow, Position, TradingState};
use crate::config::{MarketConfig, RiskConfig};
use crate::messages::SymbolHealth;
use crate::types::{BinanceSymbol, FastMap, MarketId};
use crate::venue::{Balance, VenueFill};

/// Risk figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskStats {
    pub markets: Vec<MarketRisk>,
    pub global_halts: Vec<HaltReason>,
    pub denials: u64,
    /// Denials by reason (`insufficient_funds`, `outside_band`, ...).
    pub denials_by_reason: BTreeMap<&'static str, u64>,
    pub fills: u64,
    pub balances: Vec<Balance>,
}

/// One market's risk figures.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketRisk {
    pub market: MarketId,
    pub state: TradingState,
    pub position: Decimal,
    pub pnl: Decimal,
    pub daily_pnl: Decimal,
    pub mark: Option<Decimal>,
    /// How far the reference lies outside the venue's book without our orders, in bps.
    pub divergence_bps: Option<Decimal>,
    /// This market's denials by reason.
    pub denials_by_reason: BTreeMap<&'static str, u64>,
}

/// One market's denials by reason (in the order of [`Denial::KINDS`]), and the attributes its
/// metric counts each reason with.
#[derive(Debug, Clone)]
struct MarketDenials {
    counts: [u64; Denial::KINDS.len()],
    attrs: Vec<[opentelemetry::KeyValue; 2]>,
}

/// A market whose trading state was just worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct StateOf {
    pub market: MarketId,
    /// The state before, `None` for the first evaluation since a (re)start.
    pub prev: Option<TradingState>,
    pub state: TradingState,
    pub halts: BTreeSet<HaltReason>,
    pub position: Decimal,
}

impl StateOf {
    /// The state differs from the one before: it is recorded and announced.
    pub fn changed(&self) -> bool {
        self.prev != Some(self.state)
    }
}

/// RiskGuard's state.
#[derive(Debug, Default)]
pub struct RiskBook {
    /// Market, reference symbol, anchor (bps).
    markets: Vec<(MarketId, BinanceSymbol, Decimal)>,
    positions: FastMap<MarketId, Position>,
    pub marks: FastMap<MarketId, Decimal>,
    pub feed_last: FastMap<BinanceSymbol, i64>,
    /// Reference symbols whose last move is held back until confirmed.
    held: BTreeSet<BinanceSymbol>,
    pub global_halts: BTreeSet<HaltReason>,
    stale: BTreeSet<MarketId>,
    /// Markets whose reference is too far from the venue's book (hysteresis: in above the
    /// limit, out below 80 % of it).
    diverged: BTreeSet<MarketId>,
    divergence: FastMap<MarketId, Decimal>,
    /// Each market's denials, from its first one.
    denial_tallies: FastMap<MarketId, MarketDenials>,
    pub states: FastMap<MarketId, TradingState>,
    /// Every fill row up to this one is counted (loaded at start, or reported live).
    counted_upto: i64,
    /// Rows above `counted_upto` counted live: reports arrive out of row order.
    counted_above: BTreeSet<i64>,
    /// Rows the last sweep of the store found stored but not yet reported.
    unreported: BTreeSet<i64>,
    fills: u64,
    pub denials: u64,
    pub balances: Vec<Balance>,
}

impl RiskBook {
    /// Knows nothing yet about `markets`.
    pub fn new(markets: &[MarketConfig]) -> Self {
        Self {
            markets: markets
                .iter()
                .map(|m| (m.market.clone(), m.reference.clone(), m.anchor_bps))
                .collect(),
            ..Self::default()
        }
    }

    /// A restart forgets positions, states and fills (reloaded from the store) and every halt
    /// but the shutdown's.
    pub fn forget_for_reload(&mut self) {
        self.positions.clear();
        self.states.clear();
        self.global_halts.retain(|h| *h == HaltReason::Shutdown);
        self.counted_upto = 0;
        self.counted_above.clear();
        self.unreported.clear();
        self.fills = 0;
    }

    /// The markets guarded, with their reference symbol and anchor.
    pub fn markets(&self) -> &[(MarketId, BinanceSymbol, Decimal)] {
        &self.markets
    }

    pub fn symbol_of(&self, market: &MarketId) -> Option<&BinanceSymbol> {
        self.markets
            .iter()
            .find(|(m, _, _)| m == market)
            .map(|(_, s, _)| s)
    }

    pub fn position(&self, market: &MarketId) -> Decimal {
        self.positions
            .get(market)
            .map(|p| p.qty)
            .unwrap_or_default()
    }

    /// Positions held, by market.
    pub fn positions(&self) -> impl Iterator<Item = (&MarketId, Decimal)> {
        self.positions.iter().map(|(m, p)| (m, p.qty))
    }

    /// The halts in force for `market`: the global ones, and its own (a stale feed, a held
    /// reference, a reference diverged from the venue's book).
    pub fn halts_of(&self, market: &MarketId, symbol: &BinanceSymbol) -> BTreeSet<HaltReason> {
        let mut h = self.global_halts.clone();
        if self.stale.contains(market) {
            h.insert(HaltReason::StaleFeed);
        }
        if self.held.contains(symbol) {
            h.insert(HaltReason::ReferenceUnconfirmed);
        }
        if self.diverged.contains(market) {
            h.insert(HaltReason::ReferenceDiverged);
        }
        h
    }

    /// The halts an intent of `market` is checked against: until positions are loaded, or for
    /// a market not guarded, nothing is known and the feed counts as stale.
    pub fn halts_for_check(&self, market: &MarketId, loaded: bool) -> BTreeSet<HaltReason> {
        match (loaded, self.symbol_of(market)) {
            (true, Some(symbol)) => self.halts_of(market, symbol),
            _ => [HaltReason::StaleFeed].into(),
        }
    }

    /// Takes in the feed's report: held symbols, last receive times, and the marks of the
    /// markets a symbol prices (its mid with the market's anchor), unless its move is held.
    pub fn apply_feed_health(&mut self, symbols: Vec<SymbolHealth>) {
        for s in symbols {
            if let Some(t) = s.last_recv_ms {
                self.feed_last.insert(s.symbol.clone(), t);
            }
            if s.held {
                self.held.insert(s.symbol.clone());
            } else {
                self.held.remove(&s.symbol);
            }
            // A held reference does not move the marks.
            if let (Some(mid), false) = (s.mid, s.held) {
                for (m, sym, anchor_bps) in &self.markets {
                    if *sym == s.symbol
                        && let Some(mark) =
                            mid.checked_mul(Decimal::ONE + crate::types::bps(*anchor_bps))
                    {
                        self.marks.insert(m.clone(), mark);
                    }
                }
            }
        }
    }

    /// Counts fill row `row_id` once, whatever order rows are reported in: a row loaded at
    /// start or reported before is not counted again. The position after it, and whether its
    /// arithmetic fit (an overflow leaves the position as it was); `None` for a row counted
    /// before.
    pub fn apply_fill(
        &mut self,
        row_id: i64,
        f: &VenueFill,
    ) -> Option<(Decimal, Result<(), Overflow>)> {
        if row_id <= self.counted_upto || !self.counted_above.insert(row_id) {
            return None;
        }
        while self.counted_above.remove(&(self.counted_upto + 1)) {
            self.counted_upto += 1;
        }
        self.fills += 1;
        let p = self.positions.entry(f.market.clone()).or_default();
        let applied = p.apply_fill(f.side, f.price, f.size, f.fee);
        Some((p.qty, applied))
    }

    /// The last fill row up to which every row is counted: a sweep of the store reads the
    /// rows after it.
    pub fn counted_upto(&self) -> i64 {
        self.counted_upto
    }

    /// Of the fill rows a sweep found stored after [`Self::counted_upto`], those to count now:
    /// the ones already found uncounted by the sweep before (a report lost, say AccountFeed
    /// restarted between storing a fill and handing it on). A row stored since the last
    /// sweep gets one sweep's time for its report to arrive, so a fill is counted once and in
    /// the normal way whenever it can be.
    pub fn sweep(&mut self, stored: Vec<(i64, VenueFill)>) -> Vec<(i64, VenueFill)> {
        let mut now_due = Vec::new();
        let mut seen = BTreeSet::new();
        for (id, f) in stored {
            if id <= self.counted_upto || self.counted_above.contains(&id) {
                continue;
            }
            if self.unreported.contains(&id) {
                now_due.push((id, f));
            } else {
                seen.insert(id);
            }
        }
        self.unreported = seen;
        now_due
    }

    /// Counts the fill rows stored before a (re)start, in row order; every row up to the last
    /// is then counted (SQLite gives a new row an id above every stored one). The overflows
    /// met, each leaving the position as it was.
    pub fn load_fills(&mut self, rows: &[(i64, VenueFill)]) -> Vec<Overflow> {
        let overflows = rows
            .iter()
            .filter_map(|(id, f)| match self.apply_fill(*id, f) {
                Some((_, Err(e))) => Some(e),
                _ => None,
            })
            .collect();
        if let Some(last) = rows.iter().map(|(id, _)| *id).max() {
            self.counted_upto = self.counted_upto.max(last);
            let upto = self.counted_upto;
            self.counted_above.retain(|id| *id > upto);
        }
        overflows
    }

    /// Marks each market stale or fresh by its reference's last receive time, and the whole
    /// day's PnL across markets (the overflow, if its arithmetic overflowed).
    pub fn refresh(&mut self, now: i64, stale_after_ms: i64) -> (Decimal, Option<Overflow>) {
        for (market, symbol, _) in &self.markets {
            let fresh = self
                .feed_last
                .get(symbol)
                .is_some_and(|t| now - t <= stale_after_ms);
            if fresh {
                self.stale.remove(market);
            } else {
                self.stale.insert(market.clone());
            }
            self.positions.entry(market.clone()).or_default();
        }
        let marks = &self.marks;
        rules::daily_total(
            self.positions
                .iter_mut()
                .map(|(m, p)| (p, marks.get(m).copied())),
            now,
        )
    }

    /// Records how far `market`'s reference lies outside the venue's book (`None`: that book
    /// is unknown) and decides its pause (in beyond `limit`, out below 80 % of it, off at 0,
    /// suspended while the book is unknown): `Some(true)` when it starts, `Some(false)` when
    /// it ends, `None` when nothing changes.
    pub fn set_divergence(
        &mut self,
        market: &MarketId,
        divergence: Option<Decimal>,
        limit: Decimal,
    ) -> Option<bool> {
        match divergence {
            Some(d) => self.divergence.insert(market.clone(), d),
            None => self.divergence.remove(market),
        };
        let was = self.diverged.contains(market);
        let paused = rules::stays_diverged(divergence, limit, was);
        if paused == was {
            return None;
        }
        if paused {
            self.diverged.insert(market.clone());
        } else {
            self.diverged.remove(market);
        }
        Some(paused)
    }

    /// Works out every market's state from its halts and position, and records it.
    pub fn next_states(&mut self, cfg: &RiskConfig) -> Vec<StateOf> {
        let mut out = Vec::with_capacity(self.markets.len());
        for (market, symbol, _) in &self.markets {
            let halts = self.halts_of(market, symbol);
            let position = self.position(market);
            let state = rules::trading_state(&halts, position, cfg);
            let prev = self.states.insert(market.clone(), state);
            out.push(StateOf {
                market: market.clone(),
                prev,
                state,
                halts,
                position,
            });
        }
        out
    }

    /// Counts one check's denials of `market`, and hands `each` reason with denials its
    /// count and the attributes its metric is counted with (made once per market and reason).
    pub fn count_denials(
        &mut self,
        market: &MarketId,
        counts: &DenialCounts,
        mut each: impl FnMut(&'static str, u64, &[opentelemetry::KeyValue]),
    ) {
        let tallies = match self.denial_tallies.get_mut(market) {
            Some(t) => t,
            None => self
                .denial_tallies
                .entry(market.clone())
                .or_insert_with(|| {
                    let attr = crate::metrics::market_attr(market);
                    MarketDenials {
                        counts: [0; Denial::KINDS.len()],
                        attrs: crate::metrics::market_reason_attrs(&attr, &Denial::KINDS),
                    }
                }),
        };
        for (i, reason, count) in counts.iter() {
            let (Some(n), Some(attrs)) = (tallies.counts.get_mut(i), tallies.attrs.get(i)) else {
                continue;
            };
            *n += count;
            self.denials += count;
            each(reason, count, attrs);
        }
    }

    /// `market`'s denials by reason, or every market's added up.
    fn denials_of(&self, market: Option<&MarketId>) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (m, tallies) in &self.denial_tallies {
            if market.is_some_and(|wanted| wanted != m) {
                continue;
            }
            for (reason, n) in Denial::KINDS.iter().zip(tallies.counts) {
                if n > 0 {
                    *out.entry(*reason).or_default() += n;
                }
            }
        }
        out
    }

    /// A market's position (none yet: an empty one) and its mark, if any.
    pub fn figures(&self, market: &MarketId) -> (Position, Option<Decimal>) {
        (
            self.positions.get(market).cloned().unwrap_or_default(),
            self.marks.get(market).copied(),
        )
    }

    /// The figures the operator reads.
    pub fn stats(&self) -> RiskStats {
        RiskStats {
            markets: self
                .markets
                .iter()
                .map(|(m, _, _)| {
                    let (p, mark) = self.figures(m);
                    MarketRisk {
                        market: m.clone(),
                        state: self.states.get(m).copied().unwrap_or(TradingState::Halted),
                        position: p.qty,
                        pnl: p.pnl(mark).unwrap_or_default(),
                        daily_pnl: p.daily_pnl(mark).unwrap_or_default(),
                        mark,
                        divergence_bps: self.divergence.get(m).copied(),
                        denials_by_reason: self.denials_of(Some(m)),
                    }
                })
                .collect(),
            global_halts: self.global_halts.iter().copied().collect(),
            denials: self.denials,
            denials_by_reason: self.denials_of(None),
            fills: self.fills,
            balances: self.balances.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Side, TradeId, VenueOrderId};
    use crate::venue::Liquidity;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn book() -> (RiskBook, MarketId, BinanceSymbol) {
        let mut m = crate::quote_engine::pricing::tests::market();
        m.anchor_bps = Decimal::from(100);
        let b = RiskBook::new(std::slice::from_ref(&m));
        (b, m.market, m.reference)
    }

    fn health(symbol: &BinanceSymbol, at: i64, mid: &str, held: bool) -> SymbolHealth {
        SymbolHealth {
            symbol: symbol.clone(),
            last_recv_ms: Some(at),
            mid: Some(d(mid)),
            held,
        }
    }

    fn fill(market: &MarketId, side: Side, price: &str, size: &str) -> VenueFill {
        VenueFill {
            trade_id: TradeId("t".into()),
            venue_order_id: VenueOrderId("v".into()),
            client_order_id: None,
            market: market.clone(),
            side,
            price: d(price),
            size: d(size),
            fee: Decimal::ZERO,
            liquidity: Liquidity::Maker,
            ts_ms: 0,
        }
    }

    #[test]
    fn nothing_is_known_until_loaded_and_a_fresh_feed_clears_the_stale_halt() {
        let (mut b, m, s) = book();
        let cfg = RiskConfig::default();
        assert_eq!(b.halts_for_check(&m, false), [HaltReason::StaleFeed].into());
        assert_eq!(
            b.halts_for_check(&MarketId("OTHER".into()), true),
            [HaltReason::StaleFeed].into()
        );
        // Never heard from the feed: stale.
        b.refresh(10_000, 5_000);
        assert_eq!(b.halts_for_check(&m, true), [HaltReason::StaleFeed].into());
        let first = b.next_states(&cfg);
        assert_eq!(first.len(), 1);
        assert!(first[0].changed() && first[0].prev.is_none());
        assert_eq!(first[0].state, TradingState::Halted);
        // Heard at the edge of the window: fresh, and the state changes once.
        b.apply_feed_health(vec![health(&s, 5_000, "0.5", false)]);
        b.refresh(10_000, 5_000);
        assert!(b.halts_for_check(&m, true).is_empty());
        let next = b.next_states(&cfg);
        assert_eq!(next[0].state, TradingState::Active);
        assert_eq!(next[0].prev, Some(TradingState::Halted));
        assert!(!b.next_states(&cfg)[0].changed());
        // A millisecond past it: stale again.
        b.refresh(10_001, 5_000);
        assert!(b.halts_of(&m, &s).contains(&HaltReason::StaleFeed));
    }

    #[test]
    fn a_held_reference_pauses_and_does_not_move_the_mark() {
        let (mut b, m, s) = book();
        b.apply_feed_health(vec![health(&s, 1, "0.5", false)]);
        // The anchor (100 bps) is applied to the mid.
        assert_eq!(b.marks.get(&m), Some(&d("0.505")));
        b.apply_feed_health(vec![health(&s, 2, "0.9", true)]);
        assert_eq!(b.marks.get(&m), Some(&d("0.505")));
        assert!(
            b.halts_of(&m, &s)
                .contains(&HaltReason::ReferenceUnconfirmed)
        );
        b.apply_feed_health(vec![health(&s, 3, "0.9", false)]);
        assert_eq!(b.marks.get(&m), Some(&d("0.909")));
        assert!(
            !b.halts_of(&m, &s)
                .contains(&HaltReason::ReferenceUnconfirmed)
        );
    }

    #[test]
    fn a_fill_row_counts_once_and_an_overflow_leaves_the_position() {
        let (mut b, m, _) = book();
        let (pos, ok) = b
            .apply_fill(1, &fill(&m, Side::Buy, "0.5", "100"))
            .expect("new row");
        assert!(ok.is_ok());
        assert_eq!(pos, d("100"));
        // The same row again (loaded at start, then reported live) is not counted twice.
        assert!(
            b.apply_fill(1, &fill(&m, Side::Buy, "0.5", "100"))
                .is_none()
        );
        let (pos, ok) = b
            .apply_fill(2, &fill(&m, Side::Buy, "1e27", "1e27"))
            .expect("new row");
        assert!(ok.is_err());
        assert_eq!(pos, d("100"));
        assert_eq!(b.stats().fills, 2);
        b.forget_for_reload();
        assert_eq!(b.position(&m), Decimal::ZERO);
        assert!(
            b.apply_fill(1, &fill(&m, Side::Sell, "0.5", "40"))
                .is_some()
        );
    }

    #[test]
    fn fills_reported_out_of_row_order_all_count_and_loaded_rows_do_not_count_again() {
        // AccountFeed stores fills in row order, but the answers of its store reads can
        // complete in another order (actix polls spawned futures out of order once one has
        // finished), so row 3 can be reported before row 2.
        let (mut b, m, _) = book();
        let loaded = vec![(1, fill(&m, Side::Buy, "0.5", "75"))];
        assert!(b.load_fills(&loaded).is_empty());
        assert_eq!(b.position(&m), d("75"));
        // Row 1 again, live: counted by the load already.
        assert!(b.apply_fill(1, &fill(&m, Side::Buy, "0.5", "75")).is_none());
        let (pos, _) = b
            .apply_fill(3, &fill(&m, Side::Buy, "0.5", "75"))
            .expect("row 3 is new");
        assert_eq!(pos, d("150"));
        let (pos, _) = b
            .apply_fill(2, &fill(&m, Side::Sell, "0.5", "25"))
            .expect("row 2, reported after row 3, is new too");
        assert_eq!(pos, d("125"));
        // Each reported once more, in either order: none counts twice.
        assert!(
            b.apply_fill(2, &fill(&m, Side::Sell, "0.5", "25"))
                .is_none()
        );
        assert!(b.apply_fill(3, &fill(&m, Side::Buy, "0.5", "75")).is_none());
        assert_eq!(b.position(&m), d("125"));
        assert_eq!(b.stats().fills, 3);
    }

    #[test]
    fn a_fill_stored_but_never_reported_is_counted_by_the_second_sweep_that_finds_it() {
        let (mut b, m, _) = book();
        assert!(
            b.load_fills(&[(1, fill(&m, Side::Buy, "0.5", "10"))])
                .is_empty()
        );
        let stored = |ids: &[i64]| -> Vec<(i64, VenueFill)> {
            ids.iter()
                .map(|id| (*id, fill(&m, Side::Buy, "0.5", "10")))
                .collect()
        };
        // Rows 2 and 3 stored; row 2 is reported before the sweep, row 3 is not yet.
        assert!(b.apply_fill(2, &fill(&m, Side::Buy, "0.5", "10")).is_some());
        assert_eq!(b.counted_upto(), 2);
        assert!(
            b.sweep(stored(&[2, 3])).is_empty(),
            "row 3 gets time for its report"
        );
        // Row 3's report was lost; row 4 is new. The next sweep counts row 3 only.
        let due = b.sweep(stored(&[3, 4]));
        assert_eq!(due.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [3]);
        for (id, f) in &due {
            assert!(b.apply_fill(*id, f).is_some());
        }
        assert_eq!(b.position(&m), d("30"));
        // Row 4's report arrives after all: counted once, and the sweep after finds nothing.
        assert!(b.apply_fill(4, &fill(&m, Side::Buy, "0.5", "10")).is_some());
        assert!(b.sweep(stored(&[])).is_empty());
        assert!(b.apply_fill(3, &fill(&m, Side::Buy, "0.5", "10")).is_none());
        assert_eq!((b.position(&m), b.counted_upto()), (d("40"), 4));
    }

    #[test]
    fn a_divergence_pause_starts_and_ends_once_and_shows_in_the_halts_and_figures() {
        let (mut b, m, s) = book();
        let limit = Decimal::from(50);
        assert_eq!(b.set_divergence(&m, Some(d("10")), limit), None);
        assert_eq!(b.stats().markets[0].divergence_bps, Some(d("10")));
        assert_eq!(b.set_divergence(&m, Some(d("51")), limit), Some(true));
        assert!(b.halts_of(&m, &s).contains(&HaltReason::ReferenceDiverged));
        assert_eq!(b.set_divergence(&m, Some(d("45")), limit), None);
        assert_eq!(b.set_divergence(&m, Some(d("39")), limit), Some(false));
        assert!(b.halts_of(&m, &s).is_empty());
        assert_eq!(b.set_divergence(&m, Some(d("60")), limit), Some(true));
        // The venue's book unknown: the check is suspended, and the figure goes.
        assert_eq!(b.set_divergence(&m, None, limit), Some(false));
        assert_eq!(b.stats().markets[0].divergence_bps, None);
    }

    #[test]
    fn a_restart_keeps_only_the_shutdown_halt_and_stats_sum_denials() {
        let (mut b, m, _) = book();
        b.global_halts.insert(HaltReason::KillSwitch);
        b.global_halts.insert(HaltReason::Shutdown);
        let mut counted = Vec::new();
        let mut count = |b: &mut RiskBook, counts: &[(&str, u64)]| {
            b.count_denials(&m, &DenialCounts::of(counts), |reason, n, attrs| {
                counted.push((reason, n, attrs.to_vec()));
            });
        };
        count(&mut b, &[("position_limit", 3), ("outside_band", 1)]);
        count(&mut b, &[("position_limit", 2)]);
        // Each reason once per check, in the figures' order, with its metric's attributes.
        let attrs = |reason: &'static str| {
            vec![
                opentelemetry::KeyValue::new("market", "ADAUSDM"),
                opentelemetry::KeyValue::new("reason", reason),
            ]
        };
        assert_eq!(
            counted,
            [
                ("outside_band", 1, attrs("outside_band")),
                ("position_limit", 3, attrs("position_limit")),
                ("position_limit", 2, attrs("position_limit")),
            ]
        );
        let st = b.stats();
        assert_eq!(st.denials, 6);
        assert_eq!(st.denials_by_reason.get("position_limit"), Some(&5));
        assert_eq!(
            st.markets[0].denials_by_reason.get("outside_band"),
            Some(&1)
        );
        // Not evaluated yet: reported halted.
        assert_eq!(st.markets[0].state, TradingState::Halted);
        b.forget_for_reload();
        assert_eq!(b.global_halts, [HaltReason::Shutdown].into());
    }
}
