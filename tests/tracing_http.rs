//! Traces (and metrics) over OTLP/HTTP (protobuf) to a real receiver on 127.0.0.1:
//! `POST /v1/traces` decoded with prost, as a collector's HTTP receiver does. The endpoint comes from the
//! standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`), with
//! `/v1/traces` appended to the base. (Its own process: the tracing subscriber is global.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{TempDir, staging_config, start_synthetic, wait_until};
use mm_actors::config::LogFormat;
use mm_actors::order_manager::GetOrderStats;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

#[test]
fn spans_reach_an_http_protobuf_receiver() {
    let names: Arc<Mutex<Vec<String>>> = Arc::default();
    let paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let (n, p) = (names.clone(), paths.clone());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let (n, p) = (n.clone(), p.clone());
                App::new().default_service(web::to(
                    move |req: actix_web::HttpRequest, body: web::Bytes| {
                        let (n, p) = (n.clone(), p.clone());
                        async move {
                            p.lock().expect("paths").push(req.path().to_string());
                            if req.path() == "/v1/metrics" {
                                return HttpResponse::Ok()
                                    .content_type("application/x-protobuf")
                                    .body(Vec::new());
                            }
                            match ExportTraceServiceRequest::decode(body.as_ref()) {
                                Ok(r) => {
                                    let mut n = n.lock().expect("names");
                                    for rs in r.resource_spans {
                                        for ss in rs.scope_spans {
                                            n.extend(ss.spans.into_iter().map(|s| s.name));
                                        }
                                    }
                                    HttpResponse::Ok()
                                        .content_type("application/x-protobuf")
                                        .body(
                                            ExportTraceServiceResponse {
                                                partial_success: None,
                                            }
                                            .encode_to_vec(),
                                        )
                                }
                                Err(e) => HttpResponse::BadRequest().body(e.to_string()),
                            }
                        }
                    },
                ))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
            tx.send(server.addrs()[0]).expect("addr out");
            let _ = server.run().await;
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver up");
    let dir = TempDir::new("otlp-http");
    let mut cfg = staging_config(dir.path());
    cfg.feed.synthetic.interval_ms = 10;
    let env = move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(format!("http://{addr}")),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
        _ => None,
    };
    let telemetry =
        deltadefi_mm::telemetry::init(&cfg.telemetry, LogFormat::Text, env).expect("telemetry");
    assert!(telemetry.exporting());
    actix::System::new().block_on(async {
        let p = start_synthetic(&cfg, None);
        wait_until("approved intents", Duration::from_secs(20), || {
            let o = p.orders.clone();
            async move {
                o.send(GetOrderStats)
                    .await
                    .map(|s| s.intents >= 2)
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(p.shutdown(Duration::from_secs(15)).await);
    });
    telemetry.shutdown();
    let names = names.lock().expect("names").clone();
    for want in [
        "quote_engine.price",
        "order_manager.diff",
        "risk_guard.check",
        "order_manager.intent",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not received over HTTP: {names:?}"
        );
    }
    let paths = paths.lock().expect("paths").clone();
    // Traces to /v1/traces, metrics to /v1/metrics, nothing else.
    assert!(paths.iter().any(|p| p == "/v1/traces"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/v1/metrics"), "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p == "/v1/traces" || p == "/v1/metrics"),
        "{paths:?}"
    );
}
