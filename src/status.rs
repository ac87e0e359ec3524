//! Operator output: the periodic status line of a running service, and `status --db`, which
//! prints the same figures from the database after the fact.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use mm_actors::order_manager::GetOrderStats;
use mm_actors::quote_engine::GetQuoteStats;
use mm_actors::rate_limiter::GetBudget;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::Position;
use mm_actors::store::rows::{dec, load_fills};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use rust_decimal::Decimal;

use crate::app::Pipeline;

/// One market's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketStatus {
    pub market: String,
    pub state: String,
    pub ref_mid: Option<Decimal>,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub working: usize,
    pub fills: u64,
    pub inventory: Decimal,
    pub pnl: Decimal,
    /// The venue's own book beside ours (live only: the database does not keep it).
    pub venue: Option<VenueStatus>,
}

/// The venue's touch and what was done about it, per market.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VenueStatus {
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    /// Since the last depth snapshot (`None`: none, or the stream is down).
    pub age_ms: Option<i64>,
    /// How far the reference lies outside the others' touch (`None`: not known).
    pub divergence_bps: Option<Decimal>,
    /// Quotes kept behind the venue's opposite touch, and places skipped at the write.
    pub clamped: u64,
    pub skipped: u64,
    /// Places RiskGuard denied for want of funds.
    pub denied_funds: u64,
}

fn opt(d: Option<Decimal>) -> String {
    d.map_or_else(|| "-".to_string(), |d| d.to_string())
}

impl MarketStatus {
    /// The one-line rendering.
    pub fn line(&self, budget_used: u32, budget: u32) -> String {
        let mut line = format!(
            "{} {} ref_mid={} bid={} ask={} working={} fills={} inventory={} pnl={} budget={}/{}s",
            self.market,
            self.state,
            opt(self.ref_mid.map(|d| d.round_dp(6))),
            opt(self.bid),
            opt(self.ask),
            self.working,
            self.fills,
            self.inventory,
            self.pnl.round_dp(4),
            budget_used,
            budget
        );
        if let Some(v) = &self.venue {
            let _ = write!(
                line,
                " venue={}/{} age={} divergence={} avoided={}+{} unfunded={}",
                opt(v.bid),
                opt(v.ask),
                v.age_ms
                    .map_or_else(|| "-".to_string(), |a| format!("{a}ms")),
                v.divergence_bps
                    .map_or_else(|| "-".to_string(), |d| format!("{}bps", d.round_dp(1))),
                v.clamped,
                v.skipped,
                v.denied_funds
            );
        }
        line
    }
}

/// Collects the live status of every market from the actors.
pub async fn live(p: &Pipeline) -> (Vec<MarketStatus>, u32, u32) {
    let quotes = p.quotes.send(GetQuoteStats).await.unwrap_or_default();
    let orders = p.orders.send(GetOrderStats).await.unwrap_or_default();
    let risk = p.risk.send(GetRiskStats).await.unwrap_or_default();
    let budget = p.limiter.send(GetBudget).await.unwrap_or_default();
    let now = mm_actors::types::now_ms();
    let out = quotes
        .into_iter()
        .map(|q| {
            let o = orders.markets.iter().find(|m| m.market == q.market);
            let r = risk.markets.iter().find(|m| m.market == q.market);
            MarketStatus {
                market: q.market.to_string(),
                state: r.map_or("HALTED", |r| r.state.as_str()).to_string(),
                ref_mid: q.ref_mid,
                bid: q.bid,
                ask: q.ask,
                working: o.map_or(0, |o| o.working),
                fills: o.map_or(0, |o| o.fills),
                inventory: r.map_or(Decimal::ZERO, |r| r.position),
                pnl: r.map_or(Decimal::ZERO, |r| r.pnl),
                venue: Some({
                    let v = p.reg.books.view(&q.market, now);
                    VenueStatus {
                        bid: v.bid,
                        ask: v.ask,
                        age_ms: v.age_ms,
                        divergence_bps: r.and_then(|r| r.divergence_bps),
                        clamped: v.clamped,
                        skipped: v.skipped,
                        denied_funds: r.map_or(0, |r| {
                            r.denials_by_reason
                                .iter()
                                .filter(|(why, _)| {
                                    matches!(**why, "insufficient_funds" | "no_balance")
                                })
                                .map(|(_, n)| *n)
                                .sum()
                        }),
                    }
                }),
            }
        })
        .collect();
    (out, budget.used_last_second, budget.actions_per_second)
}

/// Failures of `status --db`.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
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
    #[error("database {path}: positions cannot be computed: {cause}")]
    Accounting { path: String, cause: String },
    #[error("database {path}: {source}")]
    Store {
        path: String,
        source: mm_actors::store::StoreError,
    },
}

