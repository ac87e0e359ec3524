//! Typed rows: the writes the service makes and the loaders it resumes from.
//!
//! Decimals are written as `Display` writes them ([`SqlText`]) and read back with `parse()`; a
//! value that does not parse is a [`StoreError::Corrupt`] naming the table, never a silent
//! zero.

use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rust_decimal::Decimal;

use super::StoreError;
use super::text::{SqlText, opt_decimal, write_decimal};
use crate::intent::{Intent, IntentKind};
use crate::messages::{DesiredOrder, OutboxRow, OutboxStatus, QuoteReason};
use crate::orders::{Order, OrderState, Transition};
use crate::types::{ClientOrderId, MarketId, Side, Slot, TradeId, VenueOrderId};
pub use crate::venue::SendRecord;
use crate::venue::{Balance, Liquidity, VenueFill};

/// One quote decision, as persisted.
#[derive(Debug, Clone)]
pub struct QuoteRecord {
    pub market: MarketId,
    pub ts_ms: i64,
    pub reason: QuoteReason,
    pub ref_bid: Decimal,
    pub ref_ask: Decimal,
    pub fair: Decimal,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub inventory: Decimal,
    /// The desired levels (stored as a JSON array).
    pub levels: Vec<DesiredOrder>,
    /// The venue's touch without our orders, when known and fresh.
    pub venue_bid: Option<Decimal>,
    pub venue_ask: Option<Decimal>,
}

/// The levels as a JSON array of `{"price","size","slot"}` objects (keys in serde_json's
/// order), written directly: a `serde_json::Value` per level cost a dozen allocations on every
/// decision. Decimals and slots (`buy0`) need no escaping. Formatted on the store thread, not
/// by QuoteEngine on the tick's path.
pub fn levels_json(levels: &[DesiredOrder]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 + levels.len() * 48);
    out.push('[');
    for (i, o) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"price":""#);
        write_decimal(&mut out, o.price);
        out.push_str(r#"","size":""#);
        write_decimal(&mut out, o.size);
        let _ = write!(out, r#"","slot":"{}"}}"#, o.slot);
    }
    out.push(']');
    out
}

/// One write of the service.
#[derive(Debug, Clone)]
pub enum Write {
    Quote(QuoteRecord),
    /// An order created or changed, with its audit event.
    Order {
        transition: Transition,
        ts_ms: i64,
    },
    /// Insert or update an outbox row.
    Outbox(OutboxRow),
    /// An order action let through to the venue (retries included): the budget's audit trail,
    /// written by the rate limiter. A place also records the venue's order id (DeltaDeFi names
    /// it at build time) on its outbox row and its order before the submit, so that a crash
    /// right after the submit can still be resolved by that id.
    VenueSend(SendRecord),
    /// The send of this record was written at this moment (a little after it was granted and
    /// recorded): the record's time is corrected to it.
    VenueSendAt(SendRecord, i64),
    Balance {
        balance: Balance,
        ts_ms: i64,
    },
    /// Places RiskGuard denied in one check, by reason.
    Denials {
        ts_ms: i64,
        market: MarketId,
        reason: &'static str,
        count: u64,
    },
    RiskEvent {
        ts_ms: i64,
        market: Option<MarketId>,
        from: String,
        to: String,
        reason: String,
    },
    ControlConsumed {
        id: i64,
        ts_ms: i64,
    },
    /// A market halted: every place of it still waiting in the outbox is superseded, in the
    /// same transaction as the halt's record, so that none is sent after the halt even across
    /// a crash.
    SupersedePendingPlaces {
        market: MarketId,
        ts_ms: i64,
        reason: String,
    },
    /// The service is alive; `trading_state` summarises its markets.
    Heartbeat {
        ts_ms: i64,
        trading_state: String,
    },
}

