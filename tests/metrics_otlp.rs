//! Metrics over OTLP to a real gRPC receiver on 127.0.0.1 (trace and metrics services, as a
//! collector serves both): after a staging run with fills, the service has exported ticks,
//! drops, quotes, order actions, budget, both latency histograms, inventory, PnL, feed age and
//! trading state. (Its own process: the meter provider is global.)

mod common;

use std::time::Duration;

use common::{TempDir, busy_config, start_synthetic, wait_for_intents_and_fill};
use mm_actors::config::LogFormat;

#[test]
fn the_service_exports_its_metrics() {
    let (_rt, _spans, metrics, addr) = common::otlp::start_collector();
    let dir = TempDir::new("metrics");
    let mut cfg = busy_config(dir.path());
    cfg.telemetry.otlp_endpoint = format!("http://{addr}");
    cfg.telemetry.metrics_interval_ms = 200;
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, |_| None)
        .expect("telemetry");
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, None);
        wait_for_intents_and_fill(&p, 4).await;
        assert!(p.shutdown(Duration::from_secs(15)).await);
    });
    telemetry.shutdown();
    let names = metrics.0.lock().expect("names").clone();
    for want in [
        "mm.ticks.received",
        "mm.quotes",
        "mm.order_actions",
        "mm.budget.used",
        "mm.tick_to_intent.duration",
        "mm.submit_to_ack.duration",
        "mm.inventory",
        "mm.pnl",
        "mm.feed.age",
        "mm.trading_state",
    ] {
        assert!(names.contains(want), "{want} not exported; got {names:?}");
    }
}
