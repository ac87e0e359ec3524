//! `deltadefi-mm report`: what a run earned, and why, from its SQLite file (a live, staging
//! or backtest run alike), per market, over an optional time window.
//!
//! PnL is decomposed so that the parts add up to the total exactly (in `Decimal`):
//! - **spread capture**: each fill against the fair price at the fill (the reference mid then):
//!   `side × size × (mid_at_fill − price)`; a buy below the mid or a sell above it earns;
//! - **inventory**: the mark-to-market of what was held: the position at the window's start
//!   from the start mark to the end mark, and each fill's quantity from its mid to the end mark;
//! - **fees**: what the venue charged (negative: a rebate).
//!
//! `total = spread + inventory − fees`, which equals the cash flow of the fills plus the
//! position's change in marked value ([`Pnl::cash_total`], checked on every report).
//!
//! Marks are the reference mids QuoteEngine recorded with each quote decision (the `quotes`
//! table: a row whenever the reference moved beyond the requote tolerance, or the trading state
//! changed), so a mark is within `requote_tolerance_bps` of the true reference at that time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use rust_decimal::Decimal;
use serde::Serialize;

/// One fill as the report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRow {
    pub ts_ms: i64,
    /// +1 buy, −1 sell.
    pub sign: i8,
    pub price: Decimal,
    pub size: Decimal,
    pub fee: Decimal,
}

/// One mark: the reference mid from `ts_ms` on, and our best quotes then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
    pub ts_ms: i64,
    pub mid: Decimal,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    /// The venue's own mid then (its book without ours), where it was known.
    pub venue_mid: Option<Decimal>,
}

impl MarkRow {
    /// Both sides quoted.
    pub fn two_sided(&self) -> bool {
        self.bid.is_some() && self.ask.is_some()
    }
}

/// What one market's report is computed from (each list in time order).
#[derive(Debug, Clone, Default)]
pub struct MarketInput {
    pub market: String,
    pub fills: Vec<FillRow>,
    pub marks: Vec<MarkRow>,
    /// Times of the order actions sent to the venue.
    pub sends: Vec<i64>,
    /// Places the venue refused, by its code (from the outbox's last error).
    pub rejects: BTreeMap<String, u64>,
    /// Places RiskGuard denied, by reason, as (time, reason, count).
    pub denials: Vec<(i64, String, u64)>,
    /// The desired book from each quote decision on: (time, [(slot, price)]).
    pub targets: Vec<(i64, Vec<(String, Decimal)>)>,
    /// Our orders resting at the venue: (from, until, slot, price); `until` is `i64::MAX` for
    /// one still resting.
    pub resting: Vec<(i64, i64, String, Decimal)>,
    /// The market's requote tolerance: a resting order this close to its target is fresh.
    pub tolerance_bps: Decimal,
    /// The order-action budget per second the run was configured with (0: unknown).
    pub budget_per_second: u32,
}

/// Of the time a target was quoted, level by level, the share during which the level had an
/// order of ours resting in its slot within the tolerance of its price (each level of the
/// target weighs the same).
fn freshness(input: &MarketInput, from_ms: i64, to_ms: i64) -> Decimal {
    let mut times: Vec<i64> = input
        .targets
        .iter()
        .map(|t| t.0)
        .chain(input.resting.iter().flat_map(|r| [r.0, r.1]))
        .filter(|t| *t > from_ms && *t < to_ms)
        .chain([from_ms, to_ms])
        .collect();
    times.sort_unstable();
    times.dedup();
    let tol = input.tolerance_bps / Decimal::from(10_000);
    let (mut quoted, mut fresh) = (0i64, Decimal::ZERO);
    // One sweep in time: the orders resting at `t` are kept as the active set.
    let mut by_start: Vec<_> = input.resting.iter().collect();
    by_start.sort_by_key(|r| r.0);
    let (mut started, mut active) = (0usize, Vec::new());
    for w in times.windows(2) {
        let (t, next) = (w[0], w[1]);
        while let Some(r) = by_start.get(started).filter(|r| r.0 <= t) {
            active.push(*r);
            started += 1;
        }
        active.retain(|r| t < r.1);
        let i = input.targets.partition_point(|x| x.0 <= t);
        let Some((_, levels)) = i.checked_sub(1).map(|i| &input.targets[i]) else {
            continue;
        };
        if levels.is_empty() {
            continue;
        }
        quoted += next - t;
        let matched = levels
            .iter()
            .filter(|(slot, price)| {
                active
                    .iter()
                    .any(|(_, _, s, p)| s == slot && (*p - *price).abs() <= *price * tol)
            })
            .count();
        fresh += Decimal::from(next - t) * Decimal::from(matched as u64)
            / Decimal::from(levels.len() as u64);
    }
    ratio(fresh, Decimal::from(quoted)).round_dp(4)
}

