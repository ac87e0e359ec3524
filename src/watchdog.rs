//! The dead-man's switch: `deltadefi-mm watchdog`, a separate small process beside the bot.
//!
//! A container restart covers a bot that exits; it does not cover one that is alive but no
//! longer working (stopped, hung, deadlocked, its database locked). The bot writes a heartbeat
//! to SQLite every second. The watchdog reads it; when it is older than `--max-age` while the
//! database says orders are open, the watchdog cancels everything at the venue with the same
//! credentials (a cancel-all per market, then the venue's open orders listed and cancelled one
//! by one until a listing is empty), logs it, and keeps checking: while the heartbeat stays
//! stale it lists the venue every few seconds and cancels whatever is open. It never places:
//! it holds no signer and has no way to.
//!
//! Its cancels count against the same venue budget: it spaces them after the bot's recorded
//! sends, and records each in `outbox_sends` (source `watchdog`) before writing it, where the
//! bot's rate limiter reads them once it works again. A record the database cannot take now
//! (a write lock held by the stopped bot) is kept and written at the next look, oldest
//! first. It stops sending as soon as the heartbeat is fresh again: the bot is working and
//! manages its orders. `--max-age` is at least 2 s
//! ([`mm_actors::store::beat::WATCHDOG_MIN_AGE_MS`]), so that the bot reads the watchdog's
//! sends before the watchdog can start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use mm_actors::config::Config;
use mm_actors::deltadefi::rest::CancelClient;
use mm_actors::intent::IntentKind;
use mm_actors::store::Write;
use mm_actors::store::beat::{HEARTBEAT_EVERY, STALE_MS, WATCHDOG_MIN_AGE_MS};
use mm_actors::store::rows::{self, WATCHDOG_SOURCE};
use mm_actors::types::{MarketId, now_ms};
use mm_actors::venue::SendRecord;
use rusqlite::{Connection, OptionalExtension};
use tracing::{error, info, warn};

use crate::app::VenueAccess;
use crate::instance::InstanceLock;

/// What one look at the database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Age of the bot's heartbeat (ms); `None` when it never wrote one.
    pub heartbeat_age_ms: Option<i64>,
    /// Orders the database has as not finished.
    pub open_orders: i64,
}

/// What the watchdog does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The bot is alive, or has nothing open: nothing to do.
    Idle,
    /// The bot stopped working with orders open: flatten the venue now.
    Flatten,
    /// Already flattened for this outage: look at the venue again, cancel what is open.
    Recheck,
}

/// Decides, from an observation, whether the bot is dead with orders open. `flattened_at_ms`
/// is when this outage was last flattened (`None` if not yet); `recheck_ms` paces the venue
/// listings while the outage lasts.
pub fn decide(
    obs: Observation,
    max_age_ms: i64,
    flattened_at_ms: Option<i64>,
    recheck_ms: i64,
    now_ms: i64,
) -> Decision {
    let stale = obs.heartbeat_age_ms.is_some_and(|a| a > max_age_ms);
    match (stale, obs.open_orders > 0, flattened_at_ms) {
        (false, _, _) => Decision::Idle,
        (true, true, None) => Decision::Flatten,
        (true, false, None) => Decision::Idle,
        (true, _, Some(at)) if now_ms - at >= recheck_ms => Decision::Recheck,
        (true, _, Some(_)) => Decision::Idle,
    }
}

/// The age of the bot's heartbeat (ms), `None` when it never wrote one.
fn heartbeat_age(conn: &Connection) -> Result<Option<i64>, rusqlite::Error> {
    let beat: Option<i64> = conn
        .query_row("SELECT ts_ms FROM heartbeat WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    Ok(beat.map(|t| now_ms() - t))
}

fn read_only(db: &Path) -> Result<Connection, rusqlite::Error> {
    Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
}

fn observe(db: &Path) -> Result<Observation, rusqlite::Error> {
    let conn = read_only(db)?;
    let heartbeat_age_ms = heartbeat_age(&conn)?;
    let open: i64 = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled', 'cancelled', 'rejected')",
        [],
        |r| r.get(0),
    )?;
    Ok(Observation {
        heartbeat_age_ms,
        open_orders: open,
    })
}

/// The watchdog's cancels, spaced within the venue budget and recorded.
struct Canceller {
    client: CancelClient,
    db: PathBuf,
    gap_ms: i64,
    max_age_ms: i64,
    last_send_ms: i64,
    /// Sends whose record the database has not taken yet, oldest first (each a
    /// [`Write::VenueSend`], written as the bot writes its own).
    unrecorded: Vec<Write>,
}

