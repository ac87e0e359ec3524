//! `deltadefi-mm bench`: the whole pipeline in process at full speed. A synthetic walk is
//! generated and parsed as bookTicker text as fast as the actors keep up; the mock exchange
//! answers at zero latency and the rate budget is lifted so that only the pipeline's own work
//! is measured. A warm-up brings the market to ACTIVE (fresh feed, reconciled orders) first.
//!
//! Reported: ticks/s through feed → quote engine, tick → approved-intent latency quantiles
//! (OrderManager's histogram), the process's peak RSS (VmHWM), the mock's place rejects by
//! code and the post-only crosses QuoteEngine and the send path avoided.

use std::time::{Duration, Instant};

use mm_actors::binance_feed::{FeedSpec, PlayMore};
use mm_actors::config::Config;
use mm_actors::mock_exchange::GetVenueRejects;
use mm_actors::order_manager::GetOrderStats;
use mm_actors::outbox_worker::GetOutboxStats;
use mm_actors::quote_engine::GetQuoteStats;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::TradingState;
use mm_actors::store::Store;
use serde::Serialize;

use crate::app::{Pipeline, VenueAccess};

/// Latency quantiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyUs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// One benchmark run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    pub ticks: u64,
    pub elapsed_s: f64,
    pub ticks_per_sec: f64,
    pub latency_us: LatencyUs,
    pub intents: u64,
    pub targets: u64,
    pub peak_rss_mb: f64,
    /// Places the mock rejected, by venue code, over the whole run (4104: a post-only order
    /// that would have crossed; each one a wasted action).
    pub venue_rejects: std::collections::BTreeMap<u32, u64>,
    /// Quotes QuoteEngine kept one step behind the venue's opposite touch (or dropped).
    pub crosses_clamped: u64,
    /// Places not written because the venue's book had moved onto them meanwhile.
    pub crosses_skipped: u64,
}

const WARMUP_TICKS: u64 = 2_000;

/// The process's peak resident set size in MiB, from /proc/self/status (0 where unavailable).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the benchmark with `base` (usually the staging config) adjusted for speed.
///
/// # Errors
/// Store or pipeline failures.
pub fn run(mut cfg: Config, ticks: u64) -> anyhow::Result<BenchReport> {
    let dir = std::env::temp_dir().join(format!("deltadefi-mm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.db");
    cfg.run.db_path = db.clone();
    cfg.run.status_interval_s = 0;
    cfg.rate_limit.actions_per_second = 1_000_000;
    cfg.rate_limit.burst = 1_000_000;
    cfg.mock_exchange.latency_ms = 0;
    cfg.mock_exchange.latency_jitter_ms = 0;
    cfg.mock_exchange.actions_per_second = 0;
    cfg.feed.synthetic.interval_ms = 0;
    cfg.feed.synthetic.burst_probability = rust_decimal::Decimal::ZERO;
    // At full speed the walk covers in one wall-clock second what the market does in hours:
    // the reference guard (which still runs on every tick) must not read that as a jump.
    cfg.feed.reference_guard.jump_limit_bps = rust_decimal::Decimal::from(10_000);
    cfg.feed.reference_guard.confirm_ticks = 1;
    cfg.feed.reference_guard.confirm_ms = 0;
    // Nor may the mock's book, which trails the reference by up to ~100 bps when the walk runs
    // this fast, pause quoting as a diverged reference. Quotes are still kept behind that book
    // (its crosses avoided are reported).
    cfg.risk.max_reference_divergence_bps = rust_decimal::Decimal::ZERO;
    let report = actix::System::new().block_on(async move {
        let store = Store::open(&cfg.run.db_path)?;
        let spec = FeedSpec::Synthetic {
            cfg: cfg.feed.synthetic.clone(),
            max_ticks: Some(WARMUP_TICKS),
        };
        let p = Pipeline::start(&cfg, store, spec, VenueAccess::InProcess)?;
        // Warm up until every market quotes: fresh feed, reconciled orders, ACTIVE.
        let t0 = Instant::now();
        loop {
            let risk = p.risk.send(GetRiskStats).await?;
            let orders = p.orders.send(GetOrderStats).await?;
            if orders.reconciled && risk.markets.iter().all(|m| m.state == TradingState::Active) {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "pipeline did not become ACTIVE within 10 s"
            );
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let before_ticks: u64 = p
            .quotes
            .send(GetQuoteStats)
            .await?
            .iter()
            .map(|m| m.ticks)
            .sum();
        let before = p.orders.send(GetOrderStats).await?;
        p.orders
            .send(mm_actors::order_manager::ResetLatency)
            .await?;
        let start = Instant::now();
        p.feed.do_send(PlayMore(ticks));
        let target = before_ticks + ticks;
        let (done_ticks, targets) = loop {
            let q = p.quotes.send(GetQuoteStats).await?;
            let n: u64 = q.iter().map(|m| m.ticks).sum();
            if n >= target {
                break (n - before_ticks, q.iter().map(|m| m.targets).sum::<u64>());
            }
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        };
        let elapsed = start.elapsed().as_secs_f64();
        let after = p.orders.send(GetOrderStats).await?;
        // Let the last intents reach the venue before its reject counts are read.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(2) {
            let o = p.outbox.send(GetOutboxStats).await?;
            if o.in_flight == 0 && o.waiting_permit == 0 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let venue_rejects = match &p.mock {
            Some(m) => m.send(GetVenueRejects).await?,
            None => Default::default(),
        };
        let now = mm_actors::types::now_ms();
        let views: Vec<_> = cfg
            .markets
            .iter()
            .map(|m| p.reg.books.view(&m.market, now))
            .collect();
        actix::System::current().stop();
        anyhow::Ok(BenchReport {
            ticks: done_ticks,
            elapsed_s: elapsed,
            ticks_per_sec: done_ticks as f64 / elapsed,
            latency_us: LatencyUs {
                p50: after.latency.p50_us,
                p99: after.latency.p99_us,
                p999: after.latency.p999_us,
            },
            intents: after.intents - before.intents,
            targets,
            peak_rss_mb: peak_rss_mb(),
            venue_rejects,
            crosses_clamped: views.iter().map(|v| v.clamped).sum(),
            crosses_skipped: views.iter().map(|v| v.skipped).sum(),
        })
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}