/// Figures read from a database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbStatus {
    pub markets: Vec<MarketStatus>,
    /// Most actions sent in any one-second window (from `outbox_sends`).
    pub max_actions_per_second: u32,
    pub outbox_by_status: BTreeMap<String, u64>,
    pub orders_by_state: BTreeMap<String, u64>,
}

/// Reads the status of the service that wrote `path` (read-only).
///
/// # Errors
/// [`StatusError`] naming the database.
pub fn from_db(path: &Path) -> Result<DbStatus, StatusError> {
    let p = path.display().to_string();
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            StatusError::Open {
                path: p.clone(),
                source,
            }
        })?;
    let q = |source| StatusError::Query {
        path: p.clone(),
        source,
    };
    let fills = load_fills(&conn).map_err(|source| StatusError::Store {
        path: p.clone(),
        source,
    })?;
    let mut positions: HashMap<String, (Position, u64)> = HashMap::new();
    for (_, f) in &fills {
        let e = positions.entry(f.market.to_string()).or_default();
        e.0.apply_fill(f.side, f.price, f.size, f.fee)
            .map_err(|e| StatusError::Accounting {
                path: p.clone(),
                cause: e.to_string(),
            })?;
        e.1 += 1;
    }
    let markets: Vec<String> = conn
        .prepare("SELECT DISTINCT market FROM quotes UNION SELECT DISTINCT market FROM orders ORDER BY 1")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(q)?;
    let mut out = DbStatus::default();
    for market in markets {
        let last: Option<(String, String, Option<String>, Option<String>)> = conn
            .query_row(
                "SELECT ref_bid, ref_ask, bid, ask FROM quotes WHERE market = ?1 ORDER BY id DESC LIMIT 1",
                [&market],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(q)?;
        let decode = |s: &str| dec("quotes", s).ok();
        let (ref_mid, bid, ask) = match &last {
            Some((rb, ra, b, a)) => (
                decode(rb)
                    .zip(decode(ra))
                    .map(|(b, a)| (b + a) / Decimal::TWO),
                b.as_deref().and_then(decode),
                a.as_deref().and_then(decode),
            ),
            None => (None, None, None),
        };
        let working: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM orders WHERE market = ?1 AND state IN ('working', 'partially_filled')",
                [&market],
                |r| r.get(0),
            )
            .map_err(q)?;
        let state: Option<String> = conn
            .query_row(
                "SELECT to_state FROM risk_events WHERE market = ?1 ORDER BY id DESC LIMIT 1",
                [&market],
                |r| r.get(0),
            )
            .optional()
            .map_err(q)?;
        let (pos, nfills) = positions.remove(&market).unwrap_or_default();
        out.markets.push(MarketStatus {
            state: state.unwrap_or_else(|| "-".into()),
            ref_mid,
            bid,
            ask,
            working: usize::try_from(working).unwrap_or(0),
            fills: nfills,
            inventory: pos.qty,
            pnl: pos.pnl(ref_mid).unwrap_or_default(),
            market,
            venue: None,
        });
    }
    out.max_actions_per_second = max_actions_per_second(&conn).map_err(q)?;
    for (table, col, map) in [
        ("outbox", "status", &mut out.outbox_by_status),
        ("orders", "state", &mut out.orders_by_state),
    ] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {col}, COUNT(*) FROM {table} GROUP BY {col}"
            ))
            .map_err(q)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(q)?;
        for row in rows {
            let (k, n) = row.map_err(q)?;
            map.insert(k, u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(out)
}

/// The most requests sent to the venue within any window of 1000 ms (sliding, half-open).
///
/// # Errors
/// SQLite errors.
pub fn max_actions_per_second(conn: &Connection) -> Result<u32, rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT sent_at_ms FROM outbox_sends ORDER BY sent_at_ms")?;
    let times: Vec<i64> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let best = mm_actors::types::max_in_window(&times, 1_000);
    Ok(u32::try_from(best).unwrap_or(u32::MAX))
}

/// Renders a [`DbStatus`] for the terminal.
pub fn render(s: &DbStatus, budget: u32) -> String {
    let mut out = String::new();
    for m in &s.markets {
        let _ = writeln!(out, "{}", m.line(s.max_actions_per_second, budget));
    }
    let _ = writeln!(out, "orders: {:?}", s.orders_by_state);
    let _ = writeln!(out, "outbox: {:?}", s.outbox_by_status);
    let _ = writeln!(
        out,
        "most actions sent in one second: {} (budget {budget})",
        s.max_actions_per_second
    );
    out
}