impl Canceller {
    /// Writes the sends not recorded yet, oldest first, in one transaction. True when none is
    /// left.
    fn record_backlog(&mut self) -> bool {
        if self.unrecorded.is_empty() {
            return true;
        }
        let r = Connection::open(&self.db).and_then(|mut c| {
            c.busy_timeout(Duration::from_millis(200))?;
            let tx = c.transaction()?;
            rows::apply_all(&tx, &self.unrecorded)?;
            tx.commit()
        });
        match r {
            Ok(()) => {
                if self.unrecorded.len() > 1 {
                    info!(
                        sends = self.unrecorded.len(),
                        "watchdog: sends recorded late, now that the database takes writes"
                    );
                }
                self.unrecorded.clear();
                true
            }
            Err(e) => {
                warn!(cause = %e, unrecorded = self.unrecorded.len(), "cannot record the watchdog's sends yet; kept for the next look");
                false
            }
        }
    }

    /// Waits for the budget and records the send. False when the bot's heartbeat is fresh
    /// again: the bot is working, and nothing more is sent.
    async fn before_send(&mut self, kind: IntentKind, market: &MarketId) -> bool {
        // Sends of the bot in its last second count too (it may have been working until now).
        let recent: i64 = read_only(&self.db)
            .and_then(|c| {
                c.query_row(
                    "SELECT COALESCE(MAX(sent_at_ms), 0) FROM outbox_sends",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        let due = self.last_send_ms.max(recent) + self.gap_ms;
        let wait = due - now_ms();
        if wait > 0 {
            actix_rt::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
        }
        // The last look before the write (the heartbeat alone, not the orders table): a bot
        // working again manages its own orders.
        if let Ok(Some(age)) = read_only(&self.db).and_then(|c| heartbeat_age(&c))
            && age <= self.max_age_ms
        {
            info!(market = %market, "watchdog: the bot's heartbeat is fresh again; sending nothing more");
            return false;
        }
        self.last_send_ms = now_ms();
        self.unrecorded.push(Write::VenueSend(SendRecord {
            sent_at_ms: self.last_send_ms,
            kind,
            market: market.clone(),
            outbox_id: None,
            attempt: 0,
            source: WATCHDOG_SOURCE,
            venue_order: None,
            post_only: None,
            tick_recv_at: None,
        }));
        if !self.record_backlog() {
            warn!("watchdog: cancelling anyway; the record follows once the database takes writes");
        }
        true
    }

    /// Cancel-all, then list and cancel one by one until the venue lists nothing (a few
    /// rounds at most; the next check goes on). Returns the orders still open (`usize::MAX`
    /// when the venue could not be listed), or [`StoodDown`] when the bot works again.
    async fn flatten(
        &mut self,
        market: &MarketId,
        with_cancel_all: bool,
    ) -> Result<usize, StoodDown> {
        if with_cancel_all {
            if !self.before_send(IntentKind::CancelAll, market).await {
                return Err(StoodDown);
            }
            match self.client.cancel_all(market).await {
                Ok(ids) => {
                    warn!(market = %market, cancelled = ids.len(), "watchdog: cancel-all sent")
                }
                Err(e) => error!(market = %market, cause = %e, "watchdog: cancel-all failed"),
            }
        }
        let mut left = usize::MAX;
        for _ in 0..3 {
            let open = match self.client.open_orders(market).await {
                Ok(open) => open,
                Err(e) => {
                    error!(market = %market, cause = %e, "watchdog: cannot list open orders");
                    return Ok(left);
                }
            };
            left = open.len();
            if open.is_empty() {
                return Ok(0);
            }
            warn!(market = %market, open = open.len(), "watchdog: orders open at the venue, cancelling each");
            for id in &open {
                if !self.before_send(IntentKind::Cancel, market).await {
                    return Err(StoodDown);
                }
                if let Err(e) = self.client.cancel(id).await {
                    error!(market = %market, venue_order_id = %id, cause = %e, "watchdog: cancel failed");
                }
            }
        }
        Ok(left)
    }

    /// Flattens every market in turn until the bot works again. The orders still open, or
    /// `None` when it stood down.
    async fn flatten_all(&mut self, markets: &[MarketId], with_cancel_all: bool) -> Option<usize> {
        let mut left = 0usize;
        for m in markets {
            left = left.saturating_add(self.flatten(m, with_cancel_all).await.ok()?);
        }
        Some(left)
    }
}

/// The bot's heartbeat was fresh at the last look before a send: nothing more was sent.
#[derive(Debug)]
struct StoodDown;

/// `--max-age` in ms.
///
/// # Errors
/// Below [`WATCHDOG_MIN_AGE_MS`]: the bot writes its heartbeat every [`HEARTBEAT_EVERY`], and
/// its rate limiter reads the watchdog's sends only once the heartbeat is [`STALE_MS`] old.
pub fn max_age_ms(max_age: Duration) -> anyhow::Result<i64> {
    let ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    if ms < WATCHDOG_MIN_AGE_MS {
        anyhow::bail!(
            "--max-age {max_age:?} is below {WATCHDOG_MIN_AGE_MS} ms: the bot writes its heartbeat every {HEARTBEAT_EVERY:?}, and its rate limiter counts the watchdog's sends only once the heartbeat is {STALE_MS} ms old"
        );
    }
    Ok(ms)
}

/// Runs the watchdog until SIGINT/SIGTERM.
///
/// # Errors
/// A `--max-age` below 2 s, or a second watchdog on the same database.
pub fn run(
    cfg: Config,
    db: PathBuf,
    max_age: Duration,
    access: VenueAccess,
) -> anyhow::Result<ExitCode> {
    let max_age_ms = max_age_ms(max_age)?;
    let _lock = InstanceLock::acquire(&db, "watchdog")?;
    let every = (max_age / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let recheck_ms = 5_000;
    let VenueAccess::DeltaDeFi { api_key, .. } = access else {
        info!(db = %db.display(), "the venue is inside the bot's own process (gateway.venue: mock): nothing to cancel from outside; idle");
        actix::System::new().block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        return Ok(ExitCode::SUCCESS);
    };
    let (rest_url, _) = cfg.gateway.deltadefi.urls();
    let per = i64::from(cfg.rate_limit.actions_per_second.max(1));
    let gap_ms = (1_000 + i64::try_from(cfg.rate_limit.venue_margin_ms).unwrap_or(0)) / per;
    let markets: Vec<MarketId> = cfg.markets.iter().map(|m| m.market.clone()).collect();
    let timeout = Duration::from_millis(cfg.gateway.request_timeout_ms);
    info!(db = %db.display(), max_age_ms, "watchdog watching the bot's heartbeat");
    actix::System::new().block_on(async move {
        let mut canceller = Canceller {
            client: CancelClient::new(&rest_url, api_key, timeout),
            db: db.clone(),
            gap_ms,
            max_age_ms,
            last_send_ms: 0,
            unrecorded: Vec::new(),
        };
        let mut flattened_at: Option<i64> = None;
        let mut tick = actix_rt::time::interval(every);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
            canceller.record_backlog();
            let obs = match observe(&db) {
                Ok(o) => o,
                Err(e) => {
                    // No database yet, or one being migrated: nothing to judge.
                    warn!(cause = %e, "watchdog: cannot read the database");
                    continue;
                }
            };
            let now = now_ms();
            match decide(obs, max_age_ms, flattened_at, recheck_ms, now) {
                Decision::Idle => {
                    if flattened_at.is_some() && obs.heartbeat_age_ms.is_some_and(|a| a <= max_age_ms) {
                        info!("watchdog: the bot's heartbeat is fresh again");
                        flattened_at = None;
                    }
                }
                Decision::Flatten => {
                    error!(
                        heartbeat_age_ms = obs.heartbeat_age_ms.unwrap_or(-1),
                        open_orders = obs.open_orders,
                        "watchdog: the bot stopped working with orders open; cancelling everything at the venue"
                    );
                    if canceller.flatten_all(&markets, true).await == Some(0) {
                        warn!("watchdog: the venue lists no open order");
                    }
                    flattened_at = Some(now_ms());
                }
                Decision::Recheck => {
                    canceller.flatten_all(&markets, false).await;
                    flattened_at = Some(now_ms());
                }
            }
        }
        if !canceller.record_backlog() {
            error!(
                unrecorded = canceller.unrecorded.len(),
                "watchdog stopping with sends it could not record: the bot's budget will not count them"
            );
        }
        info!("watchdog stopping");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(age: Option<i64>, open: i64) -> Observation {
        Observation {
            heartbeat_age_ms: age,
            open_orders: open,
        }
    }

    /// A database with the bot's schema and a heartbeat `age_ms` old, in a fresh directory.
    fn db_with_heartbeat(tag: &str, age_ms: i64) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "mm-watchdog-{tag}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("bot.db");
        drop(mm_actors::store::Store::open(&db).expect("store"));
        Connection::open(&db)
            .and_then(|c| {
                c.execute(
                    "INSERT INTO heartbeat(id, ts_ms, trading_state) VALUES (1, ?1, '')",
                    [now_ms() - age_ms],
                )
            })
            .expect("heartbeat");
        (db, dir)
    }

    fn canceller(db: &Path) -> Canceller {
        Canceller {
            // Never reached: these tests stop before a request is written.
            client: CancelClient::new(
                "http://127.0.0.1:9",
                zeroize::Zeroizing::new(String::new()),
                Duration::from_millis(100),
            ),
            db: db.to_path_buf(),
            gap_ms: 210,
            max_age_ms: 2_000,
            last_send_ms: 0,
            unrecorded: Vec::new(),
        }
    }

    fn watchdog_sends(db: &Path) -> i64 {
        Connection::open(db)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM outbox_sends WHERE source = 'watchdog'",
                    [],
                    |r| r.get(0),
                )
            })
            .expect("count")
    }

    /// Right before a send the watchdog looks at the heartbeat again: a bot working again
    /// manages its own orders, and nothing more is sent or recorded.
    #[actix_rt::test]
    async fn a_fresh_heartbeat_stops_the_sends() {
        let market = MarketId("ADAUSDM".into());
        let (db, dir) = db_with_heartbeat("fresh", 500);
        let mut c = canceller(&db);
        assert!(!c.before_send(IntentKind::CancelAll, &market).await);
        assert_eq!(watchdog_sends(&db), 0);
        assert!(
            c.flatten_all(std::slice::from_ref(&market), true)
                .await
                .is_none()
        );

        let (db, dir2) = db_with_heartbeat("stale", 5_000);
        let mut c = canceller(&db);
        assert!(c.before_send(IntentKind::CancelAll, &market).await);
        assert_eq!(watchdog_sends(&db), 1, "recorded before the write");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(dir2);
    }

    /// Sends made while the database is locked are kept and recorded, at their own times and
    /// oldest first, once it takes writes.
    #[actix_rt::test]
    async fn sends_are_recorded_once_the_lock_is_gone() {
        let market = MarketId("ADAUSDM".into());
        let (db, dir) = db_with_heartbeat("locked", 5_000);
        let lock = Connection::open(&db).expect("open");
        lock.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let mut c = canceller(&db);
        c.gap_ms = 5;
        for _ in 0..3 {
            assert!(
                c.before_send(IntentKind::Cancel, &market).await,
                "sent anyway"
            );
        }
        assert_eq!(c.unrecorded.len(), 3);
        let times: Vec<i64> = c
            .unrecorded
            .iter()
            .filter_map(|w| match w {
                Write::VenueSend(r) => Some(r.sent_at_ms),
                _ => None,
            })
            .collect();
        assert_eq!(times.len(), 3);
        lock.execute_batch("ROLLBACK").expect("unlock");
        assert!(c.record_backlog());
        assert!(c.unrecorded.is_empty());
        let stored: Vec<i64> = Connection::open(&db)
            .and_then(|c| {
                let mut st = c.prepare(
                    "SELECT sent_at_ms FROM outbox_sends WHERE source = 'watchdog' ORDER BY id",
                )?;
                st.query_map([], |r| r.get(0))?.collect()
            })
            .expect("read");
        assert_eq!(stored, times);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_max_age_below_two_seconds_is_refused_naming_the_flag() {
        let e = max_age_ms(Duration::from_millis(1_999)).expect_err("too short");
        assert!(e.to_string().contains("--max-age"), "{e}");
        assert_eq!(max_age_ms(Duration::from_secs(2)).expect("2 s"), 2_000);
    }

    #[test]
    fn decisions() {
        let cases = [
            ("alive", obs(Some(500), 4), None, Decision::Idle),
            ("never ran", obs(None, 0), None, Decision::Idle),
            (
                "stale, nothing open",
                obs(Some(60_000), 0),
                None,
                Decision::Idle,
            ),
            (
                "stale with orders",
                obs(Some(11_000), 4),
                None,
                Decision::Flatten,
            ),
            (
                "flattened just now",
                obs(Some(12_000), 4),
                Some(9_000),
                Decision::Idle,
            ),
            (
                "still stale later",
                obs(Some(20_000), 4),
                Some(4_000),
                Decision::Recheck,
            ),
            (
                "alive again",
                obs(Some(200), 4),
                Some(4_000),
                Decision::Idle,
            ),
        ];
        for (name, o, flattened, want) in cases {
            assert_eq!(decide(o, 10_000, flattened, 5_000, 10_000), want, "{name}");
        }
    }
}