/// PnL and its parts, in quote units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pnl {
    pub spread: Decimal,
    pub inventory: Decimal,
    pub fees: Decimal,
    pub total: Decimal,
    /// The same total from cash flows and marked positions, independently.
    pub cash_total: Decimal,
}

/// Average PnL of a fill `horizon_s` after it, marked at the reference mid then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Markout {
    pub horizon_s: u32,
    pub side: &'static str,
    /// Fills with a mark that far after them.
    pub fills: u64,
    /// Quote units per fill, and bps of the fill's notional.
    pub avg: Decimal,
    pub avg_bps: Decimal,
}

/// Position over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub start: Decimal,
    pub end: Decimal,
    pub min: Decimal,
    pub max: Decimal,
    pub time_weighted: Decimal,
}

/// One market's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketReport {
    pub market: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub fills: u64,
    pub buys: u64,
    pub sells: u64,
    pub volume_base: Decimal,
    pub volume_quote: Decimal,
    pub pnl: Pnl,
    pub markouts: Vec<Markout>,
    pub inventory: Inventory,
    /// Fills per hour of the window.
    pub fills_per_hour: Decimal,
    /// Share of the window with a quote on both sides (0..1), from the quote decisions.
    pub two_sided_share: Decimal,
    /// Of the time a target was quoted, level by level, the share during which the level had
    /// an order resting in its slot within the requote tolerance of the target (0..1).
    pub quote_freshness: Decimal,
    pub start_mark: Option<Decimal>,
    pub end_mark: Option<Decimal>,
    pub actions: u64,
    pub max_actions_per_second: u64,
    pub actions_per_second: Decimal,
    /// The configured budget (0: unknown), and the share of it used over the window.
    pub budget_per_second: u32,
    pub budget_used: Decimal,
    pub rejects_by_code: BTreeMap<String, u64>,
    pub denials_by_reason: BTreeMap<String, u64>,
}

const HORIZONS_S: [u32; 3] = [1, 10, 60];

/// The mark in force at `t`: the last one at or before it.
pub(crate) fn mark_at(marks: &[MarkRow], t: i64) -> Option<&MarkRow> {
    let i = marks.partition_point(|m| m.ts_ms <= t);
    i.checked_sub(1).map(|i| &marks[i])
}

fn ratio(num: Decimal, den: Decimal) -> Decimal {
    if den.is_zero() {
        Decimal::ZERO
    } else {
        num / den
    }
}

/// The position carried into `[from_ms, to_ms]` (the fills before it), and the fills in it.
pub(crate) fn carried_and_window(
    input: &MarketInput,
    from_ms: i64,
    to_ms: i64,
) -> (Decimal, Vec<&FillRow>) {
    let carried = input
        .fills
        .iter()
        .filter(|f| f.ts_ms < from_ms)
        .map(|f| Decimal::from(f.sign) * f.size)
        .sum();
    let window = input
        .fills
        .iter()
        .filter(|f| f.ts_ms >= from_ms && f.ts_ms <= to_ms)
        .collect();
    (carried, window)
}