/// Applies `writes` inside `tx`, in order, except that the denials of one (millisecond,
/// market, reason) are summed into one row written after the others: RiskGuard records one
/// per check, tens of them a millisecond under load, and the report only sums them.
///
/// # Errors
/// Any SQLite error.
pub fn apply_all<'w>(
    tx: &Transaction<'_>,
    writes: impl IntoIterator<Item = &'w Write>,
) -> Result<(), rusqlite::Error> {
    let mut denials: Vec<(i64, &MarketId, &'static str, u64)> = Vec::new();
    // Most rows of a busy batch are quotes: their statement is taken from the cache once per
    // batch, not once per row (a lookup and a put-back keyed by the whole SQL text).
    let mut quotes: Option<rusqlite::CachedStatement<'_>> = None;
    for w in writes {
        match w {
            Write::Quote(q) => {
                let statement = match &mut quotes {
                    Some(s) => s,
                    None => quotes.insert(tx.prepare_cached(INSERT_QUOTE)?),
                };
                insert_quote(&mut *statement, q)?;
            }
            Write::Denials {
                ts_ms,
                market,
                reason,
                count,
            } => match denials
                .iter_mut()
                .find(|(t, m, r, _)| t == ts_ms && *m == market && r == reason)
            {
                Some((_, _, _, sum)) => *sum = sum.saturating_add(*count),
                None => denials.push((*ts_ms, market, reason, *count)),
            },
            other => other.apply(tx)?,
        }
    }
    for (ts_ms, market, reason, count) in denials {
        insert_denials(tx, ts_ms, market, reason, count)?;
    }
    Ok(())
}

const INSERT_QUOTE: &str =
    "INSERT INTO quotes(market, ts_ms, reason, ref_bid, ref_ask, fair, bid, ask, inventory, levels,
                        venue_bid, venue_ask)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// One `quotes` row, with [`INSERT_QUOTE`] prepared.
fn insert_quote(
    statement: &mut rusqlite::Statement<'_>,
    q: &QuoteRecord,
) -> Result<(), rusqlite::Error> {
    statement.execute(params![
        q.market.as_str(),
        q.ts_ms,
        SqlText::display(&q.reason),
        SqlText::decimal(q.ref_bid),
        SqlText::decimal(q.ref_ask),
        SqlText::decimal(q.fair),
        opt_decimal(q.bid),
        opt_decimal(q.ask),
        SqlText::decimal(q.inventory),
        levels_json(&q.levels),
        opt_decimal(q.venue_bid),
        opt_decimal(q.venue_ask)
    ])?;
    Ok(())
}

/// One `denials` row: `count` places of `market` denied for `reason` at `ts_ms`.
fn insert_denials(
    tx: &Transaction<'_>,
    ts_ms: i64,
    market: &MarketId,
    reason: &str,
    count: u64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("INSERT INTO denials(ts_ms, market, reason, count) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            ts_ms,
            market.as_str(),
            reason,
            i64::try_from(count).unwrap_or(i64::MAX)
        ])?;
    Ok(())
}

