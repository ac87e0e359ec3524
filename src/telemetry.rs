//! Telemetry: logs (text or JSON with trace and span ids) and OpenTelemetry traces over OTLP.
//!
//! The exporter lives on its own small tokio runtime, never on actix's thread (stack.md
//! pitfall 1), behind a batch processor with a bounded queue: a slow or absent collector drops
//! spans, it never stalls quoting. Only this service's own spans are exported (a per-layer
//! filter keeps HTTP and gRPC internals out). The endpoint and protocol come from the standard
//! `OTEL_EXPORTER_OTLP_*` variables or the config; with neither, nothing is exported.

use std::time::Duration;

use anyhow::Context as _;
use mm_actors::config::{LogFormat, OtlpProtocol, TelemetryConfig};
use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes it (call off the actix thread).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// True when spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued (bounded by the exporter's timeout).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Where traces go: the config's endpoint, overridden by `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// or `OTEL_EXPORTER_OTLP_ENDPOINT`, and the protocol by `OTEL_EXPORTER_OTLP_PROTOCOL`
/// (`grpc` or `http/protobuf`). `None` when no endpoint is set anywhere.
pub fn endpoint(
    cfg: &TelemetryConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<(String, OtlpProtocol)> {
    let protocol = match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Some("grpc") => OtlpProtocol::Grpc,
        Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
        _ => cfg.protocol,
    };
    if let Some(e) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").filter(|e| !e.is_empty()) {
        // The signal-specific variable is used as given.
        return Some((e, protocol));
    }
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| cfg.otlp_endpoint.clone());
    if base.is_empty() {
        return None;
    }
    let url = match protocol {
        OtlpProtocol::Grpc => base,
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    };
    Some((url, protocol))
}

/// Installs logging and, when an endpoint is configured, trace export.
///
/// # Errors
/// The exporter cannot be built (a malformed endpoint).
pub fn init(
    cfg: &TelemetryConfig,
    format: LogFormat,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Telemetry> {
    let fmt_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix=warn,mio=warn"));
    let fmt_layer = log_layer(format, fmt_filter, std::io::stderr);
    let Some((url, protocol)) = endpoint(cfg, &env) else {
        // No collector. JSON logs still get trace and span ids (a local tracer gives spans
        // ids, nothing is exported); text logs skip the tracer, which costs the hot path.
        let otel_layer = (format == LogFormat::Json).then(|| {
            let local = SdkTracerProvider::builder()
                .with_sampler(Sampler::AlwaysOn)
                .build();
            mm_actors::trace::install(local.tracer("deltadefi-mm"));
            tracing_opentelemetry::layer()
                .with_tracer(local.tracer("deltadefi-mm"))
                .with_filter(EnvFilter::new("deltadefi_mm=info,mm_actors=info"))
        });
        let _ = tracing_subscriber::registry()
            .with(fmt_layer)
            .with(otel_layer)
            .try_init();
        crate::logging::install_panic_hook();
        return Ok(Telemetry {
            provider: None,
            meters: None,
            runtime: None,
        });
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()
        .context("starting the telemetry runtime")?;
    let resource = Resource::builder()
        .with_service_name("deltadefi-mm")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("deployment.environment.name", cfg.environment.clone()),
        ])
        .build();
    let provider = {
        let _enter = runtime.enter();
        let exporter = match protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_secs(3))
                .build(),
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_secs(3))
                .build(),
        }
        .with_context(|| format!("building the OTLP exporter for {url}"))?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(cfg.max_queue_size)
                    .build(),
            )
            .build();
        SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_span_processor(batch)
            .build()
    };
    // Metrics: a periodic reader exports every metrics_interval_ms (its own thread).
    let meters = {
        let _enter = runtime.enter();
        let exporter = match protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_secs(3))
                .build(),
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url.replace("/v1/traces", "/v1/metrics"))
                .with_timeout(Duration::from_secs(3))
                .build(),
        }
        .with_context(|| format!("building the OTLP metric exporter for {url}"))?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_millis(cfg.metrics_interval_ms))
            .build();
        SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader)
            .build()
    };
    opentelemetry::global::set_meter_provider(meters.clone());
    // The tick and pricing spans are made after the fact, with their own start times.
    mm_actors::trace::install(provider.tracer("deltadefi-mm"));
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("deltadefi-mm"))
        .with_filter(EnvFilter::new("deltadefi_mm=info,mm_actors=info"));
    let _ = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    crate::logging::install_panic_hook();
    tracing::info!(endpoint = %url, ?protocol, sample_ratio = cfg.sample_ratio, "exporting traces over OTLP");
    Ok(Telemetry {
        provider: Some(provider),
        meters: Some(meters),
        runtime: Some(runtime),
    })
}

