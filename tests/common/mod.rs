//! Helpers shared by the integration tests: configs, bounded waits, database access.
#![allow(dead_code)]

pub mod otlp;
pub mod proc;
pub mod wire;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deltadefi_mm::app::{Pipeline, VenueAccess};
use deltadefi_mm::config;
use mm_actors::binance_feed::FeedSpec;
use mm_actors::config::Config;
use mm_actors::store::Store;

/// The shipped staging config, with the database in `dir`.
pub fn staging_config(dir: &Path) -> Config {
    let text =
        std::fs::read_to_string(repo_path("config/staging.yaml")).expect("read staging.yaml");
    let mut cfg = config::parse(&text).expect("staging.yaml parses");
    cfg.run.db_path = dir.join("test.db");
    cfg.run.status_interval_s = 0;
    cfg
}

/// Starts the pipeline on `cfg`'s database with its synthetic feed, stopping after
/// `max_ticks` ticks if given. Must run inside a `System`.
pub fn start_synthetic(cfg: &Config, max_ticks: Option<u64>) -> Pipeline {
    let store = Store::open(&cfg.run.db_path).expect("store");
    Pipeline::start(
        cfg,
        store,
        FeedSpec::Synthetic {
            cfg: cfg.feed.synthetic.clone(),
            max_ticks,
        },
        VenueAccess::InProcess,
    )
    .expect("pipeline starts")
}

/// The staging config with a busy market: fast ticks, frequent bursts and tight quotes, so
/// that fills come within seconds.
pub fn busy_config(dir: &Path) -> Config {
    let mut cfg = staging_config(dir);
    cfg.feed.synthetic.interval_ms = 10;
    cfg.feed.synthetic.burst_probability = rust_decimal::Decimal::new(3, 2);
    cfg.markets[0].venue_spread_bps = rust_decimal::Decimal::from(6);
    cfg.mock_exchange.latency_ms = 2;
    cfg
}

/// Waits until the pipeline approved `intents` intents and saw a fill.
pub async fn wait_for_intents_and_fill(p: &Pipeline, intents: u64) {
    wait_until("intents and a fill", Duration::from_secs(60), || {
        let o = p.orders.clone();
        async move {
            o.send(mm_actors::order_manager::GetOrderStats)
                .await
                .map(|s| s.intents >= intents && s.markets[0].fills >= 1)
                .unwrap_or(false)
        }
    })
    .await;
}

/// A path inside the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("deltadefi-mm-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` until it holds; panics with `what` after `timeout`. Bounded event wait for
/// conditions that have no event to await (state inside actors or the database).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if cond().await {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A read-only connection to a test database.
pub fn db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db")
}

/// One integer from a query on the database at `path`, or `None` while it cannot answer (not
/// created yet, still migrating): for polling a database another process is writing.
pub fn try_count(path: &Path, sql: &str) -> Option<i64> {
    if !path.exists() {
        return None;
    }
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
        .ok()
}

/// One integer from a query.
pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Asserts the end state of a clean stop: no live order, no open outbox row, and no 4290
/// (the venue's own budget check never had to refuse us).
pub fn assert_settled(conn: &rusqlite::Connection) {
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM orders WHERE state NOT IN ('filled','cancelled','rejected')"
        ),
        0,
        "live orders left"
    );
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('pending','in_flight','unknown')"
        ),
        0,
        "open outbox rows left"
    );
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM outbox WHERE last_error LIKE '4290%'"
        ),
        0,
        "the venue refused over budget"
    );
}

/// Starts the pipeline on `cfg` (its database, its feed) trading the wire mock with the mock's
/// secrets. Must run inside a `System`.
pub fn start_wire(cfg: &Config) -> Pipeline {
    let store = Store::open(&cfg.run.db_path).expect("store");
    Pipeline::start(
        cfg,
        store,
        deltadefi_mm::app::feed_spec(cfg).expect("feed"),
        VenueAccess::DeltaDeFi {
            api_key: zeroize::Zeroizing::new(wire::KEY.into()),
            passcode: zeroize::Zeroizing::new(wire::PASSCODE.into()),
        },
    )
    .expect("pipeline starts")
}

/// Per-market order figures of a running pipeline.
pub async fn order_stats(p: &Pipeline) -> mm_actors::order_manager::OrderStats {
    p.orders
        .send(mm_actors::order_manager::GetOrderStats)
        .await
        .expect("order manager answers")
}

/// Milliseconds since the epoch (the service's clock).
pub fn now_ms_approx() -> i64 {
    mm_actors::types::now_ms()
}