impl Write {
    /// Applies the write inside `tx`.
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn apply(&self, tx: &Transaction<'_>) -> Result<(), rusqlite::Error> {
        match self {
            Write::Quote(q) => insert_quote(&mut *tx.prepare_cached(INSERT_QUOTE)?, q)?,
            Write::Denials {
                ts_ms,
                market,
                reason,
                count,
            } => insert_denials(tx, *ts_ms, market, reason, *count)?,
            Write::Order {
                transition: t,
                ts_ms,
            } => {
                let o = &t.order;
                tx.prepare_cached(
                    "INSERT INTO orders(client_order_id, market, slot, side, price, size, filled, state,
                                        venue_order_id, created_at_ms, updated_at_ms, last_error, traceparent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT(client_order_id) DO UPDATE SET
                         filled = excluded.filled, state = excluded.state,
                         venue_order_id = COALESCE(excluded.venue_order_id, orders.venue_order_id),
                         updated_at_ms = excluded.updated_at_ms,
                         last_error = COALESCE(excluded.last_error, orders.last_error)",
                )?
                .execute(params![
                    o.client_order_id.as_str(),
                    o.market.as_str(),
                    SqlText::display(&o.slot),
                    o.side.as_str(),
                    SqlText::decimal(o.price),
                    SqlText::decimal(o.size),
                    SqlText::decimal(o.filled),
                    o.state.as_str(),
                    o.venue_order_id.as_ref().map(|v| v.as_str()),
                    o.created_at_ms,
                    ts_ms,
                    if o.state == OrderState::Rejected { t.detail.clone() } else { None },
                    o.traceparent
                ])?;
                tx.prepare_cached(
                    "INSERT INTO order_events(client_order_id, ts_ms, from_state, to_state, event, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    o.client_order_id.as_str(),
                    ts_ms,
                    t.from.map(|s| s.as_str()),
                    o.state.as_str(),
                    t.event,
                    t.detail
                ])?;
            }
            Write::Outbox(r) => {
                let (coid, venue, slot, side, price, size) = match &r.intent {
                    Intent::Place {
                        client_order_id,
                        slot,
                        side,
                        price,
                        size,
                        ..
                    } => (
                        Some(client_order_id.as_str()),
                        None,
                        Some(SqlText::display(slot)),
                        Some(side.as_str()),
                        Some(SqlText::decimal(*price)),
                        Some(SqlText::decimal(*size)),
                    ),
                    Intent::Cancel {
                        client_order_id,
                        venue_order_id,
                        ..
                    } => (
                        Some(client_order_id.as_str()),
                        venue_order_id.as_ref().map(|v| v.as_str()),
                        None,
                        None,
                        None,
                        None,
                    ),
                    Intent::CancelAll { .. } => (None, None, None, None, None, None),
                };
                tx.prepare_cached(
                    "INSERT INTO outbox(id, kind, market, client_order_id, venue_order_id, slot, side, price, size,
                                        status, attempts, created_at_ms, sent_at_ms, next_attempt_at_ms,
                                        completed_at_ms, last_error, traceparent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                     ON CONFLICT(id) DO UPDATE SET
                         venue_order_id = COALESCE(excluded.venue_order_id, outbox.venue_order_id),
                         status = excluded.status, attempts = excluded.attempts,
                         sent_at_ms = excluded.sent_at_ms, next_attempt_at_ms = excluded.next_attempt_at_ms,
                         completed_at_ms = excluded.completed_at_ms, last_error = excluded.last_error",
                )?
                .execute(params![
                    r.id,
                    r.intent.kind().as_str(),
                    r.intent.market().as_str(),
                    coid,
                    venue,
                    slot,
                    side,
                    price,
                    size,
                    r.status.as_str(),
                    r.attempts,
                    r.created_at_ms,
                    r.sent_at_ms,
                    r.next_attempt_at_ms,
                    r.completed_at_ms,
                    r.last_error,
                    r.traceparent
                ])?;
            }
            Write::VenueSend(r) => {
                tx.prepare_cached(
                    "INSERT INTO outbox_sends(outbox_id, attempt, sent_at_ms, kind, market, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    r.outbox_id,
                    r.attempt,
                    r.sent_at_ms,
                    r.kind.as_str(),
                    r.market.as_str(),
                    r.source
                ])?;
                if let Some((venue, ours)) = &r.venue_order {
                    if let Some(id) = r.outbox_id {
                        tx.prepare_cached("UPDATE outbox SET venue_order_id = ?2 WHERE id = ?1")?
                            .execute(params![id, venue.as_str()])?;
                    }
                    tx.prepare_cached(
                        "UPDATE orders SET venue_order_id = ?2
                         WHERE client_order_id = ?1 AND venue_order_id IS NULL",
                    )?
                    .execute(params![ours.as_str(), venue.as_str()])?;
                }
            }
            Write::VenueSendAt(r, at) => {
                tx.prepare_cached(
                    "UPDATE outbox_sends SET sent_at_ms = ?1
                     WHERE sent_at_ms = ?2 AND kind = ?3 AND market = ?4 AND outbox_id IS ?5
                       AND attempt = ?6 AND source = ?7",
                )?
                .execute(params![
                    at,
                    r.sent_at_ms,
                    r.kind.as_str(),
                    r.market.as_str(),
                    r.outbox_id,
                    r.attempt,
                    r.source
                ])?;
            }
            Write::Balance { balance: b, ts_ms } => {
                tx.prepare_cached(
                    "INSERT INTO balances(asset, free, locked, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(asset) DO UPDATE SET free = excluded.free, locked = excluded.locked,
                                                      updated_at_ms = excluded.updated_at_ms",
                )?
                .execute(params![
                    b.asset,
                    SqlText::decimal(b.free),
                    SqlText::decimal(b.locked),
                    ts_ms
                ])?;
            }
            Write::RiskEvent {
                ts_ms,
                market,
                from,
                to,
                reason,
            } => {
                tx.prepare_cached(
                    "INSERT INTO risk_events(ts_ms, market, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![ts_ms, market.as_ref().map(|m| m.as_str()), from, to, reason])?;
            }
            Write::Heartbeat {
                ts_ms,
                trading_state,
            } => {
                tx.prepare_cached(
                    "INSERT INTO heartbeat(id, ts_ms, trading_state) VALUES (1, ?1, ?2)
                     ON CONFLICT(id) DO UPDATE SET ts_ms = excluded.ts_ms, trading_state = excluded.trading_state",
                )?
                .execute(params![ts_ms, trading_state])?;
            }
            Write::SupersedePendingPlaces {
                market,
                ts_ms,
                reason,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET status = 'superseded', completed_at_ms = ?2, last_error = ?3
                     WHERE kind = 'place' AND status = 'pending' AND market = ?1",
                )?
                .execute(params![
                    market.as_str(),
                    ts_ms,
                    format!("not sent: {reason}")
                ])?;
            }
            Write::ControlConsumed { id, ts_ms } => {
                tx.prepare_cached("UPDATE control SET consumed_at_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, ts_ms])?;
            }
        }
        Ok(())
    }
}