/// One JSON object per line with the event's fields and the trace and span ids of the span it
/// happened in.
pub struct JsonWithTrace;

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = FieldMap(serde_json::Map::new());
        event.record(&mut fields);
        let mut obj = fields.0;
        let meta = event.metadata();
        obj.insert("timestamp".into(), humantime_now().into());
        obj.insert("level".into(), meta.level().as_str().into());
        obj.insert("target".into(), meta.target().into());
        // The current span from the dispatcher, not from this layer's context: this layer
        // sees no spans (events_only).
        let current = tracing::Span::current();
        if let Some(meta) = current.metadata() {
            obj.insert("span".into(), meta.name().into());
        }
        let cx = current.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            obj.insert("trace_id".into(), sc.trace_id().to_string().into());
            obj.insert("span_id".into(), sc.span_id().to_string().into());
        }
        writeln!(w, "{}", serde_json::Value::Object(obj))
    }
}

fn humantime_now() -> String {
    let ms = mm_actors::types::now_ms();
    format!("{}.{:03}", ms / 1000, ms.rem_euclid(1000))
}

struct FieldMap(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for FieldMap {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}

/// The log lines: text or [`JsonWithTrace`], through `filter`, to `writer`; events only.
fn log_layer<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(writer)
            .compact()
            .with_filter(filter)
            .with_filter(events_only())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .event_format(JsonWithTrace)
            .with_filter(filter)
            .with_filter(events_only())
            .boxed(),
    }
}

/// The log layer sees events only. Spans belong to the trace: the fmt layer would otherwise
/// format every span's fields into a string when the span opens (on the hot path, one per
/// decision, intent and check), to prefix log lines that already carry their own fields; a
/// JSON line names its trace and span ids instead.
fn events_only() -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(|meta| meta.is_event())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Held by each test that installs a subscriber. tracing works out a macro's interest
    /// once, from every dispatcher alive at that moment: run beside the text test's scoped
    /// subscriber, the JSON test's line sometimes named no span (once in a clean-checkout CI
    /// run, 1 in 100 runs of this binary on a loaded machine; 0 in 300 so serialised).
    static SUBSCRIBERS: Mutex<()> = Mutex::new(());

    /// Collects what the log layer writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
    }

    /// The log layer sees no spans (they cost the hot path), yet a JSON line still names the
    /// span it was logged in and that span's trace. The service installs its subscriber
    /// globally, and so does this test (the only one in this binary that does): a scoped one
    /// hides the current span from a layer's own formatting.
    #[test]
    fn a_json_line_names_its_span_and_trace_though_the_log_layer_sees_no_spans() {
        let _one_at_a_time = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
        let lines = Lines::default();
        let tracer = SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOn)
            .build()
            .tracer("test");
        tracing_subscriber::registry()
            .with(log_layer(
                LogFormat::Json,
                EnvFilter::new("info"),
                lines.clone(),
            ))
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .try_init()
            .expect("no other test installs a global subscriber");
        let span = tracing::info_span!("order_manager.diff", market = "ADAUSDM");
        span.in_scope(|| tracing::warn!(cause = "x", "order event ignored"));
        let out = lines.text();
        let line: serde_json::Value = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|l: &serde_json::Value| l["message"] == "order event ignored")
            .expect("the line");
        assert_eq!(line["span"], "order_manager.diff", "{out}");
        assert_eq!(line["cause"], "x");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{out}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{out}");
    }

    /// A text line carries its own fields, not the span's.
    #[test]
    fn a_text_line_carries_its_own_fields_only() {
        let _one_at_a_time = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(log_layer(
            LogFormat::Text,
            EnvFilter::new("info"),
            lines.clone(),
        ));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("order_manager.diff", market = "ADAUSDM");
            span.in_scope(|| tracing::warn!(cause = "x", "order event ignored"));
        });
        let out = lines.text();
        assert!(
            out.contains("order event ignored") && out.contains("cause") && out.contains("\"x\""),
            "{out}"
        );
        assert!(!out.contains("order_manager.diff"), "{out}");
    }
}
