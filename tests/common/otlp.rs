//! A real OTLP/gRPC trace receiver on 127.0.0.1 (opentelemetry-proto's tonic server), as a
//! collector would be: what the tracing tests export to.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;

#[derive(Clone, Debug)]
pub struct Got {
    pub service: String,
    pub name: String,
    pub trace: Vec<u8>,
    pub span: Vec<u8>,
    pub parent: Vec<u8>,
    /// Start and end, ns since the epoch.
    pub start: u64,
    pub end: u64,
    /// Attributes, values as text.
    pub attrs: Vec<(String, String)>,
}

#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.0.lock().expect("lock");
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Got {
                        service: service.clone(),
                        name: s.name,
                        trace: s.trace_id,
                        span: s.span_id,
                        parent: s.parent_span_id,
                        start: s.start_time_unix_nano,
                        end: s.end_time_unix_nano,
                        attrs: s
                            .attributes
                            .iter()
                            .map(|kv| {
                                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                    Some(any_value::Value::StringValue(s)) => s.clone(),
                                    Some(any_value::Value::IntValue(i)) => i.to_string(),
                                    Some(any_value::Value::BoolValue(b)) => b.to_string(),
                                    Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                                    _ => String::new(),
                                };
                                (kv.key.clone(), v)
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Every span received so far.
    pub fn spans(&self) -> Vec<Got> {
        self.0.lock().expect("lock").clone()
    }
}

/// Names of the metrics received.
#[derive(Clone, Default)]
pub struct MetricNames(pub Arc<Mutex<std::collections::BTreeSet<String>>>);

#[tonic::async_trait]
impl MetricsService for MetricNames {
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

/// A collector on its own runtime, serving the trace and metrics services; keep the runtime
/// alive while it is used.
pub fn start_collector() -> (
    tokio::runtime::Runtime,
    Receiver,
    MetricNames,
    std::net::SocketAddr,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (spans, metrics) = (Receiver::default(), MetricNames::default());
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(spans.clone()))
                .add_service(MetricsServiceServer::new(metrics.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
        );
        addr
    });
    (rt, spans, metrics, addr)
}

/// A trace receiver (a collector that also takes metrics).
pub fn start_receiver() -> (tokio::runtime::Runtime, Receiver, std::net::SocketAddr) {
    let (rt, spans, _, addr) = start_collector();
    (rt, spans, addr)
}

/// The spans of `root`'s trace below it as an indented tree, each with its start after the
/// root's, its duration, and the attributes an operator filters on (for the README).
pub fn tree(spans: &[Got], root: &Got) -> String {
    const SHOWN: [&str; 15] = [
        "symbol",
        "update_id",
        "decode_us",
        "reason",
        "fair",
        "market",
        "trading_state",
        "side",
        "kind",
        "client_order_id",
        "trade_id",
        "outbox.id",
        "outcome",
        "venue.code",
        "venue_order_id",
    ];
    fn walk(spans: &[Got], at: &Got, t0: u64, depth: usize, out: &mut String) {
        let attrs: Vec<String> = at
            .attrs
            .iter()
            .filter(|(k, v)| SHOWN.contains(&k.as_str()) && !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{:indent$}{} +{:.3} ms ({:.3} ms) {}\n",
            "",
            at.name,
            at.start.saturating_sub(t0) as f64 / 1e6,
            at.end.saturating_sub(at.start) as f64 / 1e6,
            attrs.join(" "),
            indent = depth * 2
        ));
        let mut children: Vec<&Got> = spans
            .iter()
            .filter(|s| s.parent == at.span && s.trace == at.trace)
            .collect();
        children.sort_by_key(|s| s.start);
        for c in children {
            walk(spans, c, t0, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(spans, root, root.start, 0, &mut out);
    out
}