/// Parses a decimal column.
///
/// # Errors
/// [`StoreError::Corrupt`] naming the table and the text.
pub fn dec(table: &'static str, s: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(s).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("decimal {s:?}: {e}"),
    })
}

fn corrupt(table: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.into(),
    }
}

/// Loads every order that is not terminal.
///
/// # Errors
/// SQLite errors and corrupt rows.
pub fn load_live_orders(conn: &Connection) -> Result<Vec<Order>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT client_order_id, market, slot, side, price, size, filled, state, venue_order_id, created_at_ms,
                traceparent
         FROM orders WHERE state NOT IN ('filled', 'cancelled', 'rejected') ORDER BY created_at_ms, client_order_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Option<String>>(8)?,
            r.get::<_, i64>(9)?,
            r.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (coid, market, slot, side, price, size, filled, state, venue, created, traceparent) =
            row?;
        out.push(Order {
            client_order_id: ClientOrderId(coid.into()),
            market: MarketId(market.into()),
            slot: Slot::parse(&slot).ok_or_else(|| corrupt("orders", format!("slot {slot:?}")))?,
            side: Side::parse(&side).ok_or_else(|| corrupt("orders", format!("side {side:?}")))?,
            price: dec("orders", &price)?,
            size: dec("orders", &size)?,
            filled: dec("orders", &filled)?,
            state: OrderState::parse(&state)
                .ok_or_else(|| corrupt("orders", format!("state {state:?}")))?,
            venue_order_id: venue.map(VenueOrderId::from),
            created_at_ms: created,
            traceparent,
        });
    }
    Ok(out)
}

