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
//! Its cancels count against the same venue budget: it spaces them like the bot does and
//! records them in `outbox_sends` (source `watchdog`) when the database takes writes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use mm_actors::config::Config;
use mm_actors::deltadefi::rest::CancelClient;
use mm_actors::types::{MarketId, now_ms};
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

fn observe(db: &Path) -> Result<Observation, rusqlite::Error> {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let beat: Option<i64> = conn
        .query_row("SELECT ts_ms FROM heartbeat WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    let open: i64 = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled', 'cancelled', 'rejected')",
        [],
        |r| r.get(0),
    )?;
    Ok(Observation {
        heartbeat_age_ms: beat.map(|t| now_ms() - t),
        open_orders: open,
    })
}

/// The watchdog's cancels, spaced within the venue budget and recorded where possible.
struct Canceller {
    client: CancelClient,
    db: PathBuf,
    gap_ms: i64,
    last_send_ms: i64,
}

impl Canceller {
    /// Waits for the budget, records the send (best effort), and returns.
    async fn before_send(&mut self, kind: &str, market: &MarketId) {
        // Sends of the bot in its last second count too (it may have been working until now).
        let recent: i64 =
            Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
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
        self.last_send_ms = now_ms();
        let recorded = Connection::open(&self.db).and_then(|c| {
            c.busy_timeout(Duration::from_millis(200))?;
            c.execute(
                "INSERT INTO outbox_sends(outbox_id, attempt, sent_at_ms, kind, market, source)
                 VALUES (NULL, 0, ?1, ?2, ?3, 'watchdog')",
                rusqlite::params![self.last_send_ms, kind, market.as_str()],
            )
        });
        if let Err(e) = recorded {
            warn!(cause = %e, "cannot record the watchdog's send; cancelling anyway");
        }
    }

    /// Cancel-all, then list and cancel one by one until the venue lists nothing (a few
    /// rounds at most; the next check goes on). Returns the orders still open.
    async fn flatten(&mut self, market: &MarketId, with_cancel_all: bool) -> usize {
        if with_cancel_all {
            self.before_send("cancel_all", market).await;
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
                    return left;
                }
            };
            left = open.len();
            if open.is_empty() {
                return 0;
            }
            warn!(market = %market, open = open.len(), "watchdog: orders open at the venue, cancelling each");
            for id in &open {
                self.before_send("cancel", market).await;
                if let Err(e) = self.client.cancel(id).await {
                    error!(market = %market, venue_order_id = %id, cause = %e, "watchdog: cancel failed");
                }
            }
        }
        left
    }
}

/// Runs the watchdog until SIGINT/SIGTERM.
///
/// # Errors
/// A config that does not name a reachable venue's secrets, or a second watchdog on the same
/// database.
pub fn run(
    cfg: Config,
    db: PathBuf,
    max_age: Duration,
    access: VenueAccess,
) -> anyhow::Result<ExitCode> {
    let _lock = InstanceLock::acquire(&db, "watchdog")?;
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
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
            last_send_ms: 0,
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
                    let mut left = 0;
                    for m in &markets {
                        left += canceller.flatten(m, true).await;
                    }
                    if left == 0 {
                        warn!("watchdog: the venue lists no open order");
                    }
                    flattened_at = Some(now_ms());
                }
                Decision::Recheck => {
                    for m in &markets {
                        canceller.flatten(m, false).await;
                    }
                    flattened_at = Some(now_ms());
                }
            }
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
