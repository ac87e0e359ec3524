//! Metrics over OTLP to a real gRPC receiver on 127.0.0.1 (trace and metrics services, as a
//! collector serves both): after a staging run with fills, the service has exported ticks,
//! drops, quotes, order actions, budget, both latency histograms, inventory, PnL, feed age and
//! trading state. (Its own process: the meter provider is global.)

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TempDir, staging_config, start_synthetic, wait_until};
use mm_actors::config::LogFormat;
use mm_actors::order_manager::GetOrderStats;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

#[derive(Clone, Default)]
struct Metrics(Arc<Mutex<BTreeSet<String>>>);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut names = self.0.lock().expect("lock");
        for rm in req.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[test]
fn the_service_exports_its_metrics() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Metrics::default();
    let traces = common::otlp::Receiver::default();
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(metrics.clone()))
                .add_service(TraceServiceServer::new(traces.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
        );
        addr
    });
    let dir = TempDir::new("metrics");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 10;
    cfg.feed.synthetic.burst_probability = rust_decimal::Decimal::new(3, 2);
    cfg.markets[0].venue_spread_bps = rust_decimal::Decimal::from(6);
    cfg.mock_exchange.latency_ms = 2;
    cfg.telemetry.otlp_endpoint = format!("http://{addr}");
    cfg.telemetry.metrics_interval_ms = 200;
    let telemetry = deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, |_| None)
        .expect("telemetry");
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, None);
        wait_until("intents and a fill", Duration::from_secs(60), || {
            let o = p.orders.clone();
            async move {
                o.send(GetOrderStats)
                    .await
                    .map(|s| s.intents >= 4 && s.markets[0].fills >= 1)
                    .unwrap_or(false)
            }
        })
        .await;
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
