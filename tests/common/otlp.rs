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