/// Computes one market's report over `[from_ms, to_ms]`.
pub fn compute(input: &MarketInput, from_ms: i64, to_ms: i64) -> MarketReport {
    let sign = |f: &FillRow| Decimal::from(f.sign);
    let (start, window) = carried_and_window(input, from_ms, to_ms);
    let start_mark = mark_at(&input.marks, from_ms).map(|m| m.mid);
    let end_mark = mark_at(&input.marks, to_ms).map(|m| m.mid);
    // Without any mark the fills are valued at their own prices (no spread, no inventory).
    let fair = |f: &FillRow| mark_at(&input.marks, f.ts_ms).map_or(f.price, |m| m.mid);
    let end = end_mark
        .or_else(|| window.last().map(|f| f.price))
        .unwrap_or_default();
    let start_m = start_mark.unwrap_or(end);

    let mut pnl = Pnl::default();
    let mut cash = Decimal::ZERO;
    let mut pos = start;
    let (mut min, mut max) = (start, start);
    let mut weighted = Decimal::ZERO;
    let mut last_t = from_ms;
    let (mut buys, mut sells) = (0u64, 0u64);
    let (mut vol_base, mut vol_quote) = (Decimal::ZERO, Decimal::ZERO);
    pnl.inventory = start * (end - start_m);
    for f in &window {
        let s = sign(f);
        let mid = fair(f);
        pnl.spread += s * f.size * (mid - f.price);
        pnl.inventory += s * f.size * (end - mid);
        pnl.fees += f.fee;
        cash -= s * f.size * f.price + f.fee;
        weighted += pos * Decimal::from(f.ts_ms - last_t);
        last_t = f.ts_ms;
        pos += s * f.size;
        min = min.min(pos);
        max = max.max(pos);
        vol_base += f.size;
        vol_quote += f.size * f.price;
        if f.sign > 0 {
            buys += 1;
        } else {
            sells += 1;
        }
    }
    weighted += pos * Decimal::from(to_ms - last_t);
    pnl.total = pnl.spread + pnl.inventory - pnl.fees;
    pnl.cash_total = cash + pos * end - start * start_m;

    let mut markouts = Vec::new();
    for h in HORIZONS_S {
        for (side, want) in [("buy", 1i8), ("sell", -1i8)] {
            let (mut n, mut sum, mut notional) = (0u64, Decimal::ZERO, Decimal::ZERO);
            for f in window.iter().filter(|f| f.sign == want) {
                let t = f.ts_ms + i64::from(h) * 1_000;
                // Only where the record goes that far: a mark after the horizon exists.
                if input.marks.last().is_none_or(|m| m.ts_ms < t) {
                    continue;
                }
                let Some(m) = mark_at(&input.marks, t) else {
                    continue;
                };
                n += 1;
                sum += sign(f) * f.size * (m.mid - f.price);
                notional += f.size * f.price;
            }
            let avg = ratio(sum, Decimal::from(n));
            markouts.push(Markout {
                horizon_s: h,
                side,
                fills: n,
                avg: avg.round_dp(6),
                avg_bps: (ratio(sum, notional) * Decimal::from(10_000)).round_dp(2),
            });
        }
    }

    // Two-sided time: each mark holds until the next one (or the window's end).
    let span = Decimal::from((to_ms - from_ms).max(0));
    let mut two_sided = Decimal::ZERO;
    let mut cursor = from_ms;
    let mut state = mark_at(&input.marks, from_ms).is_some_and(MarkRow::two_sided);
    for m in input
        .marks
        .iter()
        .filter(|m| m.ts_ms > from_ms && m.ts_ms <= to_ms)
    {
        if state {
            two_sided += Decimal::from(m.ts_ms - cursor);
        }
        cursor = m.ts_ms;
        state = m.two_sided();
    }
    if state {
        two_sided += Decimal::from(to_ms - cursor);
    }

    let sends: Vec<i64> = input
        .sends
        .iter()
        .copied()
        .filter(|t| *t >= from_ms && *t <= to_ms)
        .collect();
    let best = mm_actors::types::max_in_window(&sends, 1_000);
    let hours = span / Decimal::from(3_600_000);
    MarketReport {
        market: input.market.clone(),
        from_ms,
        to_ms,
        fills: buys + sells,
        buys,
        sells,
        volume_base: vol_base,
        volume_quote: vol_quote,
        pnl,
        markouts,
        inventory: Inventory {
            start,
            end: pos,
            min,
            max,
            time_weighted: ratio(weighted, span).round_dp(6),
        },
        fills_per_hour: ratio(Decimal::from(buys + sells), hours).round_dp(2),
        two_sided_share: ratio(two_sided, span).round_dp(4),
        quote_freshness: freshness(input, from_ms, to_ms),
        start_mark,
        end_mark,
        actions: sends.len() as u64,
        max_actions_per_second: best as u64,
        actions_per_second: ratio(
            Decimal::from(sends.len() as u64),
            span / Decimal::from(1_000),
        )
        .round_dp(3),
        budget_per_second: input.budget_per_second,
        budget_used: ratio(
            ratio(
                Decimal::from(sends.len() as u64),
                span / Decimal::from(1_000),
            ),
            Decimal::from(input.budget_per_second),
        )
        .round_dp(4),
        rejects_by_code: input.rejects.clone(),
        denials_by_reason: input
            .denials
            .iter()
            .filter(|(t, _, _)| *t >= from_ms && *t <= to_ms)
            .fold(BTreeMap::new(), |mut m, (_, why, n)| {
                *m.entry(why.clone()).or_default() += n;
                m
            }),
    }
}