/// Loads every outbox row that is not terminal, in id order. A cancel without a venue id
/// takes it from its order where the order has one.
///
/// # Errors
/// SQLite errors and corrupt rows.
pub fn load_open_outbox(conn: &Connection) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.kind, o.market, o.client_order_id, COALESCE(o.venue_order_id, ord.venue_order_id),
                o.slot, o.side, o.price, o.size, o.status, o.attempts, o.created_at_ms, o.sent_at_ms,
                o.next_attempt_at_ms, o.completed_at_ms, o.last_error, o.traceparent
         FROM outbox o LEFT JOIN orders ord ON ord.client_order_id = o.client_order_id
         WHERE o.status IN ('pending', 'in_flight', 'unknown') ORDER BY o.id",
    )?;
    type Raw = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        u32,
        i64,
        Option<i64>,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let rows = stmt.query_map([], |r| {
        Ok::<Raw, rusqlite::Error>((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
            r.get(15)?,
            r.get(16)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            id,
            kind,
            market,
            coid,
            venue,
            slot,
            side,
            price,
            size,
            status,
            attempts,
            created,
            sent,
            next,
            done,
            err,
            tp,
        ) = row?;
        let market = MarketId(market.into());
        let need = |v: Option<String>, what: &str| {
            v.ok_or_else(|| corrupt("outbox", format!("row {id} lacks {what}")))
        };
        let intent = match IntentKind::parse(&kind)
            .ok_or_else(|| corrupt("outbox", format!("kind {kind:?}")))?
        {
            IntentKind::Place => {
                let slot = need(slot, "slot")?;
                let side = need(side, "side")?;
                Intent::Place {
                    client_order_id: ClientOrderId(need(coid, "client_order_id")?.into()),
                    market,
                    slot: Slot::parse(&slot)
                        .ok_or_else(|| corrupt("outbox", format!("slot {slot:?}")))?,
                    side: Side::parse(&side)
                        .ok_or_else(|| corrupt("outbox", format!("side {side:?}")))?,
                    price: dec("outbox", &need(price, "price")?)?,
                    size: dec("outbox", &need(size, "size")?)?,
                }
            }
            IntentKind::Cancel => Intent::Cancel {
                client_order_id: ClientOrderId(need(coid, "client_order_id")?.into()),
                market,
                venue_order_id: venue.map(VenueOrderId::from),
            },
            IntentKind::CancelAll => Intent::CancelAll { market },
        };
        out.push(OutboxRow {
            id,
            intent,
            status: OutboxStatus::parse(&status)
                .ok_or_else(|| corrupt("outbox", format!("status {status:?}")))?,
            attempts,
            created_at_ms: created,
            sent_at_ms: sent,
            next_attempt_at_ms: next,
            completed_at_ms: done,
            last_error: err,
            traceparent: tp,
            tick_recv_at: None,
        });
    }
    Ok(out)
}

/// Send times of the order actions let through since `since_ms`, oldest first: what the rate
/// limiter is seeded with at start, so that a restart never hands out a fresh budget.
///
/// # Errors
/// SQLite errors.
pub fn sends_since(conn: &Connection, since_ms: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sent_at_ms FROM outbox_sends WHERE sent_at_ms >= ?1 ORDER BY sent_at_ms",
    )?;
    let rows = stmt.query_map([since_ms], |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The `source` of the sends `deltadefi-mm watchdog` records: another process, counted by
/// the venue in the same budget.
pub const WATCHDOG_SOURCE: &str = "watchdog";

/// The watchdog's sends recorded at `since_ms` or later with a row id above `after_id`, as
/// (id, sent_at_ms), oldest first.
///
/// # Errors
/// SQLite errors.
pub fn watchdog_sends_since(
    conn: &Connection,
    since_ms: i64,
    after_id: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, sent_at_ms FROM outbox_sends
         WHERE sent_at_ms >= ?1 AND id > ?2 AND source = ?3 ORDER BY sent_at_ms",
    )?;
    let rows = stmt.query_map(params![since_ms, after_id, WATCHDOG_SOURCE], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The highest row id of `outbox_sends` (0 when empty): every send up to it is known.
///
/// # Errors
/// SQLite errors.
pub fn last_send_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM outbox_sends", [], |r| {
            r.get(0)
        })?,
    )
}

/// Orders still live without a venue id whose place can no longer be under way, with what
/// became of their place: (order, status of its latest place row, or `None` when it has none).
/// A crash between a transition and the outbox's answer leaves such orders (`pending_new`, or
/// `pending_cancel` when a cancel collapsed a place never sent); with no venue id no listing
/// can settle them, so the next start does. Orders whose place is pending, in flight or
/// unknown are not listed: the outbox settles them.
///
/// # Errors
/// SQLite errors.
pub fn settled_pending_places(
    conn: &Connection,
) -> Result<Vec<(ClientOrderId, Option<String>)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.client_order_id,
                (SELECT b.status FROM outbox b WHERE b.client_order_id = o.client_order_id
                   AND b.kind = 'place' ORDER BY b.id DESC LIMIT 1) AS place
         FROM orders o
         WHERE o.state NOT IN ('filled', 'cancelled', 'rejected') AND o.venue_order_id IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (coid, place) = row?;
        if !matches!(place.as_deref(), Some("pending" | "in_flight" | "unknown")) {
            out.push((ClientOrderId(coid.into()), place));
        }
    }
    Ok(out)
}

