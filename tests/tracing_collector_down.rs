//! With the OTLP collector down (nothing listens at the endpoint), quoting does not stall: a
//! max-speed run of the whole pipeline completes, intents are approved, and the exporter drops
//! what it cannot send. (Throughput against a run without telemetry is measured by
//! `deltadefi-mm bench`, recorded in BENCHMARKS.md.)

mod common;

use std::time::{Duration, Instant};

use common::{TempDir, staging_config, start_synthetic, wait_until};
use mm_actors::binance_feed::{GetFeedStats, PlayMore};
use mm_actors::config::LogFormat;
use mm_actors::order_manager::GetOrderStats;
use mm_actors::quote_engine::GetQuoteStats;
use mm_actors::risk_guard::GetRiskStats;
use mm_actors::risk_guard::rules::TradingState;

#[test]
fn quoting_goes_on_when_the_collector_is_down() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr");
    let dir = TempDir::new("collector-down");
    let mut cfg = staging_config(dir.path());
    cfg.telemetry.otlp_endpoint = format!("http://{dead}");
    cfg.telemetry.max_queue_size = 256;
    cfg.feed.synthetic.interval_ms = 0;
    cfg.rate_limit.actions_per_second = 1_000_000;
    cfg.rate_limit.burst = 1_000_000;
    cfg.mock_exchange.latency_ms = 0;
    cfg.mock_exchange.latency_jitter_ms = 0;
    // At full speed the walk covers in a wall-clock second what the market does in hours, and
    // the mock's book trails it by up to ~100 bps. The reference guard's jump limit and its
    // 3 s confirmation window, and the divergence pause, are about wall-clock time: with them
    // the whole run can finish (0.4 s on a fast machine) before the first level is confirmed,
    // and nothing is quoted. What this test is about is the collector, so they are lifted as
    // the bench lifts them.
    cfg.risk.max_reference_divergence_bps = rust_decimal::Decimal::ZERO;
    cfg.feed.reference_guard.jump_limit_bps = rust_decimal::Decimal::from(10_000);
    cfg.feed.reference_guard.confirm_ticks = 1;
    cfg.feed.reference_guard.confirm_ms = 0;
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, |_| None)
        .expect("telemetry");
    assert!(telemetry.exporting());
    const TICKS: u64 = 30_000;
    let t0 = Instant::now();
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, Some(2_000));
        // Quoting, and the market active: RiskGuard starts it halted (stale) and lifts that at
        // its first evaluation after the feed's health report. Played before then, the whole
        // run can pass (0.25 s) with the market halted, and nothing is approved.
        wait_until("the pipeline to quote", Duration::from_secs(20), || {
            let (o, r) = (p.orders.clone(), p.risk.clone());
            async move {
                let active = r.send(GetRiskStats).await.is_ok_and(|s| {
                    s.markets
                        .first()
                        .is_some_and(|m| m.state == TradingState::Active)
                });
                active
                    && o.send(GetOrderStats)
                        .await
                        .map(|s| s.intents > 0)
                        .unwrap_or(false)
            }
        })
        .await;
        p.feed.do_send(PlayMore(TICKS));
        wait_until(
            "every tick priced with the collector down",
            Duration::from_secs(120),
            || {
                let (q, f) = (p.quotes.clone(), p.feed.clone());
                async move {
                    // The first ticks establish the reference (held by the reference guard).
                    let held = f.send(GetFeedStats).await.map(|s| s.held).unwrap_or(0);
                    q.send(GetQuoteStats)
                        .await
                        .map(|s| s[0].ticks + held >= 2_000 + TICKS)
                        .unwrap_or(false)
                }
            },
        )
        .await;
        let intents = p.orders.send(GetOrderStats).await.expect("stats").intents;
        assert!(
            intents > 10,
            "intents approved while the collector is down: {intents}"
        );
        assert!(p.shutdown(Duration::from_secs(20)).await);
    });
    println!(
        "{TICKS} ticks with the collector down in {:.2?}",
        t0.elapsed()
    );
    let t1 = Instant::now();
    telemetry.shutdown();
    assert!(
        t1.elapsed() < Duration::from_secs(15),
        "shutdown gives up on the dead collector: {:?}",
        t1.elapsed()
    );
}