/// Failures of `report`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database {path}: {source}")]
    Query {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database {path}: {what} is not a decimal: {value:?}")]
    Decimal {
        path: String,
        what: &'static str,
        value: String,
    },
}

/// Reads every market's inputs from a database (read-only; works while the service runs).
///
/// # Errors
/// [`ReportError`] naming the file and what could not be read.
pub fn read_db(path: &Path) -> Result<Vec<MarketInput>, ReportError> {
    let p = path.display().to_string();
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            ReportError::Open {
                path: p.clone(),
                source,
            }
        })?;
    let q = |source| ReportError::Query {
        path: p.clone(),
        source,
    };
    let dec = |what: &'static str, v: String| {
        v.parse::<Decimal>().map_err(|_| ReportError::Decimal {
            path: p.clone(),
            what,
            value: v,
        })
    };
    let mut markets: Vec<String> = conn
        .prepare("SELECT DISTINCT market FROM quotes UNION SELECT DISTINCT market FROM fills")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(q)?;
    markets.sort();
    // Databases written before version 5 have neither the venue's touch nor the denials.
    let has_venue: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('quotes') WHERE name = 'venue_bid'",
            [],
            |r| r.get(0),
        )
        .map_err(q)?;
    let has_denials: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'denials'",
            [],
            |r| r.get(0),
        )
        .map_err(q)?;
    let quotes_sql = if has_venue {
        "SELECT ts_ms, ref_bid, ref_ask, bid, ask, venue_bid, venue_ask FROM quotes
         WHERE market = ?1 ORDER BY ts_ms, id"
    } else {
        "SELECT ts_ms, ref_bid, ref_ask, bid, ask, NULL, NULL FROM quotes
         WHERE market = ?1 ORDER BY ts_ms, id"
    };
    let mut out = Vec::new();
    for market in markets {
        let mut input = MarketInput {
            market: market.clone(),
            ..MarketInput::default()
        };
        let rows: Vec<(i64, String, String, String, String)> = conn
            .prepare(
                "SELECT ts_ms, side, price, size, fee FROM fills WHERE market = ?1 ORDER BY ts_ms, id",
            )
            .and_then(|mut s| {
                s.query_map([&market], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .map_err(q)?;
        for (ts_ms, side, price, size, fee) in rows {
            input.fills.push(FillRow {
                ts_ms,
                sign: if side == "buy" { 1 } else { -1 },
                price: dec("fills.price", price)?,
                size: dec("fills.size", size)?,
                fee: dec("fills.fee", fee)?,
            });
        }
        type Opt = Option<String>;
        type QuoteRow = (i64, String, String, Opt, Opt, Opt, Opt);
        let rows: Vec<QuoteRow> = conn
            .prepare(quotes_sql)
            .and_then(|mut s| {
                s.query_map([&market], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect()
            })
            .map_err(q)?;
        for (ts_ms, ref_bid, ref_ask, bid, ask, vbid, vask) in rows {
            let mid =
                (dec("quotes.ref_bid", ref_bid)? + dec("quotes.ref_ask", ref_ask)?) / Decimal::TWO;
            let vbid = vbid.map(|b| dec("quotes.venue_bid", b)).transpose()?;
            let vask = vask.map(|a| dec("quotes.venue_ask", a)).transpose()?;
            input.marks.push(MarkRow {
                ts_ms,
                mid,
                bid: bid.map(|b| dec("quotes.bid", b)).transpose()?,
                ask: ask.map(|a| dec("quotes.ask", a)).transpose()?,
                venue_mid: vbid.zip(vask).map(|(b, a)| (b + a) / Decimal::TWO),
            });
        }
        let levels: Vec<(i64, String)> = conn
            .prepare("SELECT ts_ms, levels FROM quotes WHERE market = ?1 ORDER BY ts_ms, id")
            .and_then(|mut s| {
                s.query_map([&market], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(q)?;
        for (ts, json) in levels {
            let parsed: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
            let mut target = Vec::new();
            for l in parsed {
                if let (Some(slot), Some(price)) = (l["slot"].as_str(), l["price"].as_str()) {
                    target.push((slot.to_string(), dec("quotes.levels", price.to_string())?));
                }
            }
            input.targets.push((ts, target));
        }
        // Resting: from an order's first working (or partly filled) state until it leaves them.
        // Streamed row by row: a day's run has hundreds of thousands of order events.
        let mut stmt = conn
            .prepare(
                "SELECT e.client_order_id, e.ts_ms, e.to_state, o.slot, o.price
                 FROM order_events e JOIN orders o ON o.client_order_id = e.client_order_id
                 WHERE o.market = ?1 ORDER BY e.client_order_id, e.ts_ms, e.id",
            )
            .map_err(q)?;
        let events = stmt
            .query_map([&market], |r| {
                Ok::<(String, i64, String, String, String), _>((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(q)?;
        let mut open: Option<(String, i64, String, Decimal)> = None;
        for event in events {
            let (id, ts, state, slot, price) = event.map_err(q)?;
            let rests = matches!(state.as_str(), "working" | "partially_filled");
            if let Some((oid, from, s, p)) = open.take() {
                if oid == id && rests {
                    open = Some((oid, from, s, p));
                    continue;
                }
                input
                    .resting
                    .push((from, if oid == id { ts } else { i64::MAX }, s, p));
            }
            if rests {
                open = Some((id, ts, slot, dec("orders.price", price)?));
            }
        }
        if let Some((_, from, s, p)) = open {
            input.resting.push((from, i64::MAX, s, p));
        }
        if has_denials {
            input.denials = conn
                .prepare(
                    "SELECT ts_ms, reason, count FROM denials WHERE market = ?1 ORDER BY ts_ms, id",
                )
                .and_then(|mut s| {
                    s.query_map([&market], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
                    })?
                    .collect()
                })
                .map_err(q)?;
        }
        input.sends = conn
            .prepare("SELECT sent_at_ms FROM outbox_sends WHERE market = ?1 ORDER BY sent_at_ms")
            .and_then(|mut s| s.query_map([&market], |r| r.get(0))?.collect())
            .map_err(q)?;
        let errors: Vec<String> = conn
            .prepare(
                "SELECT COALESCE(last_error, '') FROM outbox
                 WHERE market = ?1 AND kind = 'place' AND status = 'rejected'",
            )
            .and_then(|mut s| s.query_map([&market], |r| r.get(0))?.collect())
            .map_err(q)?;
        for e in errors {
            *input.rejects.entry(reject_code(&e)).or_default() += 1;
        }
        out.push(input);
    }
    Ok(out)
}

/// The venue's code of an outbox error text (`4104: post only order would cross`), else the
/// text's start.
fn reject_code(e: &str) -> String {
    match e.split_once(':') {
        Some((code, _)) if !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()) => {
            code.to_string()
        }
        _ => e.chars().take(40).collect(),
    }
}

/// Gives each market's input what only the config knows: the action budget and the market's
/// requote tolerance (for quote freshness).
pub fn apply_config(inputs: &mut [MarketInput], cfg: &mm_actors::config::Config) {
    for i in inputs {
        i.budget_per_second = cfg.rate_limit.actions_per_second;
        if let Some(m) = cfg.markets.iter().find(|m| m.market.as_str() == i.market) {
            i.tolerance_bps = m.requote_tolerance_bps;
        }
    }
}

/// Each market's report over its [`window`] of `from`..`to`.
pub fn compute_all(
    inputs: &[MarketInput],
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<MarketReport> {
    inputs
        .iter()
        .map(|i| {
            let (f, t) = window(i, from, to);
            compute(i, f, t)
        })
        .collect()
}

/// The window of a report: given bounds, else the first to the last record of the market.
pub fn window(input: &MarketInput, from: Option<i64>, to: Option<i64>) -> (i64, i64) {
    let first = [
        input.fills.first().map(|f| f.ts_ms),
        input.marks.first().map(|m| m.ts_ms),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(0);
    let last = [
        input.fills.last().map(|f| f.ts_ms),
        input.marks.last().map(|m| m.ts_ms),
        input.sends.last().copied(),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(first);
    (from.unwrap_or(first), to.unwrap_or(last))
}

/// Renders reports for the terminal.
pub fn render(reports: &[MarketReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let secs = (r.to_ms - r.from_ms) as f64 / 1_000.0;
        let _ = writeln!(out, "{} over {secs:.1} s", r.market);
        let _ = writeln!(
            out,
            "  pnl {} = spread {} + inventory {} - fees {}",
            r.pnl.total.round_dp(6),
            r.pnl.spread.round_dp(6),
            r.pnl.inventory.round_dp(6),
            r.pnl.fees.round_dp(6)
        );
        let _ = writeln!(
            out,
            "  fills {} ({} buys, {} sells), {:.2}/h; volume {} base, {} quote",
            r.fills,
            r.buys,
            r.sells,
            r.fills_per_hour,
            r.volume_base,
            r.volume_quote.round_dp(4)
        );
        let _ = writeln!(
            out,
            "  inventory start {} end {} min {} max {} time-weighted {}",
            r.inventory.start,
            r.inventory.end,
            r.inventory.min,
            r.inventory.max,
            r.inventory.time_weighted
        );
        for m in &r.markouts {
            let _ = writeln!(
                out,
                "  markout +{}s {}: {} per fill ({} bps) over {} fills",
                m.horizon_s, m.side, m.avg, m.avg_bps, m.fills
            );
        }
        let _ = writeln!(
            out,
            "  quoted two-sided {:.1} % of the time, resting within tolerance of the target {:.1} % of it; actions {} ({} /s = {:.1} % of the {}/s budget, most in one second {}); venue rejects {:?}",
            r.two_sided_share * Decimal::from(100),
            r.quote_freshness * Decimal::from(100),
            r.actions,
            r.actions_per_second,
            r.budget_used * Decimal::from(100),
            r.budget_per_second,
            r.max_actions_per_second,
            r.rejects_by_code
        );
        let _ = writeln!(out, "  denied by RiskGuard: {:?}", r.denials_by_reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn fill(ts_ms: i64, sign: i8, price: &str, size: &str, fee: &str) -> FillRow {
        FillRow {
            ts_ms,
            sign,
            price: d(price),
            size: d(size),
            fee: d(fee),
        }
    }

    fn mark(ts_ms: i64, mid: &str, two_sided: bool) -> MarkRow {
        let one = d("0.0001");
        MarkRow {
            ts_ms,
            mid: d(mid),
            bid: two_sided.then(|| d(mid) - one),
            ask: Some(d(mid) + one),
            venue_mid: None,
        }
    }

    #[test]
    fn a_round_trip_earns_its_spread_and_the_parts_add_up() {
        let input = MarketInput {
            market: "ADAUSDM".into(),
            // Buy 100 at 0.4490 with the mid at 0.4500, sell 100 at 0.4510 with the mid at
            // 0.4500 again: 0.10 + 0.10 of spread, no inventory left, 0.09 of fees.
            fills: vec![
                fill(1_000, 1, "0.4490", "100", "0.0449"),
                fill(5_000, -1, "0.4510", "100", "0.0451"),
            ],
            marks: vec![
                mark(0, "0.4500", true),
                mark(3_000, "0.4520", false),
                mark(4_000, "0.4500", true),
                mark(70_000, "0.4500", true),
            ],
            sends: vec![500, 600, 700, 4_900],
            rejects: BTreeMap::new(),
            denials: vec![
                (2_000, "insufficient_funds".into(), 2),
                (20_000, "outside_band".into(), 1),
            ],
            budget_per_second: 5,
            ..MarketInput::default()
        };
        let r = compute(&input, 0, 10_000);
        assert_eq!(r.pnl.spread, d("0.2"));
        assert_eq!(r.pnl.inventory, d("0"));
        assert_eq!(r.pnl.fees, d("0.09"));
        assert_eq!(r.pnl.total, d("0.11"));
        assert_eq!(r.pnl.total, r.pnl.cash_total);
        assert_eq!(
            (r.inventory.min, r.inventory.max, r.inventory.end),
            (d("0"), d("100"), d("0"))
        );
        // 100 held from 1 s to 5 s of a 10 s window.
        assert_eq!(r.inventory.time_weighted, d("40"));
        // One-sided from 3 s to 4 s.
        assert_eq!(r.two_sided_share, d("0.9"));
        assert_eq!(r.budget_used, d("0.08"), "0.4 actions/s of 5");
        assert_eq!((r.actions, r.max_actions_per_second), (4, 3));
        // Denials inside the window only.
        assert_eq!(
            r.denials_by_reason,
            BTreeMap::from([("insufficient_funds".to_string(), 2)])
        );
        // +1 s after the buy the mid is 0.4500: +0.10 for 100 bought at 0.4490.
        let m = r
            .markouts
            .iter()
            .find(|m| m.horizon_s == 1 && m.side == "buy")
            .expect("markout");
        assert_eq!((m.fills, m.avg), (1, d("0.1")));
    }

    #[test]
    fn freshness_is_the_share_of_quoted_time_every_level_rests_near_its_target() {
        let t = |ts: i64, levels: &[(&str, &str)]| {
            (
                ts,
                levels
                    .iter()
                    .map(|(s, p)| (s.to_string(), d(p)))
                    .collect::<Vec<_>>(),
            )
        };
        let input = MarketInput {
            market: "ADAUSDM".into(),
            // Quoted from 0 to 10 s; the target moves at 6 s.
            targets: vec![
                t(0, &[("buy0", "0.4490"), ("sell0", "0.4510")]),
                t(6_000, &[("buy0", "0.4480"), ("sell0", "0.4500")]),
            ],
            // The bid rests from 1 s; the ask from 2 s; both are replaced at 7 s and 8 s.
            resting: vec![
                (1_000, 7_000, "buy0".into(), d("0.4490")),
                (2_000, 8_000, "sell0".into(), d("0.4510")),
                (7_000, i64::MAX, "buy0".into(), d("0.4480")),
                (8_000, i64::MAX, "sell0".into(), d("0.4501")),
            ],
            // 5 bps of 0.45 is 0.000225: 0.4501 is near 0.4500, 0.4490 is not near 0.4480.
            tolerance_bps: d("5"),
            ..MarketInput::default()
        };
        // Level-seconds fresh: the bid 1-6 and 7-10 s (8), the ask 2-6 and 8-10 s (6): 14 of 20.
        assert_eq!(freshness(&input, 0, 10_000), d("0.7"));
        // Not quoted at all: nothing to be fresh about.
        assert_eq!(freshness(&MarketInput::default(), 0, 10_000), d("0"));
    }

    #[test]
    fn a_position_held_into_a_falling_market_is_inventory_loss() {
        let input = MarketInput {
            market: "ADAUSDM".into(),
            fills: vec![fill(1_000, 1, "0.4500", "100", "0")],
            marks: vec![mark(0, "0.4500", true), mark(2_000, "0.4400", true)],
            ..MarketInput::default()
        };
        let r = compute(&input, 0, 3_000);
        assert_eq!(r.pnl.spread, d("0"));
        assert_eq!(r.pnl.inventory, d("-1"));
        assert_eq!(r.pnl.total, d("-1"));
        // A window that starts after the buy: the position is carried in and marked from there.
        let later = compute(&input, 1_500, 3_000);
        assert_eq!(later.inventory.start, d("100"));
        assert_eq!(later.fills, 0);
        assert_eq!(later.pnl.inventory, d("-1"));
        assert_eq!(later.pnl.total, later.pnl.cash_total);
    }

    #[test]
    fn reject_codes_are_read_from_the_outbox_errors() {
        assert_eq!(reject_code("4104: post only order would cross"), "4104");
        assert_eq!(reject_code("4050: insufficient balance"), "4050");
        assert_eq!(
            reject_code("no code at 0.4509: here"),
            "no code at 0.4509: here"
        );
    }

    proptest! {
        #[test]
        fn prop_the_parts_always_add_up_to_the_cash_total(
            fills in proptest::collection::vec((0i64..100_000, any::<bool>(), 1i64..100_000, 1i64..100_000, 0i64..1_000), 0..60),
            marks in proptest::collection::vec((0i64..100_000, 1i64..100_000, any::<bool>()), 0..60),
            from in 0i64..50_000,
            len in 0i64..60_000,
        ) {
            let mut fills: Vec<FillRow> = fills
                .into_iter()
                .map(|(t, buy, p, q, fee)| FillRow {
                    ts_ms: t,
                    sign: if buy { 1 } else { -1 },
                    price: Decimal::new(p, 5),
                    size: Decimal::new(q, 2),
                    fee: Decimal::new(fee, 6),
                })
                .collect();
            fills.sort_by_key(|f| f.ts_ms);
            let mut marks: Vec<MarkRow> = marks
                .into_iter()
                .map(|(t, m, two)| MarkRow { ts_ms: t, mid: Decimal::new(m, 5), bid: two.then_some(Decimal::ONE), ask: Some(Decimal::TWO), venue_mid: None })
                .collect();
            marks.sort_by_key(|m| m.ts_ms);
            let input = MarketInput { market: "X".into(), fills, marks, ..MarketInput::default() };
            let r = compute(&input, from, from + len);
            prop_assert_eq!(r.pnl.total, r.pnl.spread + r.pnl.inventory - r.pnl.fees);
            prop_assert_eq!(r.pnl.total, r.pnl.cash_total);
            prop_assert!(r.two_sided_share >= Decimal::ZERO && r.two_sided_share <= Decimal::ONE);
            prop_assert!(r.inventory.min <= r.inventory.end && r.inventory.end <= r.inventory.max);
        }
    }
}