/// The largest outbox id used so far (0 when empty).
///
/// # Errors
/// SQLite errors.
pub fn max_outbox_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM outbox", [], |r| r.get(0))?)
}

/// Inserts a fill unless its trade id is already stored. Returns the new row id, or `None`
/// for a duplicate.
///
/// # Errors
/// SQLite errors.
pub fn insert_fill(conn: &Connection, f: &VenueFill) -> Result<Option<i64>, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO fills(trade_id, client_order_id, venue_order_id, market, side, price, size, fee,
                                         liquidity, ts_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            f.trade_id.as_str(),
            f.client_order_id.as_ref().map(|c| c.as_str()),
            f.venue_order_id.as_str(),
            f.market.as_str(),
            f.side.as_str(),
            SqlText::decimal(f.price),
            SqlText::decimal(f.size),
            SqlText::decimal(f.fee),
            f.liquidity.as_str(),
            f.ts_ms
        ])?;
    Ok(if n == 1 {
        Some(conn.last_insert_rowid())
    } else {
        None
    })
}

/// Loads every fill, oldest first, with its row id.
///
/// # Errors
/// SQLite errors and corrupt rows.
pub fn load_fills(conn: &Connection) -> Result<Vec<(i64, VenueFill)>, StoreError> {
    load_fills_after(conn, 0)
}

/// Loads the fills stored in rows after `after_id`, oldest first, with their row ids.
///
/// # Errors
/// SQLite errors and corrupt rows.
pub fn load_fills_after(
    conn: &Connection,
    after_id: i64,
) -> Result<Vec<(i64, VenueFill)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, trade_id, client_order_id, venue_order_id, market, side, price, size, fee, liquidity, ts_ms
         FROM fills WHERE id > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([after_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, String>(9)?,
            r.get::<_, i64>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, trade, coid, venue, market, side, price, size, fee, liq, ts) = row?;
        out.push((
            id,
            VenueFill {
                trade_id: TradeId(trade),
                venue_order_id: VenueOrderId(venue.into()),
                client_order_id: coid.map(ClientOrderId::from),
                market: MarketId(market.into()),
                side: Side::parse(&side)
                    .ok_or_else(|| corrupt("fills", format!("side {side:?}")))?,
                price: dec("fills", &price)?,
                size: dec("fills", &size)?,
                fee: dec("fills", &fee)?,
                liquidity: if liq == "taker" {
                    Liquidity::Taker
                } else {
                    Liquidity::Maker
                },
                ts_ms: ts,
            },
        ));
    }
    Ok(out)
}

/// Operator commands not yet consumed, oldest first.
///
/// # Errors
/// SQLite errors.
pub fn pending_control(conn: &Connection) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, command FROM control WHERE consumed_at_ms IS NULL ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The latched operator halts in force: the latest of kill switch, daily loss and resume
/// among the global risk events, then every operator command not yet consumed (`kill` or
/// `resume`, oldest first, with its id), so that a kill switch recorded while the service was
/// down holds before anything is sent.
///
/// # Errors
/// SQLite errors.
pub fn latched_halts(conn: &Connection) -> Result<LatchedHalts, StoreError> {
    Ok(LatchedHalts {
        latest: latest_halt(conn)?,
        control: pending_control(conn)?,
    })
}

/// The operator halts read at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatchedHalts {
    /// `kill_switch`, `daily_loss` or `resume`: the latest global halt event.
    pub latest: Option<String>,
    /// Operator commands not yet consumed, oldest first: (id, `kill` | `resume`).
    pub control: Vec<(i64, String)>,
}

/// The latest risk event of a kind, if any (used to restore a latched halt).
///
/// # Errors
/// SQLite errors.
pub fn latest_halt(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT reason FROM risk_events WHERE market IS NULL AND reason IN ('kill_switch', 'daily_loss', 'resume')
             ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?)
}

/// The trade ids among `ids` already stored.
///
/// # Errors
/// SQLite errors.
pub fn known_trade_ids(
    conn: &Connection,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut known = std::collections::HashSet::new();
    let mut stmt = conn.prepare_cached("SELECT 1 FROM fills WHERE trade_id = ?1")?;
    for id in ids {
        if stmt.exists([id])? {
            known.insert(id.clone());
        }
    }
    Ok(known)
}
